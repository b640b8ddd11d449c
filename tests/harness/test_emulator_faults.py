"""The fault knobs: latency, server errors, rate limits, odd bodies, resets, hangs, redirects."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from testground.emulator import REDIRECT_TARGET_PATH, EgainEmulator, FaultKind, Flow
from tests.harness.conftest import AC, CA, LIFETIME, TENANT, Creds, new_client, token_request


def test_latency_delays_the_next_n_answers(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds
) -> None:
    emulator.set_fault(FaultKind.LATENCY, delay=0.2, count=1)
    started = time.monotonic()
    assert token_request(http, emulator, CA, creds).status_code == 200
    assert time.monotonic() - started >= 0.2
    assert token_request(http, emulator, CA, creds).status_code == 200
    assert [r.delayed for r in emulator.requests()] == [0.2, 0.0]


def test_latency_combines_with_another_fault(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds
) -> None:
    emulator.set_fault("latency", delay=0.05)
    emulator.set_fault("server_error")
    assert token_request(http, emulator, CA, creds).status_code == 503
    [record] = emulator.requests()
    assert (record.delayed, record.fault) == (0.05, FaultKind.SERVER_ERROR)


@pytest.mark.parametrize("flow", list(Flow))
def test_server_errors_for_the_next_n_requests(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds, flow: Flow
) -> None:
    emulator.set_fault(FaultKind.SERVER_ERROR, count=2)
    statuses = [token_request(http, emulator, flow, creds).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert [r.fault for r in emulator.requests()] == [FaultKind.SERVER_ERROR] * 2 + [None]


def test_fault_status_is_configurable_and_lasts_until_cleared(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds
) -> None:
    emulator.set_fault("server_error", status=500, count=None)
    assert [token_request(http, emulator, CA, creds).status_code for _ in range(3)] == [500] * 3
    assert emulator.faults()[0].count is None
    emulator.clear_faults()
    assert token_request(http, emulator, CA, creds).status_code == 200


def test_fault_for_one_client_spares_the_others(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds
) -> None:
    victim = new_client(emulator)
    emulator.set_fault("server_error", client_id=victim.client_id, count=-1)
    assert token_request(http, emulator, CA, creds).status_code == 200
    assert token_request(http, emulator, AC, victim).status_code == 503
    assert token_request(http, emulator, CA, creds).status_code == 200


def test_setting_a_fault_again_replaces_it(emulator: EgainEmulator) -> None:
    emulator.set_fault("server_error", count=5)
    emulator.set_fault("server_error", count=1, status=502)
    emulator.set_fault("server_error", count=1, client_id="x")
    assert [(f.count, f.status, f.client_id) for f in emulator.faults()] == [
        (1, 502, None),
        (1, 503, "x"),
    ]


@pytest.mark.parametrize(
    "options",
    [
        {"kind": "nonsense"},
        {"kind": "server_error", "count": 0},
        {"kind": "server_error", "status": 404},
        {"kind": "redirect", "status": 200},
        {"kind": "latency", "delay": -1},
    ],
)
def test_invalid_faults_are_refused(emulator: EgainEmulator, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        emulator.set_fault(**options)
    assert emulator.faults() == []


def test_rate_limited_with_retry_after(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds
) -> None:
    emulator.set_fault(FaultKind.RATE_LIMITED, retry_after=7)
    response = token_request(http, emulator, AC, creds)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"


def test_rate_limited_without_retry_after(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds
) -> None:
    emulator.set_fault(FaultKind.RATE_LIMITED, retry_after=None)
    response = token_request(http, emulator, CA, creds)
    assert response.status_code == 429
    assert "Retry-After" not in response.headers


@pytest.mark.parametrize(
    ("kind", "content_type"),
    [(FaultKind.NON_JSON, "application/json"), (FaultKind.HTML, "text/html")],
)
def test_unparsable_success_bodies(
    http: httpx.Client,
    emulator: EgainEmulator,
    creds: Creds,
    kind: FaultKind,
    content_type: str,
) -> None:
    emulator.set_fault(kind)
    response = token_request(http, emulator, CA, creds)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(content_type)
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert emulator.issued_tokens(creds.client_id) == []


def test_success_without_expires_in(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds
) -> None:
    emulator.set_fault(FaultKind.NO_EXPIRES_IN)
    body = token_request(http, emulator, CA, creds).json()
    assert "expires_in" not in body
    assert emulator.is_issued_token(body["access_token"])
    assert "expires_in" in token_request(http, emulator, CA, creds).json()


def test_expires_in_as_a_numeric_string(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds
) -> None:
    emulator.set_fault(FaultKind.STRING_EXPIRES_IN)
    assert token_request(http, emulator, AC, creds).json()["expires_in"] == str(LIFETIME)


def test_shaping_faults_wait_for_a_success(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds
) -> None:
    emulator.set_fault(FaultKind.NO_EXPIRES_IN)
    rejected = token_request(http, emulator, CA, creds, form={"client_secret": "wrong"})
    assert rejected.status_code == 401
    assert "expires_in" not in token_request(http, emulator, CA, creds).json()


def test_connection_reset(http: httpx.Client, emulator: EgainEmulator, creds: Creds) -> None:
    emulator.set_fault(FaultKind.RESET)
    # The server sends a TCP RST; through TLS the client may see it as an
    # abrupt EOF, so only "a transport error, no response" is asserted.
    with pytest.raises(httpx.TransportError):
        token_request(http, emulator, CA, creds)
    [record] = emulator.requests()
    assert (record.status, record.fault, record.client_id) == (
        None,
        FaultKind.RESET,
        creds.client_id,
    )
    assert token_request(http, emulator, CA, creds).status_code == 200


def test_hang_times_out_the_client_until_cleared(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds
) -> None:
    emulator.set_fault(FaultKind.HANG, count=None)
    with pytest.raises(httpx.ReadTimeout):
        token_request(http, emulator, CA, creds, timeout=0.2)
    [record] = emulator.requests()
    assert (record.status, record.fault) == (None, FaultKind.HANG)
    emulator.clear_faults()
    assert token_request(http, emulator, CA, creds).status_code == 200


def test_redirect_is_not_followed(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds
) -> None:
    emulator.set_fault(FaultKind.REDIRECT)
    response = token_request(http, emulator, CA, creds)
    assert response.status_code == 302
    assert response.headers["Location"] == emulator.redirect_target_url
    assert [r.path for r in emulator.requests()] == [f"/system/auth/{TENANT}-U/oauth2/token"]


def test_redirect_target_records_a_client_that_follows(
    emulator: EgainEmulator, creds: Creds
) -> None:
    """What the operator must never do: a 307 makes the client re-send its credentials."""
    emulator.set_fault(FaultKind.REDIRECT, status=307)
    with httpx.Client(verify=emulator.client_ssl_context(), follow_redirects=True) as follower:
        response = token_request(follower, emulator, CA, creds)
    assert response.status_code == 404
    leaked = [r for r in emulator.requests() if r.path == REDIRECT_TARGET_PATH]
    assert [r.client_id for r in leaked] == [creds.client_id]


@pytest.mark.parametrize("value", [-5, 0, 0.5, 3599.5, 1e12, "3600.5", "soon", True, None])
def test_expires_in_takes_any_json_value(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds, value: object
) -> None:
    emulator.set_fault(FaultKind.EXPIRES_IN, value=value)
    body = token_request(http, emulator, CA, creds).json()
    assert body["expires_in"] == value
    assert emulator.is_issued_token(body["access_token"])
    assert token_request(http, emulator, CA, creds).json()["expires_in"] == LIFETIME


@pytest.mark.parametrize("text", ["\r\nX-Injected: yes", "\x00\x1b[2J", "\u00e9"])
def test_hostile_token_follows_a_real_token_with_text(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds, text: str
) -> None:
    emulator.set_fault(FaultKind.HOSTILE_TOKEN, text=text)
    token = token_request(http, emulator, CA, creds).json()["access_token"]
    assert token.endswith(text)
    issued = token.removesuffix(text)
    assert emulator.is_issued_token(issued)
    # The issued part is found in a text that shows the hostile token.
    assert list(emulator.secrets_in(f"logged: {token}")) == [issued]


def test_oversized_answer_is_a_valid_token_answer_of_that_size(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds
) -> None:
    emulator.set_fault(FaultKind.OVERSIZED, size=3 * 1024 * 1024)
    response = token_request(http, emulator, CA, creds)
    assert response.status_code == 200
    assert len(response.content) == 3 * 1024 * 1024
    assert int(response.headers["content-length"]) == 3 * 1024 * 1024
    assert emulator.is_issued_token(response.json()["access_token"])


def test_deep_json_nests_an_extra_field(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds
) -> None:
    emulator.set_fault(FaultKind.DEEP_JSON, depth=5000)
    body = token_request(http, emulator, CA, creds).content
    assert body.endswith(b', "extra": ' + b"[" * 5000 + b"]" * 5000 + b"}")
    with pytest.raises(RecursionError):
        json.loads(body)
    token = json.loads(body[: body.index(b', "extra"')] + b"}")["access_token"]
    assert emulator.is_issued_token(token)


def test_hostile_answers_are_set_over_the_admin_api(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds
) -> None:
    knobs = [
        {"kind": "expires_in", "value": -1},
        {"kind": "hostile_token", "text": "\n"},
        {"kind": "oversized", "size": 100_000},
        {"kind": "deep_json", "depth": 10},
    ]
    for knob in knobs:
        assert http.post(emulator.admin_url + "/faults", json=knob).status_code == 201
    listed = {f["kind"]: f for f in http.get(emulator.admin_url + "/faults").json()}
    assert listed["expires_in"]["value"] == -1
    assert listed["hostile_token"]["text"] == "\n"
    assert listed["oversized"]["size"] == 100_000
    assert listed["deep_json"]["depth"] == 10
    refused = http.post(emulator.admin_url + "/faults", json={"kind": "deep_json", "depth": 0})
    assert refused.status_code == 400
