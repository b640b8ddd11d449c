"""Both flows issuing tokens over real HTTPS, and client changes taking effect at once."""

from __future__ import annotations

import datetime

import httpx
import pytest

from testground.emulator import ANONYMOUS_SCOPE_PREFIX, EgainEmulator, Flow, token_fingerprint
from tests.harness.conftest import (
    CA,
    LIFETIME,
    MANAGE,
    READ,
    TENANT,
    Creds,
    assert_oauth_error,
    token_request,
)


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
