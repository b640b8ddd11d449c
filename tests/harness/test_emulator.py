"""The eGain emulator, exercised over real HTTPS as the operator will use it."""

from __future__ import annotations

import datetime
import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

import testground
from testground.emulator import (
    ANONYMOUS_SCOPE_PREFIX,
    REDIRECT_TARGET_PATH,
    EgainEmulator,
    FaultKind,
    Flow,
    token_fingerprint,
)

TENANT = "TMPRODB88619984"
OTHER_TENANT = "TMPRODB00000001"
READ = "knowledge.portalmgr.read"
MANAGE = "core.aiservices.manage"
LIFETIME = 1800
FORM = "application/x-www-form-urlencoded"
# Where `testground` is importable from, for the emulator run as a program.
HACK_DIR = Path(testground.__file__).resolve().parents[1]


@dataclass(frozen=True)
class Creds:
    client_id: str
    client_secret: str = field(repr=False)  # an assertion message may print this object


def new_client(emulator: EgainEmulator, flows: tuple[Flow, ...] = tuple(Flow)) -> Creds:
    """Register a client unique to the calling test."""
    creds = Creds(f"client-{secrets.token_hex(6)}", secrets.token_urlsafe(32))
    emulator.register_client(
        creds.client_id, creds.client_secret, TENANT, [READ, MANAGE], LIFETIME, flows
    )
    return creds


@pytest.fixture
def creds(emulator: EgainEmulator) -> Creds:
    return new_client(emulator)


@pytest.fixture
def http(emulator: EgainEmulator) -> Iterator[httpx.Client]:
    """A client trusting only the emulator's CA; like the operator, it never follows redirects."""
    with httpx.Client(verify=emulator.client_ssl_context(), timeout=5.0) as client:
        yield client


def token_request(
    http: httpx.Client,
    emulator: EgainEmulator,
    flow: Flow,
    creds: Creds,
    *,
    form: dict[str, str | None] | None = None,
    extra: tuple[tuple[str, str], ...] = (),
    scopes: tuple[str, ...] = (READ,),
    prefix: bool = True,
    path_tenant: str = TENANT,
    query: str | None = None,
    method: str = "POST",
    content_type: str = FORM,
    timeout: float = 5.0,
) -> httpx.Response:
    """A well-formed request of `flow`, altered by the keyword arguments.

    `form` overrides body parameters (None drops one), `extra` appends raw
    pairs (to repeat one), `prefix=False` sends AnonymousCustomer scopes bare.
    """
    if flow is Flow.ANONYMOUS_CUSTOMER and prefix:
        scopes = tuple(ANONYMOUS_SCOPE_PREFIX + s for s in scopes)
    params: dict[str, str | None] = {
        "grant_type": "client_credentials",
        "client_id": creds.client_id,
        "client_secret": creds.client_secret,
        "scope": " ".join(scopes),
        **(form or {}),
    }
    pairs = [(k, v) for k, v in params.items() if v is not None] + list(extra)
    if flow is Flow.CLIENT_APP:
        url = emulator.client_app_token_url(path_tenant)
    else:
        if query is None:
            query = urlencode({"user_type": "customer", "domain_hint": TENANT})
        url = f"{emulator.anonymous_token_url()}?{query}"
    body = json.dumps(dict(pairs)) if content_type == "application/json" else urlencode(pairs)
    return http.request(
        method, url, content=body, headers={"Content-Type": content_type}, timeout=timeout
    )


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == error
    assert body["error_description"]


# -- acceptance ---------------------------------------------------------------


