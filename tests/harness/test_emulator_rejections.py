"""The emulator refuses, with eGain's status and OAuth error, what eGain refuses."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from testground.emulator import ANONYMOUS_SCOPE_PREFIX, EgainEmulator, Flow
from tests.harness.conftest import (
    AC,
    CA,
    FORM,
    MANAGE,
    READ,
    TENANT,
    Creds,
    assert_oauth_error,
    new_client,
    token_request,
)

OTHER_TENANT = "TMPRODB00000001"
BOTH = list(Flow)
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
