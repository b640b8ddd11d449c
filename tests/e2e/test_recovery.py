"""Recovery: an outage that outlasts a token, at the operator's default retry settings."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from testground.emulator import EgainEmulator, FaultKind
from tests.e2e.conftest import MakeClient, StartOperator, client_app_spec, parse_time, successes
from tests.e2e.support import Cluster, egain_token, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


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

    # eGain fails from before the refresh time until well past expiry: the
    # tries before expiry (a quarter of the remaining validity apart) run up
    # the failure count, which alone would mean waits of a minute or more.
    emulator.set_fault(FaultKind.SERVER_ERROR, count=None, client_id=client.client_id)
    time.sleep(max((expires - datetime.now(UTC)).total_seconds(), 0) + 25)
    status = cluster.token(namespace, "outage")["status"]
    assert status["consecutiveFailures"] >= 5
    assert (cluster.ready(namespace, "outage") or {}).get("status") == "False"
    emulator.clear_faults()
    recovered = time.monotonic()
    wait_until(lambda: successes(emulator, client) == 2, "a token after the outage", 40)
    took = time.monotonic() - recovered
    failures = status["consecutiveFailures"]
    print(f"re-issued {took:.1f} s after eGain recovered, after {failures} failures")
    assert took <= 25, f"re-issued only {took:.1f} s after eGain recovered"
    cluster.wait_ready(namespace, "outage", "True", "TokenIssued", timeout=10)
