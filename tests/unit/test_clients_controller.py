"""Shared clients in the controller: looks through a client, the wake-up indexes,
the client cache and the client status, over in-memory fakes and an injected clock."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any, cast

from egain_token_operator.controller.clientstatus import ClientStatusController
from egain_token_operator.controller.index import Index
from egain_token_operator.controller.observe import TokenWorker
from egain_token_operator.controller.workers import WorkerRegistry
from egain_token_operator.decisions.render import render_client_status
from egain_token_operator.decisions.spec import ClientKey, ClientKind, CredentialsRef
from egain_token_operator.egain.transport import TokenRequest, TokenResponse
from egain_token_operator.kube.clientcache import ClientCache
from egain_token_operator.kube.secretcache import ReadSecrets
from tests.unit.clock import Clock
from tests.unit.fakes import FakeKube
from tests.unit.test_controller import (
    BODY,
    OPERATOR_NAMESPACE,
    START,
    FakeClients,
    FakeEgain,
    b64,
    ready,
    recorder,
    registry,
)

TOKEN_URL = "https://ai.egain.cloud/system/auth/T-U/oauth2/token"
EGAIN_CLIENT = ClientKey(ClientKind.EGAIN_CLIENT, "team-a", "portal")
CLUSTER_CLIENT = ClientKey(ClientKind.CLUSTER_EGAIN_CLIENT, "", "portal")


class RecordingEgain(FakeEgain):
    """FakeEgain that keeps the client id of each request (never a secret)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.client_ids: list[str] = []

    async def fetch_token(self, request: TokenRequest) -> tuple[TokenResponse, Any]:
        self.client_ids.append(request.form["client_id"])
        return await super().fetch_token(request)


def credentials(client_id: str, version: str = "1") -> dict[str, Any]:
    return {
        "metadata": {"resourceVersion": version},
        "data": {"client_id": b64(client_id), "client_secret": b64("s")},
    }