@pytest.mark.parametrize("flow", list(Flow))
def test_issues_a_token(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds, flow: Flow
) -> None:
    response = token_request(http, emulator, flow, creds, scopes=(READ, MANAGE))

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == LIFETIME
    prefix = ANONYMOUS_SCOPE_PREFIX if flow is Flow.ANONYMOUS_CUSTOMER else ""
    assert body["scope"] == f"{prefix}{READ} {prefix}{MANAGE}"
    token = body["access_token"]
    assert emulator.is_issued_token(token, client_id=creds.client_id)
    assert not emulator.is_issued_token(token, client_id="someone-else")
    assert not emulator.is_issued_token(token + "x")
    info = emulator.token_info(token)
    assert info is not None
    assert (info.flow, info.tenant, info.fingerprint) == (flow, TENANT, token_fingerprint(token))
    assert not info.expired
    lifetime = info.expires_at - info.issued_at
    assert lifetime == datetime.timedelta(seconds=LIFETIME)
    assert emulator.last_issued_expiry(creds.client_id) == info.expires_at


def test_tokens_are_unique_and_opaque(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds
) -> None:
    tokens = {
        token_request(http, emulator, flow, creds).json()["access_token"] for flow in (*Flow, *Flow)
    }
    assert len(tokens) == 4
    assert all("." not in t for t in tokens)  # opaque, not a JWT
    assert len(emulator.issued_tokens(creds.client_id)) == 4


def test_client_app_path_accepts_any_suffix_and_hyphenated_tenants(
    http: httpx.Client, emulator: EgainEmulator
) -> None:
    emulator.register_client("hyphen", "s3cret-value", "TEN-ANT", [READ])
    url = emulator.client_app_token_url("TEN-ANT", suffix="C")
    data = {
        "grant_type": "client_credentials",
        "client_id": "hyphen",
        "client_secret": "s3cret-value",
        "scope": READ,
    }
    assert http.post(url, data=data).status_code == 200
    assert emulator.requests("hyphen")[0].tenant == "TEN-ANT"


# -- rejections ---------------------------------------------------------------

