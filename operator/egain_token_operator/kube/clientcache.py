"""What the operator knows of shared clients and namespaces, without a read per look.

Three kinds of watches (`watch.py`):

- EgainClients, per served namespace (or one across all);
- ClusterEgainClients, across the cluster;
- namespaces, as metadata only: their labels, for ClusterEgainClients'
  `allowedNamespaces.selector`. Only the labels of served namespaces are kept.

Each client is kept as the API sent it (without `managedFields`); a callback
is told when a client appears, goes, or its spec changes (another
`generation` or `uid`; the operator's own status patches change neither),
and when a served namespace's labels change. `ReadClients` answers the same
questions with a read per call, for the command line's `check`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from egain_token_operator.decisions.clients import ClientKey, ClientKind
from egain_token_operator.kube.api import Collection, KubeApi
from egain_token_operator.kube.watch import Watch, trimmed

# (the client, its body; None when it was deleted)
ClientCallback = Callable[[ClientKey, Mapping[str, Any] | None], None]
# (the namespace whose labels changed)
NamespaceCallback = Callable[[str], None]

# What is kept of a client's metadata: what a look, the status and Events read.
_CLIENT_METADATA = ("name", "namespace", "uid", "generation", "resourceVersion")


def client_key(kind: ClientKind, body: Mapping[str, Any]) -> ClientKey:
    """The key of a client as the API sends it."""
    metadata = body.get("metadata") or {}
    namespace = str(metadata.get("namespace") or "") if kind.namespaced else ""
    return ClientKey(kind, namespace, str(metadata.get("name")))


def _identity(body: Mapping[str, Any] | None) -> tuple[Any, Any] | None:
    """What tells a client's spec changed: its uid and generation."""
    if body is None:
        return None
    metadata = body.get("metadata") or {}
    return metadata.get("uid"), metadata.get("generation")


class ClientSource(Protocol):
    """Where a look finds the client an EgainToken names and its namespace's
    labels: the operator's `clientcache.ClientCache`, or the command line's
    reads (`clientcache.ReadClients`)."""

    @property
    def cluster_namespace(self) -> str:
        """The cluster resource namespace: where ClusterEgainClients' credentials are."""

    @property
    def serves_cluster_clients(self) -> bool:
        """False when ClusterEgainClients are not served (an operator limited to namespaces)."""

    async def client(self, key: ClientKey) -> Mapping[str, Any] | None:
        """The EgainClient or ClusterEgainClient as the API sends it; None when there is none."""

    async def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        """The labels of `namespace`; None when it does not exist."""


class ClientCache:
    """EgainClients, ClusterEgainClients and served namespaces' labels, as last seen
    (a `ClientSource`)."""

    def __init__(
        self,
        kube: KubeApi,
        namespaces: tuple[str, ...],
        cluster_namespace: str,
        on_client: ClientCallback,
        on_namespace: NamespaceCallback,
    ) -> None:
        self._cluster_namespace = cluster_namespace
        self._on_client = on_client
        self._on_namespace = on_namespace
        self._clients: dict[ClientKey, dict[str, Any]] = {}
        self._labels: dict[str, dict[str, str]] = {}
        self._egain_clients = [
            Watch(kube, Collection("egainclients", namespace), self._egain_client_changed)
            for namespace in namespaces or (None,)
        ]
        # Limited to namespaces, the operator serves no ClusterEgainClient.
        self.serves_cluster_clients = not namespaces
        self._cluster_clients = (
            [
                Watch(kube, Collection("clusteregainclients"), self._cluster_client_changed),
                Watch(kube, Collection("namespaces", metadata_only=True), self._namespace_changed),
            ]
            if self.serves_cluster_clients
            else []
        )
        self.watches = self._egain_clients + self._cluster_clients

    @property
    def cluster_namespace(self) -> str:
        """The cluster resource namespace: where ClusterEgainClients' credentials are."""
        return self._cluster_namespace

    async def synced(self, kind: ClientKind) -> None:
        """Wait until what a token naming a `kind` needs has been listed once: the
        EgainClients; or the ClusterEgainClients and the namespaces. Apart, so
        that one kind's watches failing (their RBAC not granted) holds back only
        the tokens that name that kind."""
        needed = self._egain_clients if kind.namespaced else self._cluster_clients
        for watch in needed:
            await watch.synced.wait()

    async def client(self, key: ClientKey) -> Mapping[str, Any] | None:
        """The client `key` as last seen (complete once `synced`); None when there is none."""
        return self._clients.get(key)

    def cached(self, key: ClientKey) -> Mapping[str, Any] | None:
        """The client `key` as last seen, without waiting for the watches."""
        return self._clients.get(key)

    def known(self) -> list[ClientKey]:
        """Every client known."""
        return list(self._clients)

    async def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        """The labels of a served `namespace` as last seen (complete once `synced`);
        None when it does not exist."""
        return self._labels.get(namespace)

    def _egain_client_changed(self, change: str, body: Mapping[str, Any]) -> None:
        self._client_changed(ClientKind.EGAIN_CLIENT, change, body)

    def _cluster_client_changed(self, change: str, body: Mapping[str, Any]) -> None:
        self._client_changed(ClientKind.CLUSTER_EGAIN_CLIENT, change, body)

    def _client_changed(self, kind: ClientKind, change: str, body: Mapping[str, Any]) -> None:
        key = client_key(kind, body)
        before = self._clients.get(key)
        after = None if change == "DELETED" else trimmed(body, _CLIENT_METADATA)
        if after is None:
            self._clients.pop(key, None)
        else:
            self._clients[key] = after
        if _identity(before) != _identity(after):
            self._on_client(key, after)

    def _namespace_changed(self, change: str, metadata: Mapping[str, Any]) -> None:
        name = str((metadata.get("metadata") or {}).get("name"))
        labels = None
        if change != "DELETED":
            labels = dict((metadata.get("metadata") or {}).get("labels") or {})
        if labels == self._labels.get(name):
            return
        if labels is None:
            self._labels.pop(name, None)
        else:
            self._labels[name] = labels
        self._on_namespace(name)


class ReadClients:
    """Clients and namespaces read from the API at each call, for a one-off look
    (the command line's `check`): a `ClientSource` without watches."""

    # The command line reads ClusterEgainClients directly, whatever the operator serves.
    serves_cluster_clients = True

    def __init__(self, kube: KubeApi, cluster_namespace: str) -> None:
        self._kube = kube
        self._cluster_namespace = cluster_namespace

    @property
    def cluster_namespace(self) -> str:
        """The cluster resource namespace the operator was given."""
        return self._cluster_namespace

    async def client(self, key: ClientKey) -> Mapping[str, Any] | None:
        """The client `key`, read now; None when there is none."""
        return await self._kube.read_client(key)

    async def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        """The labels of `namespace`, read now; None when it does not exist."""
        found = await self._kube.read_namespace(namespace)
        if found is None:
            return None
        return dict((found.get("metadata") or {}).get("labels") or {})