def client_body(key: ClientKey, generation: int = 1, **spec: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": key.name, "uid": f"uid-{key.name}"}
    metadata["generation"] = generation
    if key.namespace:
        metadata["namespace"] = key.namespace
    return {
        "apiVersion": "egain.cloud/v1alpha1",
        "kind": key.kind.value,
        "metadata": metadata,
        "spec": {"tokenUrl": TOKEN_URL, "credentialsSecretRef": {"name": "portal-client"}, **spec},
    }


def token_body(
    name: str = "web",
    namespace: str = "team-a",
    kind: str = "EgainClient",
    scopes: tuple[str, ...] = ("knowledge.portalmgr.read",),
) -> dict[str, Any]:
    return {
        "apiVersion": "egain.cloud/v1alpha1",
        "kind": "EgainToken",
        "metadata": {"namespace": namespace, "name": name, "uid": f"uid-{name}", "generation": 1},
        "spec": {"clientRef": {"kind": kind, "name": "portal"}, "scopes": list(scopes)},
    }


def setup() -> tuple[FakeKube, RecordingEgain, Clock, WorkerRegistry, list[tuple[str, str, str]]]:
    clock = Clock(START)
    kube = FakeKube()
    egain = RecordingEgain(clock)
    events: list[tuple[str, str, str]] = []
    return kube, egain, clock, registry(kube, egain, clock, recorder(events)), events


async def settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


def look(made: WorkerRegistry, body: Mapping[str, Any]) -> TokenWorker:
    metadata = body["metadata"]
    worker = TokenWorker((metadata["namespace"], metadata["name"]), body)
    asyncio.run(made.reconciler.reconcile(worker))
    return worker


# --- looks through a client ---------------------------------------------------


def test_a_token_naming_an_egain_client_is_issued_with_the_clients_credentials() -> None:
    kube, egain, _, made, _ = setup()
    kube.clients[EGAIN_CLIENT] = client_body(EGAIN_CLIENT)
    kube.secrets[("team-a", "portal-client")] = credentials("team-a-id")
    look(made, token_body())
    assert egain.client_ids == ["team-a-id"]
    assert ready(kube) == ("True", "TokenIssued")
    assert kube.statuses[-1]["client"] == {"kind": "EgainClient", "name": "portal"}
    assert ("team-a", "web") in kube.secrets


def test_a_cluster_client_reads_only_the_cluster_resource_namespace() -> None:
    kube, egain, _, made, _ = setup()
    kube.clients[CLUSTER_CLIENT] = client_body(
        CLUSTER_CLIENT, allowedNamespaces={"names": ["team-a"]}
    )
    # A Secret of that name in the token's namespace is never read for it.
    kube.secrets[("team-a", "portal-client")] = credentials("impostor")
    look(made, token_body(kind="ClusterEgainClient"))
    assert ready(kube) == ("False", "CredentialsNotFound")
    assert (
        f"Secret {OPERATOR_NAMESPACE}/portal-client not found"
        in (kube.statuses[-1]["conditions"][0]["message"])
    )
    kube.secrets[(OPERATOR_NAMESPACE, "portal-client")] = credentials("platform-id")
    look(made, token_body(kind="ClusterEgainClient"))
    assert egain.client_ids == ["platform-id"]
    assert ready(kube) == ("True", "TokenIssued")


def test_refused_tokens_send_nothing_warn_and_keep_their_secret() -> None:
    kube, egain, _, made, events = setup()
    kube.clients[CLUSTER_CLIENT] = client_body(
        CLUSTER_CLIENT, allowedNamespaces={"names": ["team-a"]}
    )
    kube.secrets[(OPERATOR_NAMESPACE, "portal-client")] = credentials("platform-id")
    look(made, token_body(kind="ClusterEgainClient"))
    issued = kube.secrets[("team-a", "web")]
    assert egain.requests == 1

    # The namespace is no longer allowed: not Ready, nothing sent, the Secret kept as it is.
    kube.clients[CLUSTER_CLIENT] = client_body(
        CLUSTER_CLIENT, 2, allowedNamespaces={"names": ["team-b"]}
    )
    look(made, token_body(kind="ClusterEgainClient"))
    assert ready(kube) == ("False", "ClientNotAllowed")
    assert events[-1][:2] == ("Warning", "ClientNotAllowed")
    assert kube.secrets[("team-a", "web")] == issued

    # A scope outside allowedScopes: the same.
    kube.clients[CLUSTER_CLIENT] = client_body(
        CLUSTER_CLIENT, 3, allowedNamespaces={"names": ["team-a"]}, allowedScopes=["other"]
    )
    look(made, token_body(kind="ClusterEgainClient"))
    assert ready(kube) == ("False", "ScopeNotAllowed")
    assert events[-1][:2] == ("Warning", "ScopeNotAllowed")
    assert egain.requests == 1
    assert kube.secrets[("team-a", "web")] == issued


def test_a_missing_client_then_created() -> None:
    kube, egain, _, made, events = setup()
    look(made, token_body())
    assert ready(kube) == ("False", "ClientNotFound")
    assert events[-1] == (
        "Warning",
        "ClientNotFound",
        "EgainClient portal in namespace team-a not found",
    )
    assert kube.statuses[-1]["client"] == {"kind": "EgainClient", "name": "portal"}
    kube.clients[EGAIN_CLIENT] = client_body(EGAIN_CLIENT)
    kube.secrets[("team-a", "portal-client")] = credentials("team-a-id")
    look(made, token_body())
    assert ready(kube) == ("True", "TokenIssued")
    assert egain.requests == 1


def test_an_egain_client_of_another_namespace_is_not_found() -> None:
    kube, egain, _, made, _ = setup()
    kube.clients[EGAIN_CLIENT] = client_body(EGAIN_CLIENT)
    kube.secrets[("team-a", "portal-client")] = credentials("team-a-id")
    look(made, token_body(namespace="team-b"))
    assert ready(kube) == ("False", "ClientNotFound")
    assert egain.requests == 0


def test_a_namespace_labelled_into_the_selector_is_allowed() -> None:
    kube, egain, _, made, _ = setup()
    kube.clients[CLUSTER_CLIENT] = client_body(
        CLUSTER_CLIENT, allowedNamespaces={"selector": {"matchLabels": {"portal": "yes"}}}
    )
    kube.secrets[(OPERATOR_NAMESPACE, "portal-client")] = credentials("platform-id")
    kube.namespaces["team-a"] = {}
    look(made, token_body(kind="ClusterEgainClient"))
    assert ready(kube) == ("False", "ClientNotAllowed")
    kube.namespaces["team-a"] = {"portal": "yes"}
    look(made, token_body(kind="ClusterEgainClient"))
    assert ready(kube) == ("True", "TokenIssued")
    assert egain.requests == 1


def test_an_invalid_client_is_named_in_the_tokens_invalid_spec() -> None:
    kube, egain, _, made, _ = setup()
    kube.clients[CLUSTER_CLIENT] = client_body(CLUSTER_CLIENT)  # no allowedNamespaces
    look(made, token_body(kind="ClusterEgainClient"))
    condition = kube.statuses[-1]["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("False", "InvalidSpec")
    assert condition["message"].startswith("ClusterEgainClient portal: spec.allowedNamespaces")
    assert egain.requests == 0


def test_inline_fields_beside_a_client_ref_are_invalid() -> None:
    kube, egain, _, made, _ = setup()
    body = token_body()
    body["spec"]["tokenUrl"] = TOKEN_URL
    look(made, body)
    assert ready(kube) == ("False", "InvalidSpec")
    assert egain.requests == 0


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


# --- the client status -------------------------------------------------------


def status_controller(
    kube: FakeKube, tokens: int = 0
) -> tuple[ClientStatusController, ClientCache, list[tuple[str, str, str]]]:
    cache = ClientCache(kube, (), OPERATOR_NAMESPACE, lambda *_: None, lambda _: None)
    events: list[tuple[str, str, str]] = []
    controller = ClientStatusController(
        kube,
        cache,
        ReadSecrets(kube),
        lambda key: tokens,
        recorder(events),
        listed=listed,
        clock=Clock(START),
    )
    return controller, cache, events


async def listed() -> None:
    return None


def test_client_status_says_ready_and_counts_tokens_and_patches_only_changes() -> None:
    kube = FakeKube()
    kube.secrets[(OPERATOR_NAMESPACE, "portal-client")] = credentials("platform-id")
    controller, cache, events = status_controller(kube, tokens=3)
    kube.clients[CLUSTER_CLIENT] = client_body(
        CLUSTER_CLIENT, 4, allowedNamespaces={"selector": {}}
    )
    cache.watches[1]._apply("ADDED", kube.clients[CLUSTER_CLIENT])
    asyncio.run(controller.update(CLUSTER_CLIENT))
    key, status = kube.client_statuses[-1]
    assert key == CLUSTER_CLIENT
    assert status["observedGeneration"] == 4
    assert status["tokens"] == 3
    (condition,) = status["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "Ready",
        "True",
        "CredentialsFound",
    )
    assert condition["observedGeneration"] == 4
    assert events == [], "no Event for a client that was fine from the start"

    asyncio.run(controller.update(CLUSTER_CLIENT))
    assert len(kube.client_statuses) == 1, "patched an unchanged status"
    # A restarted controller sees the status on the client: no patch either.
    again, again_cache, _ = status_controller(kube, tokens=3)
    again_cache.watches[1]._apply(
        "ADDED",
        {**client_body(CLUSTER_CLIENT, 4, allowedNamespaces={"selector": {}}), "status": status},
    )
    asyncio.run(again.update(CLUSTER_CLIENT))
    assert len(kube.client_statuses) == 1


def test_client_status_names_the_missing_secret_or_key_never_a_value() -> None:
    kube = FakeKube()
    controller, cache, events = status_controller(kube)
    kube.clients[EGAIN_CLIENT] = client_body(EGAIN_CLIENT)
    cache.watches[0]._apply("ADDED", kube.clients[EGAIN_CLIENT])
    asyncio.run(controller.update(EGAIN_CLIENT))
    condition = kube.client_statuses[-1][1]["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("False", "CredentialsNotFound")
    assert condition["message"] == "Secret team-a/portal-client not found"
    assert events == [("Warning", "CredentialsNotFound", "Secret team-a/portal-client not found")]

    kube.secrets[("team-a", "portal-client")] = {"data": {"client_id": b64("visible-id")}}
    asyncio.run(controller.update(EGAIN_CLIENT))
    condition = kube.client_statuses[-1][1]["conditions"][0]
    assert condition["message"] == "Secret team-a/portal-client has no non-empty key client_secret"

    kube.secrets[("team-a", "portal-client")] = credentials("visible-id")
    asyncio.run(controller.update(EGAIN_CLIENT))
    condition = kube.client_statuses[-1][1]["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("True", "CredentialsFound")
    assert events[-1][:2] == ("Normal", "CredentialsFound")
    assert "visible-id" not in repr(kube.client_statuses) + repr(events)


def test_only_the_leader_writes_client_status() -> None:
    kube = FakeKube()
    controller, cache, _ = status_controller(kube)
    controller.deactivate()
    kube.clients[EGAIN_CLIENT] = client_body(EGAIN_CLIENT)
    cache.watches[0]._apply("ADDED", kube.clients[EGAIN_CLIENT])

    async def scenario() -> None:
        task = asyncio.create_task(controller.run())
        controller.touch(EGAIN_CLIENT)
        await settle()
        assert kube.client_statuses == [], "a standby replica wrote a status"
        controller.activate()  # marks every known client
        await settle()
        assert [key for key, _ in kube.client_statuses] == [EGAIN_CLIENT]
        task.cancel()

    asyncio.run(scenario())


def test_tokens_wait_for_the_watches_of_the_kind_they_name_only() -> None:
    kube, egain, clock, _, _ = setup()
    kube.secrets[("ns", "creds")] = credentials("inline-id")
    kube.clients[EGAIN_CLIENT] = client_body(EGAIN_CLIENT)
    kube.secrets[("team-a", "portal-client")] = credentials("team-a-id")
    kube.clients[CLUSTER_CLIENT] = client_body(CLUSTER_CLIENT, allowedNamespaces={"names": ["x"]})
    kube.secrets[(OPERATOR_NAMESPACE, "portal-client")] = credentials("platform-id")

    class GatedClients(FakeClients):
        """ClusterEgainClients and namespaces not listed until the gate opens."""

        gate = asyncio.Event()

        async def synced(self, kind: ClientKind) -> None:
            if not kind.namespaced:
                await self.gate.wait()

    made = registry(kube, egain, clock, lambda *_: None)
    clients = GatedClients(kube, OPERATOR_NAMESPACE)
    made = WorkerRegistry(replace(made.reconciler, clients=cast(ClientCache, clients)), clock=clock)

    async def scenario() -> None:
        made.observe_token("ADDED", BODY)
        made.observe_token("ADDED", token_body())
        cluster_token = token_body("api", namespace="x", kind="ClusterEgainClient")
        made.observe_token("ADDED", cluster_token)
        await settle()
        assert sorted(egain.client_ids) == ["inline-id", "team-a-id"]
        clients.gate.set()
        await settle()
        assert sorted(egain.client_ids) == ["inline-id", "platform-id", "team-a-id"]
        await made.stop()

    asyncio.run(scenario())


def test_client_status_rendering_keeps_the_transition_time_while_ready_holds() -> None:
    ref = CredentialsRef("portal-client", "client_id", "client_secret", "team-a")
    later = START + timedelta(minutes=5)
    first = render_client_status(
        generation=1,
        credentials=ref,
        credentials_error=None,
        spec_error=None,
        tokens=0,
        previous_conditions=[],
        now=START,
    )
    assert first["conditions"][0]["message"] == (
        "Secret team-a/portal-client holds keys client_id and client_secret"
    )
    same = render_client_status(
        generation=2,
        credentials=ref,
        credentials_error=None,
        spec_error=None,
        tokens=5,
        previous_conditions=first["conditions"],
        now=later,
    )
    assert same["conditions"][0]["lastTransitionTime"] == "2026-11-23T21:00:00Z"
    assert (same["observedGeneration"], same["tokens"]) == (2, 5)
    broken = render_client_status(
        generation=3,
        credentials=None,
        credentials_error=None,
        spec_error="spec.tokenUrl must start with https://",
        tokens=5,
        previous_conditions=same["conditions"],
        now=later,
    )
    condition = broken["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("False", "InvalidSpec")
    assert condition["lastTransitionTime"] == "2026-11-23T21:05:00Z"
