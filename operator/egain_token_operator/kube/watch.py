"""List, then watch: one collection kept in view for as long as the operator runs.

A `Watch` lists its collection (`api.Collection`: a kind, a namespace or all,
a label selector, full objects or metadata only), hands every object to its
callback, then watches from the list's resourceVersion, handing over each
change. When the watch ends it goes on from the last version seen (bookmarks
included); when that version is too old (410) it lists again and hands over
only what changed meanwhile, deletions included. Lists come in pages
(`adapter.LIST_PAGE_SIZE` objects, `adapter.LIST_PAGE_BYTES` at most), each
handed over before the next is asked for. It keeps each object's
resourceVersion, nothing more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from egain_token_operator.kube.api import Collection, GoneError, KubeApi, KubeError

logger = logging.getLogger(__name__)

Key = tuple[str, str]
# (event type: ADDED, MODIFIED or DELETED; the object, or its metadata only)
ChangeCallback = Callable[[str, Mapping[str, Any]], None]

# Backoff after a failed list or watch (the API server down, RBAC missing).
_RETRY_INITIAL = 1.0
_RETRY_MAX = 30.0


def object_key(body: Mapping[str, Any]) -> Key:
    """(namespace, name) of an object as the API sends it."""
    metadata = body.get("metadata") or {}
    return str(metadata.get("namespace")), str(metadata.get("name"))


def trimmed(
    body: Mapping[str, Any], metadata: tuple[str, ...], annotations: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """`body` with only the `metadata` fields named (and, when given, only the
    `annotations` named): what the operator keeps in memory of an object.

    `managedFields` and kubectl's `last-applied-configuration` annotation are
    each often as large as the rest of the object, and nothing reads them.
    """
    kept = {k: v for k, v in (body.get("metadata") or {}).items() if k in metadata}
    if annotations is not None and "annotations" in kept:
        kept["annotations"] = {k: v for k, v in kept["annotations"].items() if k in annotations}
    return {**body, "metadata": kept}


def _version(body: Mapping[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("resourceVersion") or "")


class Watch:
    """Keeps one collection in view; `synced` is set once its first list was handed over."""

    def __init__(self, kube: KubeApi, collection: Collection, on_change: ChangeCallback) -> None:
        self.collection = collection
        self.synced = asyncio.Event()
        self._kube = kube
        self._on_change = on_change
        self._versions: dict[Key, str] = {}

    def version(self, key: Key) -> str | None:
        """The resourceVersion last seen of the object `key`; None when it does not exist."""
        return self._versions.get(key)

    async def run(self) -> None:
        """List and watch until cancelled; failures are logged and retried with backoff."""
        resource_version: str | None = None
        failures = 0
        while True:
            try:
                if resource_version is None:
                    resource_version = await self._relist()
                    self.synced.set()
                async for change, body in self._kube.watch_objects(
                    self.collection, resource_version
                ):
                    resource_version = _version(body) or resource_version
                    if change != "BOOKMARK":
                        self._apply(change, body)
                    failures = 0
            except GoneError:
                resource_version = None  # too old: list again, at once
            except KubeError as exc:
                failures += 1
                delay = min(_RETRY_INITIAL * 2 ** (failures - 1), _RETRY_MAX)
                logger.warning(
                    "watching %s failed (%s); retrying in %.0fs", self._describe(), exc, delay
                )
                await asyncio.sleep(delay)

    def _describe(self) -> str:
        where = self.collection.namespace or "all namespaces"
        selector = f" ({self.collection.label_selector})" if self.collection.label_selector else ""
        return f"{self.collection.resource} in {where}{selector}"

    def _apply(self, change: str, body: Mapping[str, Any]) -> None:
        key = object_key(body)
        if change == "DELETED":
            self._versions.pop(key, None)
        else:
            self._versions[key] = _version(body)
        self._on_change(change, body)

    async def _relist(self) -> str:
        """List afresh, a page at a time: hand over what changed since the last
        list, then what went away meanwhile. Returns the version to watch from."""
        listed: set[Key] = set()
        version = ""
        async for items, page_version in self._kube.list_pages(self.collection):
            version = page_version
            for item in items:
                key = object_key(item)
                listed.add(key)
                known = self._versions.get(key)
                if known != _version(item):
                    self._apply("MODIFIED" if known is not None else "ADDED", item)
        for key in [key for key in self._versions if key not in listed]:
            self._apply("DELETED", {"metadata": {"namespace": key[0], "name": key[1]}})
        return version
