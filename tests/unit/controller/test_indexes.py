"""The registry's indexes: an event wakes exactly the workers that depend on it."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import cast

from egain_token_operator.controller.index import Index
from egain_token_operator.controller.workers import WorkerRegistry
from egain_token_operator.decisions.clients import ClientKey, ClientKind
from egain_token_operator.kube.secretcache import SecretCache
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
    FakeSecrets,
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


class Releases(FakeSecrets):
    """The Secrets the registry lets go of, in order."""

    def __init__(self, kube: FakeKube) -> None:
        super().__init__(kube)
        self.released: list[tuple[str, str]] = []

    def release(self, namespace: str, name: str) -> None:
        self.released.append((namespace, name))


def test_the_secrets_needed_are_those_served_tokens_and_clients_name() -> None:
    kube = FakeKube()
    made = standby(kube, Clock(START), [])
    secrets = Releases(kube)
    made.reconciler = replace(made.reconciler, secrets=cast(SecretCache, secrets))
    made.observe_client(EGAIN_CLIENT, client_body(EGAIN_CLIENT))
    made.observe_token("ADDED", token_body("web"))
    for name in ("inline-a", "inline-b"):
        body = token_body(name)
        body["spec"] = {"credentialsSecretRef": {"name": "creds"}}
        made.observe_token("ADDED", body)
    assert all(
        made.needs_secret(("team-a", name))
        for name in ("web", "portal-client", "inline-a", "creds")
    )
    assert not made.needs_secret(("team-a", "forged"))
    assert not made.needs_secret(("team-b", "web")), "another namespace's Secret of that name"

    made.observe_token("DELETED", token_body("inline-a"))
    assert secrets.released == [("team-a", "inline-a")], "released creds, still named"
    made.observe_token("DELETED", token_body("inline-b"))
    made.observe_token("DELETED", token_body("web"))
    assert set(secrets.released[1:]) == {
        ("team-a", "inline-b"),
        ("team-a", "creds"),
        ("team-a", "web"),
    }
    made.observe_client(EGAIN_CLIENT, None)
    assert secrets.released[-1] == ("team-a", "portal-client")
    assert not made.needs_secret(("team-a", "portal-client"))
