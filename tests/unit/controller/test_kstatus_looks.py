"""The kstatus conditions (`Reconciling`, `Stalled`) in the statuses a look
writes, for EgainTokens and clients, over in-memory fakes."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from egain_token_operator.controller.observe import TokenWorker
from egain_token_operator.decisions.reasons import (
    InvalidCredentialsError,
    TokenEndpointUnavailableError,
)
from egain_token_operator.decisions.timestamps import rfc3339
from tests.unit.controller.clients import EGAIN_CLIENT, client_body, credentials
from tests.unit.controller.support import BODY, START, controller, look, setup
from tests.unit.controller.test_clientstatus import status_controller
from tests.unit.controller.test_reconcile import restarted
from tests.unit.fakes import FakeKube


def said(conditions: list[dict[str, Any]]) -> list[tuple[str, str, str, int]]:
    """Each condition's type, status, reason and observedGeneration."""
    return [(c["type"], c["status"], c["reason"], c["observedGeneration"]) for c in conditions]


def test_a_permanent_failure_is_stalled_until_a_token_is_issued() -> None:
    kube, egain, clock = setup()
    egain.failure = InvalidCredentialsError("invalid_client")
    made, _ = controller(kube, egain, clock)
    look(made, TokenWorker(("ns", "portal"), BODY))
    held = kube.held[("ns", "portal")]
    assert held["observedGeneration"] == 1
    assert said(held["conditions"]) == [
        ("Ready", "False", "InvalidCredentials", 1),
        ("Stalled", "True", "InvalidCredentials", 1),
    ]
    assert held["conditions"][1]["message"] == "invalid_client"

    # A restart that finds it so writes nothing.
    written = len(kube.statuses)
    clock.now += timedelta(minutes=1)
    second, worker = restarted(kube, egain, clock)
    look(second, worker)
    assert len(kube.statuses) == written, "a current Stalled status was patched"

    # Fixed: Ready alone; Stalled is removed, not written False.
    egain.failure = None
    clock.now += timedelta(minutes=10)
    look(second, worker)
    assert said(kube.held[("ns", "portal")]["conditions"]) == [("Ready", "True", "TokenIssued", 1)]


def test_a_transient_failure_without_a_token_is_reconciling_from_its_start() -> None:
    kube, egain, clock = setup()
    egain.failure = TokenEndpointUnavailableError("HTTP 503 from ai.egain.cloud")
    made, _ = controller(kube, egain, clock)
    worker = TokenWorker(("ns", "portal"), BODY)
    retry = look(made, worker)
    assert said(kube.held[("ns", "portal")]["conditions"]) == [
        ("Ready", "False", "TokenEndpointUnavailable", 1),
        ("Reconciling", "True", "TokenEndpointUnavailable", 1),
    ]
    assert retry is not None
    egain.failure = TokenEndpointUnavailableError("timed out after 10s")
    clock.now = retry
    look(made, worker)
    reconciling = kube.held[("ns", "portal")]["conditions"][1]
    assert (reconciling["message"], reconciling["lastTransitionTime"]) == (
        "timed out after 10s",
        rfc3339(START),
    )
    egain.failure = None
    clock.now += timedelta(minutes=1)
    look(made, worker)
    assert said(kube.held[("ns", "portal")]["conditions"]) == [("Ready", "True", "TokenIssued", 1)]


def test_a_client_without_its_credentials_is_stalled_until_they_exist() -> None:
    kube = FakeKube()
    status, cache, _ = status_controller(kube)
    kube.clients[EGAIN_CLIENT] = client_body(EGAIN_CLIENT, 2)
    cache.watches[0]._apply("ADDED", kube.clients[EGAIN_CLIENT])
    asyncio.run(status.update(EGAIN_CLIENT))
    written = kube.client_statuses[-1][1]
    assert written["observedGeneration"] == 2
    assert said(written["conditions"]) == [
        ("Ready", "False", "CredentialsNotFound", 2),
        ("Stalled", "True", "CredentialsNotFound", 2),
    ]
    # A restarted controller that finds it so writes nothing.
    again, again_cache, _ = status_controller(kube)
    again_cache.watches[0]._apply("ADDED", {**client_body(EGAIN_CLIENT, 2), "status": written})
    asyncio.run(again.update(EGAIN_CLIENT))
    assert len(kube.client_statuses) == 1

    kube.secrets[("team-a", "portal-client")] = credentials("visible-id")
    asyncio.run(again.update(EGAIN_CLIENT))
    found = kube.client_statuses[-1][1]["conditions"]
    assert said(found) == [("Ready", "True", "CredentialsFound", 2)]
