"""The only place that reads from and writes to the Kubernetes API directly.

`Kube` makes the calls of `api.KubeApi`: it lists (in pages bounded in
objects and in bytes) and watches (for `watch.py`), and does the reads and
writes the controller and the command line need, through the official
client's asyncio flavour (`kubernetes.aio`). Objects are plain dictionaries,
as the API sends them; a failure is one of the errors of `api.py`. How the
client reaches the API server is `config.py`'s.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from kubernetes.aio import client

from egain_token_operator.decisions.clients import ClientKey, ClientKind
from egain_token_operator.decisions.schema import GROUP, PLURAL, VERSION
from egain_token_operator.decisions.tokenspec import WorkloadKind
from egain_token_operator.kube.api import (
    Collection,
    ConflictError,
    GoneError,
    KubeError,
    NotFoundError,
    UnreachableError,
    list_all,
)

MERGE_PATCH = "application/merge-patch+json"
FIELD_MANAGER = "egain-token-operator"
# Metadata only (PartialObjectMetadata): a Secret's data never reaches the operator this way.
METADATA_ONLY_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
# Objects per LIST request: client-go's pager asks for as many.
LIST_PAGE_SIZE = 500
# Bytes of a LIST page's body held at most: a larger page is not read further
# and is asked for again with fewer objects. 500 of the operator's own objects
# (EgainTokens, managed Secrets: a few KiB each) stay well under it, so a
# restart lists as before; 500 Secrets anyone may label, up to 1 MiB each,
# would be half a gigabyte in one response, twice the chart's memory limit.
# A page held, with what it parses into, then stays within some tens of MiB.
LIST_PAGE_BYTES = 8 * 1024 * 1024
# Bytes read from a response at a time, while its size is counted.
_READ_CHUNK = 64 * 1024
# API requests in flight at once, watches and the leader's Lease apart. Each
# needs a connection, and the client keeps up to 100 open, each holding
# 256 KiB of TLS buffer: a burst of new tokens, whose Events are posted in the
# background, had about a hundred open (25 MiB). 32 in flight keep the
# API server as busy as it can be on the machines measured, and Events have a
# lane of their own, so that the writes that make tokens Ready never wait
# behind them (docs/benchmarks.md); the rest wait.
API_REQUESTS_IN_FLIGHT = 32
EVENTS_IN_FLIGHT = 8
# The API server ends a watch after this long; the client gives up a little later.
WATCH_SECONDS = 300
WATCH_CLIENT_TIMEOUT = 330.0


# The custom resources, by plural; the others are core/v1.
_CUSTOM: frozenset[str] = frozenset({PLURAL, *(kind.plural for kind in ClientKind)})
# Cluster-scoped resources: listed and watched across the cluster only.
_CLUSTER_SCOPED: frozenset[str] = frozenset({ClientKind.CLUSTER_EGAIN_CLIENT.plural, "namespaces"})


async def _json(call: Awaitable[Any]) -> dict[str, Any]:
    try:
        response = await call
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise UnreachableError(f"API server unreachable ({type(exc).__name__})") from exc
    return await _payload(response)


async def _payload(response: Any) -> dict[str, Any]:
    """The JSON a response carries, or its status as a `KubeError`; releases it."""
    try:
        payload = await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise UnreachableError(f"API server unreachable ({type(exc).__name__})") from exc
    finally:
        response.release()
    if response.status < 400:
        result: dict[str, Any] = json.loads(payload)
        return result
    try:
        message = str(json.loads(payload).get("message", response.reason))
    except (ValueError, AttributeError):
        message = str(response.reason)
    raise _error(response.status, message)


async def _json_or_none(call: Awaitable[Any]) -> dict[str, Any] | None:
    """`_json`, with None for an object that does not exist."""
    try:
        return await _json(call)
    except NotFoundError:
        return None


async def _page(call: Awaitable[Any], cap: int | None) -> tuple[dict[str, Any], int] | None:
    """A LIST page's JSON and its size in bytes; None, its body not read further,
    when it is larger than `cap` bytes (None: any size)."""
    try:
        response = await call
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise UnreachableError(f"API server unreachable ({type(exc).__name__})") from exc
    try:
        if response.status >= 400:
            await _payload(response)  # raises its status as a KubeError
        body = bytearray()
        # The length sent is of the body as compressed, if it is: never more
        # than the body itself, so over the cap means over the cap.
        too_large = cap is not None and (response.content_length or 0) > cap
        while not too_large and (chunk := await response.content.read(_READ_CHUNK)):
            body += chunk
            too_large = cap is not None and len(body) > cap
        if too_large:
            response.close()  # the rest is not read, nor the connection reused
            return None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise UnreachableError(f"API server unreachable ({type(exc).__name__})") from exc
    finally:
        response.release()
    page: dict[str, Any] = json.loads(body)
    return page, len(body)


async def _paged(
    list_page: Callable[..., Awaitable[Any]],
    page_size: int = LIST_PAGE_SIZE,
    page_bytes: int = LIST_PAGE_BYTES,
) -> AsyncIterator[dict[str, Any]]:
    """Each page of a LIST, as its JSON: `list_page(limit=..., _continue=...)` makes
    the call for one page; the next is asked for while the API server gives a
    `continue` token. At most one page is held at a time, so a collection of
    ten thousand objects never arrives as one response.

    A page is bounded in bytes as well as in objects: one larger than
    `page_bytes` is dropped unread and asked for again (the same `continue`
    token) with half the limit, down to one object, taken whatever its size
    (the API server bounds an object's). After a page under half the bytes,
    the limit doubles again, up to `page_size`: a few large objects do not
    make the rest of the list come a handful at a time."""
    token: str | None = None
    limit = page_size
    while True:
        params: dict[str, Any] = {"limit": limit}
        if token:
            params["_continue"] = token
        found = await _page(list_page(**params), page_bytes if limit > 1 else None)
        if found is None:
            limit //= 2
            continue
        page, size = found
        token = (page.get("metadata") or {}).get("continue")
        yield page
        if not token:
            return
        if size < page_bytes // 2:
            limit = min(limit * 2, page_size)


def _error(status: int, message: str) -> KubeError:
    kind = {404: NotFoundError, 409: ConflictError, 410: GoneError}.get(status, KubeError)
    return kind(status, message)


class Kube:
    """The few API calls the operator makes (`api.KubeApi`), over HTTP."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._api_client = api_client
        # Requests in flight, watches apart (each holds a connection of its own).
        self._in_flight = asyncio.Semaphore(API_REQUESTS_IN_FLIGHT)
        self._events_in_flight = asyncio.Semaphore(EVENTS_IN_FLIGHT)
        self._core = client.CoreV1Api(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._coordination = client.CoordinationV1Api(api_client)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._api_client.close()

    async def _json(self, call: Awaitable[Any]) -> dict[str, Any]:
        """`call`'s JSON, sent once one of the requests in flight has ended.
        (The leader's Lease does not wait: it must be renewed in time whatever
        else waits; Events wait in a lane of their own.)"""
        async with self._in_flight:
            return await _json(call)

    async def _json_or_none(self, call: Awaitable[Any]) -> dict[str, Any] | None:
        """`_json`, with None for an object that does not exist."""
        async with self._in_flight:
            return await _json_or_none(call)

    @property
    def server(self) -> tuple[str, int]:
        """The API server's host and port, as this client reaches it."""
        parts = urlsplit(self._api_client.configuration.host)
        return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)

    def _list(self, collection: Collection, **params: Any) -> Awaitable[Any]:
        if collection.label_selector:
            params["label_selector"] = collection.label_selector
        resource, namespace = collection.resource, collection.namespace
        if resource in _CLUSTER_SCOPED and namespace is not None:
            raise ValueError(f"{resource} are cluster-scoped: no namespace to list them in")
        call: Awaitable[Any]
        if resource in _CUSTOM and namespace is None:
            call = self._custom.list_cluster_custom_object_without_preload_content(
                GROUP, VERSION, resource, **params
            )
        elif resource in _CUSTOM:
            call = self._custom.list_namespaced_custom_object_without_preload_content(
                GROUP, VERSION, namespace, resource, **params
            )
        elif resource == "namespaces":
            call = self._core.list_namespace_without_preload_content(**params)
        elif namespace is None:
            call = self._core.list_secret_for_all_namespaces_without_preload_content(**params)
        else:
            call = self._core.list_namespaced_secret_without_preload_content(namespace, **params)
        return call

    async def list_pages(
        self, collection: Collection
    ) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
        """Every object of `collection`, a page at a time (`LIST_PAGE_SIZE`), each
        with the list's resourceVersion, the one to watch from (the same on every
        page: they are of one snapshot). `GoneError` when the list took longer
        than the API server keeps its snapshot: list again."""
        headers = {"Accept": METADATA_ONLY_LIST} if collection.metadata_only else None
        async for page in _paged(
            lambda **paging: self._list(collection, _headers=headers, **paging)
        ):
            yield list(page.get("items") or []), str(page["metadata"]["resourceVersion"])

    async def watch_objects(
        self, collection: Collection, resource_version: str
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The changes to `collection` after `resource_version`: (type, object), bookmarks
        included, until the API server ends the watch. `GoneError` when the version is
        too old."""
        headers = {"Accept": METADATA_ONLY} if collection.metadata_only else None
        try:
            response = await self._list(
                collection,
                watch=True,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=WATCH_SECONDS,
                _request_timeout=WATCH_CLIENT_TIMEOUT,
                _headers=headers,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UnreachableError(f"API server unreachable ({type(exc).__name__})") from exc
        try:
            if response.status >= 400:
                await _payload(response)
            async for line in response.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                change, body = str(event.get("type")), event.get("object") or {}
                if change == "ERROR":
                    raise _error(int(body.get("code") or 0), str(body.get("message")))
                yield change, body
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UnreachableError(f"watch broken ({type(exc).__name__})") from exc
        finally:
            response.release()

    async def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Secret, or None when there is none."""
        return await self._json_or_none(
            self._core.read_namespaced_secret_without_preload_content(name, namespace)
        )

    async def create_secret(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a Secret; `ConflictError` if one of that name exists."""
        return await self._json(
            self._core.create_namespaced_secret_without_preload_content(
                namespace, dict(body), field_manager=FIELD_MANAGER
            )
        )

    async def replace_secret(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Replace a Secret; `ConflictError` if it changed since its `resourceVersion`."""
        name = body["metadata"]["name"]
        return await self._json(
            self._core.replace_namespaced_secret_without_preload_content(
                name, namespace, dict(body), field_manager=FIELD_MANAGER
            )
        )

    async def patch_token_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch an EgainToken's status subresource."""
        return await self._json(
            self._custom.patch_namespaced_custom_object_status_without_preload_content(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                {"status": dict(status)},
                field_manager=FIELD_MANAGER,
                _content_type=MERGE_PATCH,
            )
        )

    async def read_client(self, key: ClientKey) -> dict[str, Any] | None:
        """An EgainClient or ClusterEgainClient, or None when there is none."""
        if key.kind.namespaced:
            call = self._custom.get_namespaced_custom_object_without_preload_content(
                GROUP, VERSION, key.namespace, key.kind.plural, key.name
            )
        else:
            call = self._custom.get_cluster_custom_object_without_preload_content(
                GROUP, VERSION, key.kind.plural, key.name
            )
        return await self._json_or_none(call)

    async def patch_client_status(
        self, key: ClientKey, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch an EgainClient's or ClusterEgainClient's status subresource."""
        body = {"status": dict(status)}
        options: dict[str, Any] = {"field_manager": FIELD_MANAGER, "_content_type": MERGE_PATCH}
        if key.kind.namespaced:
            call = self._custom.patch_namespaced_custom_object_status_without_preload_content(
                GROUP, VERSION, key.namespace, key.kind.plural, key.name, body, **options
            )
        else:
            call = self._custom.patch_cluster_custom_object_status_without_preload_content(
                GROUP, VERSION, key.kind.plural, key.name, body, **options
            )
        return await self._json(call)

    async def read_namespace(self, name: str) -> dict[str, Any] | None:
        """A namespace's metadata (PartialObjectMetadata), or None when there is none."""
        return await self._json_or_none(
            self._core.read_namespace_without_preload_content(
                name, _headers={"Accept": METADATA_ONLY}
            )
        )

    async def read_token(self, namespace: str, name: str) -> dict[str, Any] | None:
        """An EgainToken, or None when there is none."""
        return await self._json_or_none(
            self._custom.get_namespaced_custom_object_without_preload_content(
                GROUP, VERSION, namespace, PLURAL, name
            )
        )

    async def list_tokens(self, namespace: str | None) -> list[dict[str, Any]]:
        """The EgainTokens of `namespace`, or of every namespace when it is None."""
        items, _ = await list_all(self, Collection("egaintokens", namespace))
        return items

    async def annotate_token(
        self, namespace: str, name: str, annotations: Mapping[str, str]
    ) -> dict[str, Any]:
        """Merge `annotations` into an EgainToken's metadata."""
        return await self._json(
            self._custom.patch_namespaced_custom_object_without_preload_content(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                {"metadata": {"annotations": dict(annotations)}},
                field_manager=FIELD_MANAGER,
                _content_type=MERGE_PATCH,
            )
        )

    async def list_events(self, namespace: str, uid: str) -> list[dict[str, Any]]:
        """The core/v1 Events about the object with `uid` in `namespace`."""
        items: list[dict[str, Any]] = []
        async for page in _paged(
            lambda **paging: self._core.list_namespaced_event_without_preload_content(
                namespace, field_selector=f"involvedObject.uid={uid}", **paging
            )
        ):
            items += page.get("items") or []
        return items

    async def read_workload(
        self, namespace: str, kind: WorkloadKind, name: str
    ) -> dict[str, Any] | None:
        """A Deployment, StatefulSet or DaemonSet, or None when there is none."""
        read = {
            WorkloadKind.DEPLOYMENT: self._apps.read_namespaced_deployment_without_preload_content,
            WorkloadKind.STATEFUL_SET: (
                self._apps.read_namespaced_stateful_set_without_preload_content
            ),
            WorkloadKind.DAEMON_SET: self._apps.read_namespaced_daemon_set_without_preload_content,
        }[kind]
        return await self._json_or_none(read(name, namespace))

    async def patch_workload(
        self, namespace: str, kind: WorkloadKind, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch a Deployment, StatefulSet or DaemonSet."""
        send = {
            WorkloadKind.DEPLOYMENT: self._apps.patch_namespaced_deployment_without_preload_content,
            WorkloadKind.STATEFUL_SET: (
                self._apps.patch_namespaced_stateful_set_without_preload_content
            ),
            WorkloadKind.DAEMON_SET: (
                self._apps.patch_namespaced_daemon_set_without_preload_content
            ),
        }[kind]
        return await self._json(
            send(
                name, namespace, dict(patch), field_manager=FIELD_MANAGER, _content_type=MERGE_PATCH
            )
        )

    async def create_event(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a core/v1 Event."""
        async with self._events_in_flight:
            return await _json(
                self._core.create_namespaced_event_without_preload_content(
                    namespace, dict(body), field_manager=FIELD_MANAGER
                )
            )

    async def read_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A coordination.k8s.io Lease, or None when there is none."""
        return await _json_or_none(
            self._coordination.read_namespaced_lease_without_preload_content(name, namespace)
        )

    async def create_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a Lease; `ConflictError` if one of that name exists."""
        return await _json(
            self._coordination.create_namespaced_lease_without_preload_content(
                namespace, dict(body), field_manager=FIELD_MANAGER
            )
        )

    async def replace_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Replace a Lease; `ConflictError` if it changed since its `resourceVersion`."""
        return await _json(
            self._coordination.replace_namespaced_lease_without_preload_content(
                body["metadata"]["name"], namespace, dict(body), field_manager=FIELD_MANAGER
            )
        )
