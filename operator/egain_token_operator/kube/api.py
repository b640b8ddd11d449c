"""What the rest of the package sees of the API server: `KubeApi`, the calls
it makes (`adapter.Kube` makes them over HTTP), the collections it lists and
watches, and the errors a call raises.

Objects are plain dictionaries, as the API sends them. Errors carry the
status code and the API server's message, which never includes a Secret's data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from egain_token_operator.decisions.clients import ClientKey
from egain_token_operator.decisions.tokenspec import WorkloadKind


class KubeError(Exception):
    """An API request failed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class UnreachableError(KubeError):
    """No answer from the API server: none configured, none reached, or the
    connection broke. Its `status` is 0: there is no HTTP status to tell."""

    def __init__(self, message: str) -> None:
        super().__init__(0, message)

    def __str__(self) -> str:
        return self.message


class NotFoundError(KubeError):
    """HTTP 404."""


class ConflictError(KubeError):
    """HTTP 409: the object exists already, or changed since it was read."""


class GoneError(KubeError):
    """HTTP 410: a watch's resourceVersion is too old; list again."""


Resource = Literal["egaintokens", "egainclients", "clusteregainclients", "secrets", "namespaces"]


@dataclass(frozen=True, slots=True)
class Collection:
    """What one list and watch covers: a kind, one namespace or all, a label selector."""

    resource: Resource
    # None: every namespace (always, for a cluster-scoped resource).
    namespace: str | None = None
    label_selector: str | None = None
    # Only metadata (PartialObjectMetadata): for Secrets, whose data the
    # operator must not hold, and namespaces, of which only labels matter.
    metadata_only: bool = False


class KubeApi(Protocol):
    """The API calls the operator and the command line make."""

    def list_pages(self, collection: Collection) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
        """Every object of `collection`, a page at a time, each with the list's
        resourceVersion, the one to watch from. `GoneError` when the list took
        longer than the API server keeps its snapshot: list again."""

    def watch_objects(
        self, collection: Collection, resource_version: str
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The changes to `collection` after `resource_version`: (type, object),
        bookmarks included, until the API server ends the watch. `GoneError` when
        the version is too old."""

    async def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Secret, or None when there is none."""

    async def create_secret(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a Secret; `ConflictError` if one of that name exists."""

    async def replace_secret(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Replace a Secret; `ConflictError` if it changed since its `resourceVersion`."""

    async def read_token(self, namespace: str, name: str) -> dict[str, Any] | None:
        """An EgainToken, or None when there is none."""

    async def list_tokens(self, namespace: str | None) -> list[dict[str, Any]]:
        """The EgainTokens of `namespace`, or of every namespace when it is None."""

    async def patch_token_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch an EgainToken's status subresource."""

    async def annotate_token(
        self, namespace: str, name: str, annotations: Mapping[str, str]
    ) -> dict[str, Any]:
        """Merge `annotations` into an EgainToken's metadata."""

    async def read_client(self, key: ClientKey) -> dict[str, Any] | None:
        """An EgainClient or ClusterEgainClient, or None when there is none."""

    async def patch_client_status(
        self, key: ClientKey, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch an EgainClient's or ClusterEgainClient's status subresource."""

    async def read_namespace(self, name: str) -> dict[str, Any] | None:
        """A namespace's metadata, or None when there is none."""

    async def read_workload(
        self, namespace: str, kind: WorkloadKind, name: str
    ) -> dict[str, Any] | None:
        """A Deployment, StatefulSet or DaemonSet, or None when there is none."""

    async def patch_workload(
        self, namespace: str, kind: WorkloadKind, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch a Deployment, StatefulSet or DaemonSet."""

    async def create_event(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a core/v1 Event."""

    async def list_events(self, namespace: str, uid: str) -> list[dict[str, Any]]:
        """The core/v1 Events about the object with `uid` in `namespace`."""

    async def read_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A coordination.k8s.io Lease, or None when there is none."""

    async def create_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a Lease; `ConflictError` if one of that name exists."""

    async def replace_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Replace a Lease; `ConflictError` if it changed since its `resourceVersion`."""


async def list_all(api: KubeApi, collection: Collection) -> tuple[list[dict[str, Any]], str]:
    """Every object of `collection`, its pages gathered, and the resourceVersion to
    watch from: for the few callers that want one answer (the command line's lists)."""
    items: list[dict[str, Any]] = []
    version = ""
    async for page, page_version in api.list_pages(collection):
        items.extend(page)
        version = page_version
    return items, version
