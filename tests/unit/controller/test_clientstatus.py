"""The status of EgainClients and ClusterEgainClients, over in-memory fakes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from egain_token_operator.controller.clientstatus import ClientStatusController
from egain_token_operator.decisions.issuer import CredentialsRef
from egain_token_operator.decisions.render import render_client_status
from egain_token_operator.kube.clientcache import ClientCache
from egain_token_operator.kube.secretcache import ReadSecrets
from tests.unit.clock import Clock
from tests.unit.controller.clients import (
    CLUSTER_CLIENT,
    EGAIN_CLIENT,
    client_body,
    credentials,
)
from tests.unit.controller.support import (
    OPERATOR_NAMESPACE,
    START,
    b64,
    recorder,
    settle,
)
from tests.unit.fakes import FakeKube

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
    missing = "Secret team-a/portal-client with keys client_id and client_secret not found"
    assert condition["message"] == missing
    assert events == [("Warning", "CredentialsNotFound", missing)]

    kube.secrets[("team-a", "portal-client")] = {"data": {"client_id": b64("visible-id")}}
    asyncio.run(controller.update(EGAIN_CLIENT))
    condition = kube.client_statuses[-1][1]["conditions"][0]
    # A Secret without a key reads as one that does not exist.
    assert condition["message"] == missing

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
