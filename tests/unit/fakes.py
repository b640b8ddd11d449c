"""One in-memory API server for the unit tests: `FakeKube`, a `kube.api.KubeApi`.

It answers as the API server does where the operator depends on it: a create
of an object that exists is 409 AlreadyExists, a replace carrying a stale
resourceVersion is 409 Conflict, a write to an object that does not exist is
404, every write gives the object a new resourceVersion, and a merge patch is
applied as RFC 7386 says (`merge_patch`, written here: the operator's own
`render.merge_patched` is what some tests check, so it must not also make the
answers). Every answer is a copy, as a response is.

What it does not do: label selectors are not applied (a test gives it only
objects that match), and watches carry only the changes a test sends
(`send`) or scripts (`streams`), not the fake's own writes.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from egain_token_operator.decisions.clients import ClientKey, ClientKind
from egain_token_operator.decisions.tokenspec import WorkloadKind
from egain_token_operator.kube.api import (
    Collection,
    ConflictError,
    KubeError,
    NotFoundError,
    list_all,
)

Key = tuple[str, str]
# A change a watch hands over, or the error it ends with.
Change = tuple[str, dict[str, Any]] | Exception
# Objects per page of a LIST: small, so that paging is exercised.
PAGE_SIZE = 2


def merge_patch(target: Any, patch: Any) -> Any:
    """`target` with the JSON merge patch `patch` applied (RFC 7386, section 2)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


