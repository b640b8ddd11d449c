"""The granted_scope knob: a real token answer whose `scope` says what the
test chooses, as an issuer granting more than it was asked for does."""

from __future__ import annotations

import httpx

from testground.emulator import EgainEmulator, FaultKind
from tests.harness.conftest import CA, READ, Creds, token_request

BROADER = f"{READ} https://graph.microsoft.com/.default"


def test_granted_scope_replaces_the_scope_of_the_next_answer(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds
) -> None:
    emulator.set_fault(FaultKind.GRANTED_SCOPE, value=BROADER)
    answer = token_request(http, emulator, CA, creds).json()
    assert answer["scope"] == BROADER
    # A token really issued, for what was asked.
    assert emulator.is_issued_token(answer["access_token"])
    assert token_request(http, emulator, CA, creds).json()["scope"] == READ


def test_granted_scope_waits_for_a_success_and_is_set_over_http(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds
) -> None:
    knob = {"kind": "granted_scope", "value": BROADER, "count": -1}
    assert http.post(emulator.admin_url + "/faults", json=knob).status_code == 201
    rejected = token_request(http, emulator, CA, creds, form={"client_secret": "wrong"})
    assert rejected.status_code == 401
    for _ in range(2):
        assert token_request(http, emulator, CA, creds).json()["scope"] == BROADER
    # null: an answer without a granted scope.
    emulator.set_fault(FaultKind.GRANTED_SCOPE)
    assert token_request(http, emulator, CA, creds).json()["scope"] is None
