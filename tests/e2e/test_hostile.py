"""Hostile token answers: each refused with a clear reason, retried with backoff, never written.

One EgainToken per kind of answer, each with its own eGain client, so that the
emulator answers each one its own way at the same time.
"""

from __future__ import annotations

from typing import Any

import pytest

from testground.emulator import EgainEmulator, FaultKind
from tests.e2e.conftest import (
    BACKOFF,
    MakeClient,
    MakeReadyToken,
    client_app_spec,
    parse_time,
)
from tests.e2e.support import Cluster, OperatorProcess, egain_token, tried, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300), pytest.mark.usefixtures("operator")]

# Tries of a refused answer to wait for: the backoff reaches its cap (4 s) by the last.
TRIES = 5

# (name, fault, knob, the message after "HTTP 200 from localhost: ")
REFUSED: list[tuple[str, FaultKind, dict[str, Any], str]] = [
    ("oversized", FaultKind.OVERSIZED, {"size": 8 * 1024 * 1024}, "the body is larger than 64 KiB"),
    ("deep", FaultKind.DEEP_JSON, {"depth": 20_000}, "the body is JSON nested too deeply"),
    (
        "crlf",
        FaultKind.HOSTILE_TOKEN,
        {"text": "\r\nX-Injected: yes"},
        "access_token holds characters that cannot go in an HTTP header "
        "(control characters, line breaks or non-ASCII)",
    ),
    (
        "control",
        FaultKind.HOSTILE_TOKEN,
        {"text": "\x1b[2J\x00"},
        "access_token holds characters that cannot go in an HTTP header "
        "(control characters, line breaks or non-ASCII)",
    ),
    ("negative", FaultKind.EXPIRES_IN, {"value": -5}, "expires_in -5s is shorter than 1s"),
    ("zero", FaultKind.EXPIRES_IN, {"value": 0}, "expires_in 0s is shorter than 1s"),
    ("fraction", FaultKind.EXPIRES_IN, {"value": "0.5"}, "expires_in 0.5s is shorter than 1s"),
    (
        "huge",
        FaultKind.EXPIRES_IN,
        {"value": 1e12},
        "expires_in is more than 31622400s (366 days)",
    ),
    ("word", FaultKind.EXPIRES_IN, {"value": "soon"}, "expires_in is not a number"),
]


def test_hostile_answers_are_refused_backed_off_and_recovered_from(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    operator: OperatorProcess,
) -> None:
    clients = {}
    for name, fault, knob, _ in REFUSED:
        client = make_client(secret_name=f"{name}-client")
        emulator.set_fault(fault, count=None, client_id=client.client_id, **knob)
        cluster.apply(egain_token(namespace, name, client_app_spec(emulator, client)))
        clients[name] = client
    for name, _, _, message in REFUSED:
        token = cluster.wait_ready(namespace, name, "False", "InvalidTokenResponse")
        ready = token["status"]["conditions"][0]
        assert ready["message"] == f"HTTP 200 from localhost: {message}", name
    for name, _, _, _ in REFUSED:
        # Retried, each try as far after the last as the backoff says.
        requests = wait_until(
            tried(emulator, clients[name].client_id, TRIES), f"{TRIES} tries of {name}"
        )
        # Each answer issued a token the operator refused.
        assert all(r.token_issued for r in requests), name
        BACKOFF.check_failing_requests([r.monotonic for r in requests], name)
        assert cluster.secret_data(namespace, name) is None, name
        events = [e for e in cluster.events(namespace) if e["involvedObject"]["name"] == name]
        assert [e["reason"] for e in events if e["type"] == "Warning"] == [
            "InvalidTokenResponse"
        ], name
    assert operator.process is not None and operator.process.poll() is None
    emulator.clear_faults()
    for name, _, _, _ in REFUSED:
        token = cluster.wait_ready(namespace, name, "True", "TokenIssued", timeout=20)
        assert token["status"]["consecutiveFailures"] == 0
        data = cluster.secret_data(namespace, name)
        assert data is not None
        assert emulator.is_issued_token(data["access_token"].reveal())


@pytest.mark.parametrize("value", [3599.5, "3599.5"])
def test_a_fractional_lifetime_is_served_never_past_the_real_expiry(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    operator: OperatorProcess,
    value: object,
) -> None:
    client = make_client()
    emulator.set_fault(FaultKind.EXPIRES_IN, client_id=client.client_id, value=value)
    cluster.apply(egain_token(namespace, "fraction", client_app_spec(emulator, client)))
    status = cluster.wait_ready(namespace, "fraction", "True", "TokenIssued")["status"]
    lifetime = parse_time(status["expiresAt"]) - parse_time(status["issuedAt"])
    assert 3599 <= lifetime.total_seconds() <= 3600
    (request,) = wait_until(lambda: emulator.requests(client.client_id), "the request")
    assert request.token_issued


def test_a_hostile_refresh_leaves_the_valid_token_in_place(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_ready_token: MakeReadyToken,
) -> None:
    client, _ = make_ready_token("kept", client_options={"lifetime": 20}, refreshBefore="15s")
    before = cluster.secret_data(namespace, "kept")
    assert before is not None
    emulator.set_fault(FaultKind.HOSTILE_TOKEN, count=None, client_id=client.client_id)

    def refused() -> dict[str, Any] | None:
        status = cluster.token(namespace, "kept")["status"]
        return status if status.get("consecutiveFailures", 0) >= 1 else None

    status = wait_until(refused, "a refused refresh", timeout=20)
    assert status["lastFailure"]["reason"] == "InvalidTokenResponse"
    assert status["conditions"][0]["status"] == "True"  # the old token is still valid
    after = cluster.secret_data(namespace, "kept")
    assert after == before
    emulator.clear_faults()
    wait_until(
        lambda: cluster.secret_data(namespace, "kept") != before, "a good refresh", timeout=20
    )
    refreshed = cluster.secret_data(namespace, "kept")
    assert refreshed is not None
    assert all(value.reveal().isprintable() for value in refreshed.values())