class FakeKube:
    """The objects the operator reads and writes, held in memory; see the module."""

    def __init__(self) -> None:
        # The last resourceVersion given; each write takes the next.
        self.version = 0
        self.secrets: dict[Key, dict[str, Any]] = {}
        self.tokens: dict[Key, dict[str, Any]] = {}
        self.clients: dict[ClientKey, dict[str, Any]] = {}
        # A namespace's labels, by its name.
        self.namespaces: dict[str, dict[str, str]] = {}
        self.leases: dict[Key, dict[str, Any]] = {}
        self.workloads: dict[tuple[str, WorkloadKind, str], dict[str, Any]] = {}
        # Raised by every call while set: an unreachable API server, missing RBAC.
        self.failure: KubeError | None = None
        # What was asked: every call, each list and watch, each Secret read.
        self.requests = 0
        self.listed: list[Collection] = []
        self.watched: list[Collection] = []
        self.reads: list[Key] = []
        # What was written: status patches as sent, Events, annotated EgainTokens.
        self.statuses: list[dict[str, Any]] = []
        self.client_statuses: list[tuple[ClientKey, dict[str, Any]]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.annotated: list[Key] = []
        # Told of each annotated EgainToken, as it is held now (the operator's reaction).
        self.on_annotate: Callable[[dict[str, Any]], None] = lambda body: None
        # Scripted answers, by resource: the next LISTs (else the objects held),
        # the next watches (else the changes sent).
        self.lists: dict[str, list[list[dict[str, Any]]]] = {}
        self.streams: dict[str, list[list[Change]]] = {}
        # Secret reads wait for this: a read in flight.
        self.read_gate = asyncio.Event()
        self.read_gate.set()
        self._changes: dict[str, asyncio.Queue[tuple[str, dict[str, Any]]]] = {}

    @property
    def held(self) -> dict[Key, dict[str, Any]]:
        """Each EgainToken's status, as held (the dictionaries themselves)."""
        return {key: token["status"] for key, token in self.tokens.items() if "status" in token}

    def send(self, resource: str, change: str, body: dict[str, Any]) -> None:
        """Hand `change` of `body` to the watches of `resource`, now or when they start."""
        self._queue(resource).put_nowait((change, body))

    # --- the calls -----------------------------------------------------------

    def _call(self) -> None:
        self.requests += 1
        if self.failure is not None:
            raise self.failure

    def _stored(self, body: Mapping[str, Any], namespace: str | None) -> dict[str, Any]:
        """`body` as the API server keeps it: with a new resourceVersion."""
        self.version += 1
        stored = copy.deepcopy(dict(body))
        metadata = stored.setdefault("metadata", {})
        metadata["resourceVersion"] = str(self.version)
        if namespace is not None:
            metadata["namespace"] = namespace
        return stored

    def _create(
        self, objects: dict[Any, dict[str, Any]], key: Any, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        if key in objects:
            raise ConflictError(409, f"{key} already exists")
        objects[key] = self._stored(body, key[0])
        return copy.deepcopy(objects[key])

    def _replace(
        self, objects: dict[Any, dict[str, Any]], key: Any, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        held = objects.get(key)
        if held is None:
            raise NotFoundError(404, f"{key} not found")
        asked = (body.get("metadata") or {}).get("resourceVersion")
        if asked is not None and asked != (held.get("metadata") or {}).get("resourceVersion"):
            raise ConflictError(409, f"{key} was modified; apply to the latest version")
        objects[key] = self._stored(body, key[0])
        return copy.deepcopy(objects[key])

    def _patch(
        self, objects: dict[Any, dict[str, Any]], key: Any, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        held = objects.get(key)
        if held is None:
            raise NotFoundError(404, f"{key} not found")
        namespace = (held.get("metadata") or {}).get("namespace")
        objects[key] = self._stored(merge_patch(held, patch), namespace)
        return copy.deepcopy(objects[key])

    def _collection(self, collection: Collection) -> list[dict[str, Any]]:
        """The objects of `collection` held now (its namespace only, if it names one)."""
        resource, namespace = collection.resource, collection.namespace
        found: list[tuple[str, dict[str, Any]]]
        if resource == "secrets":
            found = [(ns, body) for (ns, _), body in self.secrets.items()]
        elif resource == "egaintokens":
            found = [(ns, body) for (ns, _), body in self.tokens.items()]
        elif resource == "namespaces":
            found = [("", self._namespace(name)) for name in self.namespaces]
        else:
            kind = next(kind for kind in ClientKind if kind.plural == resource)
            found = [(k.namespace, b) for k, b in self.clients.items() if k.kind is kind]
        return [copy.deepcopy(body) for ns, body in found if namespace in (None, ns)]

    def _namespace(self, name: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "labels": dict(self.namespaces[name])}}

    def _queue(self, resource: str) -> asyncio.Queue[tuple[str, dict[str, Any]]]:
        return self._changes.setdefault(resource, asyncio.Queue())

    async def list_pages(
        self, collection: Collection
    ) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
        self._call()
        self.listed.append(collection)
        scripted = self.lists.get(collection.resource)
        items = scripted.pop(0) if scripted else self._collection(collection)
        version = str(self.version)
        for start in range(0, max(len(items), 1), PAGE_SIZE):
            yield items[start : start + PAGE_SIZE], version

    async def watch_objects(
        self, collection: Collection, resource_version: str
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        self._call()
        self.watched.append(collection)
        scripted = self.streams.get(collection.resource)
        if scripted:
            for item in scripted.pop(0):
                if isinstance(item, Exception):
                    raise item
                yield item
            return
        queue = self._queue(collection.resource)
        while True:  # a watch that stays open
            yield await queue.get()

    async def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._call()
        self.reads.append((namespace, name))
        await self.read_gate.wait()
        return copy.deepcopy(self.secrets.get((namespace, name)))

    async def create_secret(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._call()
        return self._create(self.secrets, (namespace, body["metadata"]["name"]), body)

    async def replace_secret(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._call()
        return self._replace(self.secrets, (namespace, body["metadata"]["name"]), body)

    async def read_token(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._call()
        return copy.deepcopy(self.tokens.get((namespace, name)))

    async def list_tokens(self, namespace: str | None) -> list[dict[str, Any]]:
        items, _ = await list_all(self, Collection("egaintokens", namespace))
        return items

    async def patch_token_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        self._call()
        self.statuses.append(copy.deepcopy(dict(status)))
        return self._patch(self.tokens, (namespace, name), {"status": status})

    async def annotate_token(
        self, namespace: str, name: str, annotations: Mapping[str, str]
    ) -> dict[str, Any]:
        self._call()
        patched = self._patch(
            self.tokens, (namespace, name), {"metadata": {"annotations": dict(annotations)}}
        )
        self.annotated.append((namespace, name))
        self.on_annotate(copy.deepcopy(patched))
        return patched

    async def read_client(self, key: ClientKey) -> dict[str, Any] | None:
        self._call()
        return copy.deepcopy(self.clients.get(key))

    async def patch_client_status(
        self, key: ClientKey, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        self._call()
        self.client_statuses.append((key, copy.deepcopy(dict(status))))
        return self._patch(self.clients, key, {"status": status})

    async def read_namespace(self, name: str) -> dict[str, Any] | None:
        self._call()
        return self._namespace(name) if name in self.namespaces else None

    async def read_workload(
        self, namespace: str, kind: WorkloadKind, name: str
    ) -> dict[str, Any] | None:
        self._call()
        return copy.deepcopy(self.workloads.get((namespace, kind, name)))

    async def patch_workload(
        self, namespace: str, kind: WorkloadKind, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        self._call()
        return self._patch(self.workloads, (namespace, kind, name), patch)

    async def create_event(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._call()
        self.events.append((namespace, copy.deepcopy(dict(body))))
        return copy.deepcopy(dict(body))

    async def list_events(self, namespace: str, uid: str) -> list[dict[str, Any]]:
        self._call()
        return [
            copy.deepcopy(body)
            for ns, body in self.events
            if ns == namespace and body.get("involvedObject", {}).get("uid") == uid
        ]

    async def read_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._call()
        return copy.deepcopy(self.leases.get((namespace, name)))

    async def create_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._call()
        return self._create(self.leases, (namespace, body["metadata"]["name"]), body)

    async def replace_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._call()
        return self._replace(self.leases, (namespace, body["metadata"]["name"]), body)
