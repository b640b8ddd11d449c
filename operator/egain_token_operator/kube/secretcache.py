"""What the operator knows of Secrets, without a read per look.

Two watches per served namespace (or one pair across all):

- the Secrets carrying the operator's `managed-by` label, in full; but the
  label is anyone's to write, so the data (and labels, annotations, owner
  references) of one is kept only while the operator needs it: it is the
  Secret a served EgainToken writes, or a credentials Secret one names
  (`needed`, the worker registry's indexes). Of any other it keeps only the
  resourceVersion, as of an unmanaged one: a team that labels a thousand
  large Secrets of its own costs the operator their names, not their data;
- every other Secret as metadata only (`PartialObjectMetadata`): no Secret's
  data reaches the operator this way, so unrelated Secrets (Helm releases,
  certificates) cost it a name and a resourceVersion each.

A credentials Secret is read (GET) when a look needs it and the watch says it
changed since the last read; so is a managed Secret needed but not held (its
EgainToken came after the watch saw it). The read is shared by every
EgainToken waiting for it, and kept only while the Secret is needed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
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


# What a look reads of a managed Secret (decisions/readback.py) and a write
# builds on (decisions/render.py): the rest is not kept.
_MANAGED_METADATA = (
    "name",
    "namespace",
    "resourceVersion",
    "labels",
    "annotations",
    "ownerReferences",
)


def _kept(secret: Mapping[str, Any]) -> bytes:
    """What is held of a managed Secret: trimmed, as compact JSON text (a
    third of the objects it parses into; parsed again at each look)."""
    return json.dumps(trimmed(secret, _MANAGED_METADATA), separators=(",", ":")).encode()


def _version(secret: Mapping[str, Any]) -> str:
    return str((secret.get("metadata") or {}).get("resourceVersion") or "")


class SecretSource(Protocol):
    """Where a look finds Secrets: the operator's `secretcache.SecretCache`, or
    the command line's reads (`ReadSecrets`)."""

    async def credentials(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The credentials Secret in full; None when there is none."""

    async def target(self, namespace: str, name: str) -> tuple[dict[str, Any] | None, bool]:
        """The Secret an EgainToken writes, when it carries the operator's label,
        and whether one of that name exists without the label."""


class SecretCache:
    """Every Secret's resourceVersion; in full, only the Secrets `needed`."""

    def __init__(
        self,
        kube: KubeApi,
        namespaces: tuple[str, ...],
        on_change: ChangeCallback,
        needed: Callable[[Key], bool],
    ) -> None:
        self._kube = kube
        self._on_change = on_change
        self._needed = needed
        # Managed Secrets needed, trimmed (`_kept`), data included.
        self._managed: dict[Key, bytes] = {}
        # Credentials read: key -> (its resourceVersion, body).
        self._credentials: dict[Key, tuple[str, dict[str, Any]]] = {}
        self._reads: dict[Key, asyncio.Task[dict[str, Any] | None]] = {}
        # The managed Secrets' watches, whose lists bring data: what they keep
        # of it depends on `needed`, so they are best started once it can tell.
        self.managed_watches: list[Watch] = []
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
            self.managed_watches.append(managed)
            self._others.append(others)
            self.watches += [managed, others]

    async def synced(self) -> None:
        """Wait until every watch has listed its Secrets once."""
        for watch in self.watches:
            await watch.synced.wait()

    def managed(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A needed Secret carrying the operator's label, as last seen; None when
        there is none or it is not held."""
        return self._held((namespace, name))

    def _held(self, key: Key) -> dict[str, Any] | None:
        kept = self._managed.get(key)
        if kept is None:
            return None
        secret: dict[str, Any] = json.loads(kept)
        return secret

    def exists_unmanaged(self, namespace: str, name: str) -> bool:
        """True when a Secret of that name exists without the operator's label."""
        return _watched_version(self._others, (namespace, name)) is not None

    async def target(self, namespace: str, name: str) -> tuple[dict[str, Any] | None, bool]:
        """The managed Secret `name` (read once if it is not held), and whether an
        unmanaged one has that name (`SecretSource`)."""
        key = (namespace, name)
        secret = self._held(key)
        if secret is None and _watched_version(self.managed_watches, key) is not None:
            read = await self._shared_read(key)
            secret = read if read is not None and is_managed(read) else None
        return secret, self.exists_unmanaged(namespace, name)

    async def credentials(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Secret `name` in full (None: there is none), read again only when it changed."""
        key = (namespace, name)
        managed = self._held(key)
        if managed is not None:
            return managed
        if _watched_version(self.managed_watches, key) is not None:
            return await self._shared_read(key)
        version = _watched_version(self._others, key)
        if version is None:
            self._credentials.pop(key, None)
            return None
        cached = self._credentials.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        return await self._shared_read(key)

    def release(self, namespace: str, name: str) -> None:
        """Forget the data held of the Secret `name`: no served EgainToken or
        client needs it any more (its resourceVersion is still known)."""
        self._managed.pop((namespace, name), None)
        self._credentials.pop((namespace, name), None)

    async def _shared_read(self, key: Key) -> dict[str, Any] | None:
        """One GET of `key`, shared by every look that waits for it meanwhile."""
        read = self._reads.get(key)
        if read is None:
            read = asyncio.get_running_loop().create_task(self._read(key))
            self._reads[key] = read
            read.add_done_callback(lambda _: self._reads.pop(key, None))
        return await asyncio.shield(read)

    async def _read(self, key: Key) -> dict[str, Any] | None:
        secret = await self._kube.read_secret(*key)
        if secret is not None and self._needed(key):
            if is_managed(secret):
                # Not over what the watch brought meanwhile: the watch sends no
                # older version after a newer one, a read may have.
                self._managed.setdefault(key, _kept(secret))
            else:
                self._credentials[key] = (_version(secret), secret)
        return secret

    def written(self, secret: Mapping[str, Any]) -> None:
        """Take what a write returned, so the next look need not wait for the watch."""
        key = object_key(secret)
        if self._needed(key):
            self._managed[key] = _kept(secret)

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

    def _managed_changed(self, change: str, secret: Mapping[str, Any]) -> None:
        key = object_key(secret)
        if change != "DELETED" and self._needed(key):
            self._managed[key] = _kept(secret)
        else:
            # Deleted, or labelled by someone other than the operator for no
            # served EgainToken: its resourceVersion (the watch's) is enough.
            self._managed.pop(key, None)
        self._on_change(change, secret)

    def _other_changed(self, change: str, metadata: Mapping[str, Any]) -> None:
        if change == "DELETED":
            self._credentials.pop(object_key(metadata), None)
        self._on_change(change, metadata)


def _watched_version(watches: list[Watch], key: Key) -> str | None:
    """The resourceVersion of `key` as the watch of its namespace saw it last."""
    for watch in watches:
        if watch.collection.namespace in (None, key[0]):
            return watch.version(key)
    return None


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
