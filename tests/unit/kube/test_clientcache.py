"""The client cache: what it tells of clients and namespaces, and what it watches."""

from __future__ import annotations

import asyncio
from typing import Any

from egain_token_operator.decisions.clients import ClientKey, ClientKind
from egain_token_operator.kube.clientcache import ClientCache
from tests.unit.controller.clients import (
    CLUSTER_CLIENT,
    EGAIN_CLIENT,
    client_body,
)
from tests.unit.controller.support import (
    OPERATOR_NAMESPACE,
)
from tests.unit.fakes import FakeKube

# --- the client cache --------------------------------------------------------


def test_the_client_cache_tells_of_spec_changes_and_label_changes_only() -> None:
    told: list[tuple[ClientKey, bool]] = []
    relabelled: list[str] = []
    cache = ClientCache(
        FakeKube(),
        (),
        OPERATOR_NAMESPACE,
        lambda key, body: told.append((key, body is not None)),
        relabelled.append,
    )
    egain_clients, cluster_clients, namespaces = cache.watches
    assert egain_clients.collection.namespace is None
    assert cluster_clients.collection.namespace is None
    assert namespaces.collection.metadata_only

    body = client_body(EGAIN_CLIENT)
    egain_clients._apply("ADDED", body)
    egain_clients._apply("MODIFIED", {**body, "status": {"tokens": 1}})  # same generation
    egain_clients._apply("MODIFIED", client_body(EGAIN_CLIENT, 2))
    cluster_clients._apply("ADDED", client_body(CLUSTER_CLIENT))
    egain_clients._apply("DELETED", body)
    assert told == [
        (EGAIN_CLIENT, True),
        (EGAIN_CLIENT, True),
        (CLUSTER_CLIENT, True),
        (EGAIN_CLIENT, False),
    ]
    assert cache.known() == [CLUSTER_CLIENT]

    def namespace(name: str, version: str, **labels: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "resourceVersion": version, "labels": labels}}

    namespaces._apply("ADDED", namespace("team-a", "1", a="1"))
    namespaces._apply("MODIFIED", namespace("team-a", "2", a="1"))  # labels unchanged
    namespaces._apply("MODIFIED", namespace("team-a", "3", a="2"))
    namespaces._apply("DELETED", namespace("team-b", "4"))  # never seen
    assert relabelled == ["team-a", "team-a"]

    async def labels() -> Any:
        return await cache.namespace_labels("team-a"), await cache.namespace_labels("team-b")

    assert asyncio.run(labels()) == ({"a": "2"}, None)


def test_limited_to_namespaces_the_cache_watches_no_cluster_client_nor_namespace() -> None:
    cache = ClientCache(FakeKube(), ("team-a", "team-b"), OPERATOR_NAMESPACE, print, print)
    assert not cache.serves_cluster_clients
    assert [(w.collection.resource, w.collection.namespace) for w in cache.watches] == [
        ("egainclients", "team-a"),
        ("egainclients", "team-b"),
    ]
    # Nothing to wait for: tokens naming a ClusterEgainClient are told at once.
    asyncio.run(asyncio.wait_for(cache.synced(ClientKind.CLUSTER_EGAIN_CLIENT), 1))
