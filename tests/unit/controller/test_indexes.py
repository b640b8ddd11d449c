"""The registry's indexes: an event wakes exactly the workers that depend on it."""

from __future__ import annotations

import asyncio

from egain_token_operator.controller.index import Index
from egain_token_operator.controller.workers import WorkerRegistry
from egain_token_operator.decisions.clients import ClientKey, ClientKind
from tests.unit.clock import Clock
from tests.unit.controller.clients import (
    CLUSTER_CLIENT,
    EGAIN_CLIENT,
    client_body,
    credentials,
    token_body,
)
from tests.unit.controller.support import (
    OPERATOR_NAMESPACE,
    START,
    FakeEgain,
    registry,
)
from tests.unit.fakes import FakeKube

# --- the indexes: an event wakes exactly the workers that depend on it -------


def standby(kube: FakeKube, clock: Clock, touched: list[ClientKey]) -> WorkerRegistry:
    """A registry whose workers do not run, so that wake-ups can be read."""
    made = registry(kube, FakeEgain(clock), clock, lambda *_: None, active=False)
    return WorkerRegistry(
        made.reconciler, clock=clock, active=False, on_client_touched=touched.append
    )


def woken(made: WorkerRegistry) -> set[str]:
    found = {key[1] for key, worker in made._workers.items() if worker.wake.is_set()}
    for worker in made._workers.values():
        worker.wake.clear()
    return found


def test_index_reports_what_a_user_gained_or_lost() -> None:
    index: Index[str, str] = Index()
    assert index.set("t1", ["a", "b"]) == {"a", "b"}
    assert index.set("t2", ["b"]) == {"b"}
    assert index.set("t1", ["b", "c"]) == {"a", "c"}
    assert index.users("b") == {"t1", "t2"}
    assert index.users("a") == frozenset()
    assert index.set("t1", []) == {"b", "c"}
    assert index.users("b") == {"t2"}


def test_a_client_change_wakes_only_its_tokens_and_counts_them() -> None:
    clock = Clock(START)
    touched: list[ClientKey] = []
    made = standby(FakeKube(), clock, touched)
    made.observe_token("ADDED", token_body("web"))
    made.observe_token("ADDED", token_body("api"))
    made.observe_token("ADDED", token_body("other", kind="ClusterEgainClient"))
    made.observe_token("ADDED", token_body("elsewhere", namespace="team-b"))
    assert made.token_count(EGAIN_CLIENT) == 2
    assert made.token_count(CLUSTER_CLIENT) == 1
    assert set(touched) == {
        EGAIN_CLIENT,
        CLUSTER_CLIENT,
        ClientKey(ClientKind.EGAIN_CLIENT, "team-b", "portal"),
    }
    touched.clear()
    woken(made)

    made.observe_client(EGAIN_CLIENT, client_body(EGAIN_CLIENT, 2))
    assert woken(made) == {"web", "api"}
    assert touched == [EGAIN_CLIENT]

    made.observe_token("DELETED", token_body("api"))
    assert made.token_count(EGAIN_CLIENT) == 1
    assert touched[-1] == EGAIN_CLIENT


def test_a_namespace_label_change_wakes_only_its_cluster_client_tokens() -> None:
    made = standby(FakeKube(), Clock(START), [])
    made.observe_token("ADDED", token_body("web", kind="ClusterEgainClient"))
    made.observe_token("ADDED", token_body("local"))
    made.observe_token("ADDED", token_body("far", namespace="team-b", kind="ClusterEgainClient"))
    woken(made)
    made.observe_namespace("team-a")
    assert woken(made) == {"web"}


def test_a_clients_credentials_change_wakes_its_tokens_once_changed() -> None:
    clock = Clock(START)
    kube = FakeKube()
    kube.clients[CLUSTER_CLIENT] = client_body(CLUSTER_CLIENT, allowedNamespaces={"selector": {}})
    kube.secrets[(OPERATOR_NAMESPACE, "portal-client")] = credentials("platform-id", "5")
    kube.namespaces.update({"team-a": {}, "team-b": {}})
    touched: list[ClientKey] = []
    made = standby(kube, clock, touched)
    made.observe_client(CLUSTER_CLIENT, kube.clients[CLUSTER_CLIENT])
    for name, namespace in (("web", "team-a"), ("api", "team-b")):
        made.observe_token("ADDED", token_body(name, namespace, kind="ClusterEgainClient"))
        worker = made._workers[(namespace, name)]
        asyncio.run(made.reconciler.reconcile(worker))  # remembers the credentials' version
    made.observe_token("ADDED", token_body("local"))
    woken(made)
    touched.clear()

    secret = {"metadata": {"namespace": OPERATOR_NAMESPACE, "name": "portal-client"}}
    made.observe_secret("MODIFIED", {"metadata": {**secret["metadata"], "resourceVersion": "5"}})
    assert woken(made) == set(), "woken by the version it already read"
    assert touched == [CLUSTER_CLIENT]
    made.observe_secret("MODIFIED", {"metadata": {**secret["metadata"], "resourceVersion": "6"}})
    assert woken(made) == {"web", "api"}
    made.observe_secret("MODIFIED", {"metadata": {"namespace": "team-a", "name": "portal-client"}})
    assert woken(made) == set(), "woken by a Secret the client does not use"
