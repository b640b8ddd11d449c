"""Recovery: an outage that outlasts a token, at the operator's default retry settings."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from testground.emulator import EgainEmulator, FaultKind
from tests.e2e.conftest import MakeClient, StartOperator, client_app_spec, parse_time, successes
from tests.e2e.support import Cluster, egain_token, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

# Once no valid token remains, no retry waits longer than this (docs/api.md).
MAX_EXPIRED_WAIT = 20
# Failures before eGain recovers: after the 7th the backoff's step is 64 s, so
# without the cap above the next try would come 32-64 s later.
FAILURES = 7


def test_an_expired_token_is_reissued_soon_after_an_outage(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    start_operator: StartOperator,
) -> None:
    # The retry settings at their defaults (the other tests shorten them).
    start_operator("--retry-initial-delay", "1", "--retry-max-delay", "300")
    client = make_client(lifetime=12)
    cluster.apply(egain_token(namespace, "outage", client_app_spec(emulator, client)))
    token = cluster.wait_ready(namespace, "outage", "True", "TokenIssued")
    expires = parse_time(token["status"]["expiresAt"])

    # eGain fails from before the refresh time until a try after expiry: the
    # tries before expiry (a quarter of the remaining validity apart) run up
    # the failure count, which alone would mean waits of a minute or more.
    emulator.set_fault(FaultKind.SERVER_ERROR, count=None, client_id=client.client_id)

    def failed_after_expiry() -> dict[str, Any] | None:
        # The wait after a failure past expiry is the one the cap must shorten.
        status: dict[str, Any] = cluster.token(namespace, "outage")["status"]
        failure = status.get("lastFailure") or {}
        past = "time" in failure and parse_time(failure["time"]) > expires
        return status if past and status["consecutiveFailures"] >= FAILURES else None

    remaining = max((expires - datetime.now(UTC)).total_seconds(), 0)
    status = wait_until(
        failed_after_expiry,
        f"a failure after expiry, the {FAILURES}th or later",
        remaining + 3 * MAX_EXPIRED_WAIT,
    )
    assert (cluster.ready(namespace, "outage") or {}).get("status") == "False"
    emulator.clear_faults()
    recovered = time.monotonic()
    wait_until(lambda: successes(emulator, client) == 2, "a token after the outage", 40)
    took = time.monotonic() - recovered
    failures = status["consecutiveFailures"]
    print(f"re-issued {took:.1f} s after eGain recovered, after {failures} failures")
    # Within 20 s of eGain recovering (docs/api.md), plus the request itself.
    assert took <= MAX_EXPIRED_WAIT + 5, f"re-issued only {took:.1f} s after eGain recovered"
    cluster.wait_ready(namespace, "outage", "True", "TokenIssued", timeout=10)