BOTH = list(Flow)
CA, AC = Flow.CLIENT_APP, Flow.ANONYMOUS_CUSTOMER
REJECTIONS: list[tuple[str, list[Flow], dict[str, Any], int, str]] = [
    ("GET", BOTH, {"method": "GET"}, 405, "invalid_request"),
    ("PUT", BOTH, {"method": "PUT"}, 405, "invalid_request"),
    ("json body", BOTH, {"content_type": "application/json"}, 400, "invalid_request"),
    ("text body", BOTH, {"content_type": "text/plain"}, 400, "invalid_request"),
    ("no grant_type", BOTH, {"form": {"grant_type": None}}, 400, "invalid_request"),
    ("password grant", BOTH, {"form": {"grant_type": "password"}}, 400, "unsupported_grant_type"),
    ("no client_id", BOTH, {"form": {"client_id": None}}, 400, "invalid_request"),
    ("no client_secret", BOTH, {"form": {"client_secret": None}}, 400, "invalid_request"),
    ("no scope", BOTH, {"form": {"scope": None}}, 400, "invalid_request"),
    ("empty scope", BOTH, {"form": {"scope": ""}}, 400, "invalid_request"),
    ("repeated parameter", BOTH, {"extra": (("grant_type", "client_credentials"),)}, 400,
     "invalid_request"),
    ("unknown client", BOTH, {"form": {"client_id": "nobody"}}, 401, "invalid_client"),
    ("wrong secret", BOTH, {"form": {"client_secret": "wrong"}}, 401, "invalid_client"),
    ("scope not granted", BOTH, {"scopes": (READ, "knowledge.admin")}, 400, "invalid_scope"),
    ("two spaces between scopes", [CA], {"form": {"scope": f"{READ}  {MANAGE}"}}, 400,
     "invalid_scope"),
    ("other tenant's path", [CA], {"path_tenant": OTHER_TENANT}, 400, "unauthorized_client"),
    ("prefixed scope", [CA], {"form": {"scope": ANONYMOUS_SCOPE_PREFIX + READ}}, 400,
     "invalid_scope"),
    ("unprefixed scope", [AC], {"prefix": False}, 400, "invalid_scope"),
    ("no user_type", [AC], {"query": f"domain_hint={TENANT}"}, 400, "invalid_request"),
    ("user_type agent", [AC], {"query": f"user_type=agent&domain_hint={TENANT}"}, 400,
     "invalid_request"),
    ("no domain_hint", [AC], {"query": "user_type=customer"}, 400, "invalid_request"),
    ("empty domain_hint", [AC], {"query": "user_type=customer&domain_hint="}, 400,
     "invalid_request"),
    ("other domain_hint", [AC], {"query": f"user_type=customer&domain_hint={OTHER_TENANT}"},
     400, "invalid_request"),
    ("repeated domain_hint", [AC],
     {"query": f"user_type=customer&domain_hint={TENANT}&domain_hint={TENANT}"}, 400,
     "invalid_request"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("flow", "options", "status", "error"),
    [
        pytest.param(flow, options, status, error, id=f"{flow}-{name}")
        for name, flows, options, status, error in REJECTIONS
        for flow in flows
    ],
)
def test_rejects_like_egain(
    http: httpx.Client,
    emulator: EgainEmulator,
    creds: Creds,
    flow: Flow,
    options: dict[str, Any],
    status: int,
    error: str,
) -> None:
    response = token_request(http, emulator, flow, creds, **options)

    assert_oauth_error(response, status, error)
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    if status == 405:
        assert response.headers["Allow"] == "POST"
    [record] = emulator.requests()
    assert (record.flow, record.status, record.error) == (flow, status, error)
    assert not record.token_issued
    assert emulator.issued_tokens(creds.client_id) == []


@pytest.mark.parametrize("flow", list(Flow))
def test_client_registered_for_the_other_flow_is_unauthorized(
    http: httpx.Client, emulator: EgainEmulator, flow: Flow
) -> None:
    other = Flow.CLIENT_APP if flow is Flow.ANONYMOUS_CUSTOMER else Flow.ANONYMOUS_CUSTOMER
    creds = new_client(emulator, flows=(other,))
    assert_oauth_error(token_request(http, emulator, flow, creds), 400, "unauthorized_client")
    assert token_request(http, emulator, other, creds).status_code == 200


def test_unreadable_bodies_are_refused(http: httpx.Client, emulator: EgainEmulator) -> None:
    url = emulator.client_app_token_url(TENANT)
    chunked = http.post(url, content=iter([b"grant_type=client_credentials"]))  # no length
    assert_oauth_error(chunked, 411, "invalid_request")
    huge = http.post(url, content=b"a" * 70_000, headers={"Content-Type": FORM})
    assert_oauth_error(huge, 413, "invalid_request")


def test_unknown_path_is_404_and_recorded(http: httpx.Client, emulator: EgainEmulator) -> None:
    response = http.post(emulator.base_url + "/system/auth/NOSUFFIX/oauth2/token", data={})
    assert response.status_code == 404
    [record] = emulator.requests()
    assert (record.flow, record.status, record.path) == (
        None,
        404,
        "/system/auth/NOSUFFIX/oauth2/token",
    )


def test_client_changes_take_effect_at_once(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds
) -> None:
    old = creds.client_secret
    new = emulator.rotate_secret(creds.client_id)
    assert new != old
    assert_oauth_error(token_request(http, emulator, CA, creds), 401, "invalid_client")
    rotated = Creds(creds.client_id, new)
    emulator.update_client(creds.client_id, lifetime=5, scopes=[READ])
    response = token_request(http, emulator, CA, rotated)
    assert response.json()["expires_in"] == 5
    assert_oauth_error(
        token_request(http, emulator, CA, rotated, scopes=(MANAGE,)), 400, "invalid_scope"
    )
    emulator.remove_client(creds.client_id)
    assert_oauth_error(token_request(http, emulator, CA, rotated), 401, "invalid_client")


# -- faults -------------------------------------------------------------------


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


def test_stop_does_not_wait_for_hung_requests(tmp_path: Path) -> None:
    with EgainEmulator(tmp_path) as emulator:
        emulator.set_fault(FaultKind.HANG, count=None)
        errors: list[BaseException] = []

        def call() -> None:
            with httpx.Client(verify=emulator.client_ssl_context(), timeout=30) as client:
                try:
                    client.post(emulator.client_app_token_url(TENANT), data={"a": "b"})
                except httpx.TransportError as exc:
                    errors.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        emulator.wait_for_requests(1, timeout=5)
        started = time.monotonic()
        emulator.stop()
        caller.join(timeout=5)
        assert time.monotonic() - started < 3
    assert not caller.is_alive()
    assert len(errors) == 1  # the hung client got its connection closed, not an answer


def test_restart_keeps_the_port(tmp_path: Path) -> None:
    emulator = EgainEmulator(tmp_path)
    with emulator:
        url = emulator.base_url
    with httpx.Client(verify=emulator.client_ssl_context()) as client:
        with pytest.raises(httpx.ConnectError):
            client.get(url + "/down")
        with emulator:
            assert emulator.base_url == url
            assert client.get(url + "/up").status_code == 404


# -- the request log and secrecy ---------------------------------------------


@pytest.mark.parametrize("flow", list(Flow))
def test_records_describe_each_request(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds, flow: Flow
) -> None:
    other = new_client(emulator)
    before = time.monotonic()
    token = token_request(http, emulator, flow, creds).json()["access_token"]
    token_request(http, emulator, flow, other, form={"grant_type": "password"})

    [record] = emulator.requests(creds.client_id)
    assert before <= record.monotonic <= time.monotonic()
    now = datetime.datetime.now(datetime.UTC)
    assert abs(record.wall_time - now) < datetime.timedelta(seconds=5)
    assert record.method == "POST"
    assert record.flow is flow
    assert record.tenant == TENANT
    assert record.client_id == creds.client_id
    assert record.grant_type == "client_credentials"
    assert record.content_type == FORM
    assert (record.status, record.error, record.fault) == (200, None, None)
    assert record.token_issued
    assert record.token_fingerprint == token_fingerprint(token)
    if flow is Flow.ANONYMOUS_CUSTOMER:
        assert record.path == "/core/authmgr/v3/oauth2/v2.0/anonymous/token"
        assert (record.user_type, record.domain_hint) == ("customer", TENANT)
        assert record.scopes == (ANONYMOUS_SCOPE_PREFIX + READ,)
    else:
        assert record.path == f"/system/auth/{TENANT}-U/oauth2/token"
        assert (record.user_type, record.domain_hint) == (None, None)
        assert record.scopes == (READ,)
    [rejected] = emulator.requests(other.client_id, flow=flow)
    assert (rejected.grant_type, rejected.error) == ("password", "unsupported_grant_type")
    assert len(emulator.requests(flow=flow)) == 2


def test_wait_for_requests_times_out(emulator: EgainEmulator) -> None:
    with pytest.raises(TimeoutError):
        emulator.wait_for_requests(1, timeout=0.05)


def test_secrets_and_tokens_never_leak(
    http: httpx.Client,
    emulator: EgainEmulator,
    creds: Creds,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    tokens = [token_request(http, emulator, flow, creds).json()["access_token"] for flow in Flow]
    token_request(http, emulator, CA, creds, form={"client_secret": creds.client_secret + "x"})
    token_request(http, emulator, AC, creds, form={"grant_type": "password"})
    emulator.set_fault("string_expires_in")
    tokens.append(token_request(http, emulator, CA, creds).json()["access_token"])
    admin = (
        http.get(emulator.admin_url + "/requests").text
        + http.get(emulator.admin_url + "/clients").text
    )
    introspected = http.post(emulator.admin_url + "/introspect", json={"token": tokens[0]})
    assert introspected.json()["active"] is True

    records = emulator.requests()
    assert len(records) == 5
    captured = capsys.readouterr()
    exposed = "\n".join(
        [
            repr(records),
            json.dumps([r.to_json() for r in records]),
            repr(emulator.clients()),
            repr(emulator.issued_tokens()),
            repr(emulator.faults()),
            introspected.text,
            admin,
            caplog.text,
            captured.out,
            captured.err,
        ]
    )
    assert creds.client_id in caplog.text  # the log does name the client
    for value in (creds.client_secret, *tokens):
        assert value not in exposed


# -- admin endpoint -------------------------------------------------------------


def test_admin_sets_lists_and_clears_faults(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds
) -> None:
    admin = emulator.admin_url
    created = http.post(admin + "/faults", json={"kind": "server_error", "status": 502})
    assert created.status_code == 201
    assert created.json()["status"] == 502
    assert token_request(http, emulator, CA, creds).status_code == 502
    assert http.get(admin + "/faults").json() == []

    http.post(admin + "/faults", json={"kind": "rate_limited", "count": None, "retry_after": 3})
    http.post(admin + "/faults", json={"kind": "latency", "delay": 0.01, "client_id": "x"})
    assert [f["kind"] for f in http.get(admin + "/faults").json()] == ["rate_limited", "latency"]
    assert http.delete(admin + "/faults", params={"kind": "latency"}).status_code == 200
    assert [f.kind for f in emulator.faults()] == [FaultKind.RATE_LIMITED]
    assert http.delete(admin + "/faults").status_code == 200
    assert emulator.faults() == []


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/faults", {"kind": "nonsense"}, 400),
        ("POST", "/faults", {"kind": "hang", "bogus": 1}, 400),
        ("POST", "/faults", {"count": 1}, 400),
        ("POST", "/faults", None, 400),
        ("POST", "/clients", {"client_id": "x"}, 400),
        ("GET", "/nothing", None, 404),
    ],
)
def test_admin_refuses_bad_requests(
    http: httpx.Client,
    emulator: EgainEmulator,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
) -> None:
    content = b"{not json" if body is None and method == "POST" else json.dumps(body).encode()
    response = http.request(method, emulator.admin_url + path, content=content)
    assert response.status_code == status
    assert "error" in response.json()
    assert emulator.faults() == []


