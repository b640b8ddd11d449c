"""The emulator's knobs for load figures: concurrent requests counted, expiries aligned."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import httpx

from testground.emulator import Concurrency, EgainEmulator, FaultKind
from tests.harness.conftest import CA, LIFETIME, MANAGE, READ, TENANT, Creds, token_request


def _wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_requests_in_flight_and_their_peak_are_counted(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds
) -> None:
    assert emulator.concurrency() == Concurrency(current=0, peak=0)
    emulator.set_fault(FaultKind.HANG, count=None, client_id=creds.client_id)
    statuses: list[int | None] = []

    def request() -> None:
        with httpx.Client(verify=emulator.client_ssl_context(), timeout=10) as client:
            try:
                statuses.append(token_request(client, emulator, CA, creds).status_code)
            except httpx.TransportError:
                statuses.append(None)  # a released hang closes without an answer

    threads = [threading.Thread(target=request) for _ in range(3)]
    for thread in threads:
        thread.start()
    _wait_for(lambda: emulator.concurrency().current == 3, "three requests in flight")
    # Admin requests are not token requests: they are not counted.
    assert http.get(emulator.admin_url + "/concurrency").json() == {"current": 3, "peak": 3}
    emulator.clear_faults()
    for thread in threads:
        thread.join(timeout=10)
    assert statuses == [None, None, None]
    # A client may read the answer before the server's thread counts it done.
    _wait_for(idle(emulator), "no request in flight")
    assert emulator.concurrency() == Concurrency(current=0, peak=3)
    assert token_request(http, emulator, CA, creds).status_code == 200
    _wait_for(idle(emulator), "no request in flight")
    assert emulator.concurrency() == Concurrency(current=0, peak=3)
    emulator.reset()
    assert emulator.concurrency() == Concurrency(current=0, peak=0)
    token_request(http, emulator, CA, creds)
    _wait_for(idle(emulator), "no request in flight")
    assert emulator.concurrency() == Concurrency(current=0, peak=1)


def idle(emulator: EgainEmulator) -> Callable[[], bool]:
    """Whether no token request is in flight."""
    return lambda: emulator.concurrency().current == 0


def test_tokens_of_a_client_with_an_expiry_instant_expire_together(
    http: httpx.Client, emulator: EgainEmulator
) -> None:
    creds = Creds("client-aligned", "aligned-secret-0123456789")
    expires_at = time.time() + 100
    emulator.register_client(
        creds.client_id, creds.client_secret, TENANT, [READ, MANAGE], LIFETIME,
        expires_at=expires_at,
    )  # fmt: skip
    sent = time.time()
    first = token_request(http, emulator, CA, creds).json()
    answered = time.time()
    time.sleep(1.1)
    second = token_request(http, emulator, CA, creds).json()
    # The whole seconds left at some moment of the request, however long it took.
    left = (math.ceil(expires_at - answered), math.ceil(expires_at - sent))
    assert left[0] <= first["expires_in"] <= left[1], (first["expires_in"], left)
    assert second["expires_in"] < first["expires_in"]
    expiries = [t.expires_at.timestamp() for t in emulator.issued_tokens(creds.client_id)]
    assert all(abs(e - expires_at) < 1.1 for e in expiries)

    emulator.update_client(creds.client_id, expires_at=time.time() - 5)
    assert token_request(http, emulator, CA, creds).json()["expires_in"] == 1  # never 0 or less
    emulator.update_client(creds.client_id, scopes=[READ])  # keeps the expiry instant
    assert token_request(http, emulator, CA, creds).json()["expires_in"] == 1
    emulator.update_client(creds.client_id, expires_at=None)
    assert token_request(http, emulator, CA, creds).json()["expires_in"] == LIFETIME
