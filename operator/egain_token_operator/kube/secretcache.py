"""What the operator knows of Secrets, without a read per look.

Two watches per served namespace (or one pair across all):

- the Secrets the operator manages, by their `managed-by` label, in full:
  each is small, and a look compares its token, labels and annotations;
- every other Secret as metadata only (`PartialObjectMetadata`): no Secret's
  data reaches the operator this way, so unrelated Secrets (Helm releases,
  certificates) cost it a name and a resourceVersion each.

A credentials Secret is read (GET) when a look needs it and the watch says it
changed since the last read; the read is shared by every EgainToken waiting
for it. Only credentials Secrets that some EgainToken names are held in full.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol

from egain_token_operator.decisions.render import MANAGED_BY, MANAGED_BY_LABEL
from egain_token_operator.kube.api import Collection, KubeApi
from egain_token_operator.kube.watch import ChangeCallback, Key, Watch, object_key, trimmed

MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
OTHERS_SELECTOR = f"{MANAGED_BY_LABEL}!={MANAGED_BY}"


def is_managed(secret: Mapping[str, Any]) -> bool:
    """True when `secret` carries the operator's `managed-by` label."""
    labels = (secret.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(MANAGED_BY_LABEL) == MANAGED_BY)


# What a look reads of a managed Secret (render.py): the rest is not kept.
_MANAGED_METADATA = (
    "name",
    "namespace",
    "resourceVersion",
    "labels",
    "annotations",
    "ownerReferences",
)


def _kept(secret: Mapping[str, Any]) -> dict[str, Any]:
    return trimmed(secret, _MANAGED_METADATA)


class SecretSource(Protocol):
    """Where a look finds Secrets: the operator's `secretcache.SecretCache`, or
    the command line's reads (`ReadSecrets`)."""

    async def credentials(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The credentials Secret in full; None when there is none."""

    async def target(self, namespace: str, name: str) -> tuple[dict[str, Any] | None, bool]:
        """The Secret an EgainToken writes, when it carries the operator's label,
        and whether one of that name exists without the label."""


class SecretCache:
    """Managed Secrets in full, every other Secret's resourceVersion, credentials on demand."""

    def __init__(
        self,
        kube: KubeApi,
        namespaces: tuple[str, ...],
        on_change: ChangeCallback,
    ) -> None:
        self._kube = kube
        self._on_change = on_change
        self._managed: dict[Key, dict[str, Any]] = {}
        # Credentials read: key -> (the others watch's resourceVersion when read, body).
        self._credentials: dict[Key, tuple[str, dict[str, Any]]] = {}
        self._reads: dict[Key, asyncio.Task[dict[str, Any] | None]] = {}
        self._others: list[Watch] = []
        self.watches: list[Watch] = []
        for namespace in namespaces or (None,):
            managed = Watch(
                kube, Collection("secrets", namespace, MANAGED_SELECTOR), self._managed_changed
            )
            others = Watch(
                kube,
                Collection("secrets", namespace, OTHERS_SELECTOR, metadata_only=True),
                self._other_changed,
            )
            self._others.append(others)
            self.watches += [managed, others]

    async def synced(self) -> None:
        """Wait until every watch has listed its Secrets once."""
        for watch in self.watches:
            await watch.synced.wait()

    def managed(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Secret carrying the operator's label, as last seen."""
        return self._managed.get((namespace, name))

    def exists_unmanaged(self, namespace: str, name: str) -> bool:
        """True when a Secret of that name exists without the operator's label."""
        return self._other_version((namespace, name)) is not None

    async def target(self, namespace: str, name: str) -> tuple[dict[str, Any] | None, bool]:
        """The managed Secret `name`, and whether an unmanaged one has that name
        (`SecretSource`)."""
        return self.managed(namespace, name), self.exists_unmanaged(namespace, name)

    async def credentials(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Secret `name` in full (None: there is none), read again only when it changed."""
        key = (namespace, name)
        managed = self._managed.get(key)
        if managed is not None:
            return managed
        version = self._other_version(key)
        if version is None:
            self._credentials.pop(key, None)
            return None
        cached = self._credentials.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        read = self._reads.get(key)
        if read is None:
            read = asyncio.get_running_loop().create_task(self._read(key, version))
            self._reads[key] = read
            read.add_done_callback(lambda _: self._reads.pop(key, None))
        return await asyncio.shield(read)

    async def _read(self, key: Key, version: str) -> dict[str, Any] | None:
        secret = await self._kube.read_secret(*key)
        if secret is not None:
            self._credentials[key] = (version, secret)
        return secret

    def written(self, secret: Mapping[str, Any]) -> None:
        """Take what a write returned, so the next look need not wait for the watch."""
        self._managed[object_key(secret)] = _kept(secret)

    async def read_again(self, namespace: str, name: str) -> None:
        """Read one Secret afresh, after a write found it changed or gone.

        The watch would tell in time, but the next write needs the current
        resourceVersion now, or it would fail the same way.
        """
        secret = await self._kube.read_secret(namespace, name)
        if secret is not None and is_managed(secret):
            self.written(secret)
        else:
            self._managed.pop((namespace, name), None)

    def _other_version(self, key: Key) -> str | None:
        for watch in self._others:
            if watch.collection.namespace in (None, key[0]):
                return watch.version(key)
        return None

    def _managed_changed(self, change: str, secret: Mapping[str, Any]) -> None:
        key = object_key(secret)
        if change == "DELETED":
            self._managed.pop(key, None)
        else:
            self._managed[key] = _kept(secret)
        self._on_change(change, secret)

    def _other_changed(self, change: str, metadata: Mapping[str, Any]) -> None:
        if change == "DELETED":
            self._credentials.pop(object_key(metadata), None)
        self._on_change(change, metadata)


class ReadSecrets:
    """Secrets read from the API at each call, for a one-off look (the command
    line's `check`): a `SecretSource` without watches."""

    def __init__(self, kube: KubeApi) -> None:
        self._kube = kube

    async def credentials(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Secret `name`, read now; None when there is none."""
        return await self._kube.read_secret(namespace, name)

    async def target(self, namespace: str, name: str) -> tuple[dict[str, Any] | None, bool]:
        """The Secret `name` read now, when managed, and whether it exists unmanaged."""
        secret = await self._kube.read_secret(namespace, name)
        if secret is not None and is_managed(secret):
            return secret, False
        return None, secret is not None