def test_admin_request_log_and_reset(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds
) -> None:
    other = new_client(emulator)
    token_request(http, emulator, CA, creds)
    token_request(http, emulator, AC, other)
    http.post(emulator.admin_url + "/faults", json={"kind": "hang"})

    logged = http.get(emulator.admin_url + "/requests").json()
    assert logged == [r.to_json() for r in emulator.requests()]  # admin calls are not logged
    assert logged[1]["flow"] == "AnonymousCustomer"
    mine = http.get(emulator.admin_url + "/requests", params={"client_id": creds.client_id})
    assert [r["client_id"] for r in mine.json()] == [creds.client_id]
    tokens = http.get(emulator.admin_url + "/tokens", params={"client_id": creds.client_id})
    [token] = tokens.json()
    assert token["client_id"] == creds.client_id

    assert http.post(emulator.admin_url + "/reset").status_code == 200
    assert emulator.requests() == []
    assert emulator.faults() == []
    assert len(emulator.issued_tokens(creds.client_id)) == 1  # tokens are kept...
    assert token_request(http, emulator, CA, creds).status_code == 200  # ...and clients


def test_admin_registers_clients_and_introspects_tokens(
    http: httpx.Client, emulator: EgainEmulator
) -> None:
    client = {
        "client_id": "from-admin",
        "client_secret": "admin-given-secret",
        "tenant": TENANT,
        "scopes": [READ],
        "lifetime": 60,
        "flows": ["AnonymousCustomer"],
    }
    assert http.post(emulator.admin_url + "/clients", json=client).status_code == 201
    listed = {c["client_id"]: c for c in http.get(emulator.admin_url + "/clients").json()}
    assert listed["from-admin"] == {
        "client_id": "from-admin",
        "tenant": TENANT,
        "scopes": [READ],
        "lifetime": 60,
        "flows": ["AnonymousCustomer"],
    }
    creds = Creds("from-admin", "admin-given-secret")
    token = token_request(http, emulator, AC, creds).json()["access_token"]

    info = http.post(emulator.admin_url + "/introspect", json={"token": token}).json()
    assert (info["active"], info["client_id"], info["fingerprint"]) == (
        True,
        "from-admin",
        token_fingerprint(token),
    )
    unknown = http.post(emulator.admin_url + "/introspect", json={"token": "forged"})
    assert unknown.json() == {"active": False}


