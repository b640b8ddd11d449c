"""Looks at EgainTokens that name an EgainClient or a ClusterEgainClient, over
in-memory fakes and an injected clock."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import cast

from egain_token_operator.controller.workers import WorkerRegistry
from egain_token_operator.decisions.clients import ClientKind
from egain_token_operator.kube.clientcache import ClientCache
from tests.unit.controller.clients import (
    CLUSTER_CLIENT,
    EGAIN_CLIENT,
    TOKEN_URL,
    client_body,
    credentials,
    look,
    setup,
    token_body,
)
from tests.unit.controller.support import (
    BODY,
    OPERATOR_NAMESPACE,
    FakeClients,
    ready,
    registry,
    settle,
)

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
    assert kube.statuses[-1]["conditions"][0]["message"] == (
        f"Secret {OPERATOR_NAMESPACE}/portal-client with keys client_id and client_secret not found"
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