# -- transport ----------------------------------------------------------------


def test_plain_http_is_refused(emulator: EgainEmulator) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.post(f"http://localhost:{emulator.port}/system/auth/{TENANT}-U/oauth2/token")
    assert emulator.requests() == []


def test_certificate_is_not_trusted_by_default(emulator: EgainEmulator) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(emulator.base_url + "/")


def test_certificate_covers_the_loopback_address(emulator: EgainEmulator) -> None:
    context = emulator.client_ssl_context()
    response = httpx.get(f"https://127.0.0.1:{emulator.port}/", verify=context)
    assert response.status_code == 404


# -- command line -------------------------------------------------------------


@pytest.mark.timeout(30)
def test_command_line(tmp_path: Path) -> None:
    clients_file = tmp_path / "clients.yaml"
    file_secret = secrets.token_urlsafe(24)
    clients_file.write_text(
        "clients:\n"
        f"  - {{client_id: anon, client_secret: {file_secret}, tenant: {TENANT},"
        f" scopes: [{READ}], flows: [AnonymousCustomer]}}\n"
    )
    flag_secret = secrets.token_urlsafe(24)
    command = [
        sys.executable, "-m", "testground.emulator", "--port", "0",
        "--state-dir", str(tmp_path / "state"), "--clients-file", str(clients_file),
        "--client", f"app:{flag_secret}:{TENANT}:{READ},{MANAGE}:120",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(HACK_DIR)}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        printed: dict[str, str] = {}
        assert process.stdout is not None
        while "anonymous_token_url" not in printed:
            line = process.stdout.readline()
            assert line, "the emulator exited before printing its URLs"
            key, _, value = line.strip().partition("=")
            printed[key] = value
        assert printed["client_app_token_url"].startswith(printed["base_url"])
        assert (
            json.loads((tmp_path / "state" / "endpoint.json").read_text())["base_url"]
            == (printed["base_url"])
        )
        context = ssl.create_default_context(cafile=printed["ca_file"])
        with httpx.Client(verify=context) as client:
            app = client.post(
                printed["client_app_token_url"],
                data={
                    "grant_type": "client_credentials",
                    "client_id": "app",
                    "client_secret": flag_secret,
                    "scope": f"{READ} {MANAGE}",
                },
            )
            anon = client.post(
                printed["anonymous_token_url"],
                params={"user_type": "customer", "domain_hint": TENANT},
                data={
                    "grant_type": "client_credentials",
                    "client_id": "anon",
                    "client_secret": file_secret,
                    "scope": ANONYMOUS_SCOPE_PREFIX + READ,
                },
            )
        assert app.json()["expires_in"] == 120
        assert anon.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "client_id=app" in err
    tokens = [response.json()["access_token"] for response in (app, anon)]
    for value in (flag_secret, file_secret, *tokens):
        assert value not in out + err


def test_secrets_in_finds_client_secrets_and_issued_tokens(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds
) -> None:
    token = token_request(http, emulator, CA, creds).json()["access_token"]
    old_secret = creds.client_secret
    emulator.rotate_secret(creds.client_id)
    found = emulator.secrets_in(f"id={creds.client_id} secret={old_secret} Bearer {token}.")
    assert set(found) == {old_secret, token}
    for description in found.values():
        assert old_secret not in description
        assert token not in description
    assert emulator.secrets_in(f"{creds.client_id} and a-long-run-of-harmless-characters") == {}


def test_failure_reports_never_show_a_secret(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_shows_a_secret(emulator):
            emulator.register_client("c", "the-client-secret-0123456789", "T", ["s"])
            assert "the-client-secret-0123456789" == "", "the-client-secret-0123456789"
        """
    )
    result = pytester.runpytest_inprocess("-p", "testground.pytest_emulator", "-ra")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "the-client-secret-0123456789" not in output
    assert "<hidden>" in output
