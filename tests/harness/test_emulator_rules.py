"""The emulator's pure parts, without a server: the OAuth rules and fault checks."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from testground.emulator import ANONYMOUS_SCOPE_PREFIX, ANONYMOUS_TOKEN_PATH, FaultKind, Flow
from testground.emulator.faults import Fault, checked_fault, shape_payload
from testground.emulator.oauth import Client, OAuthError, authorize, observe

FORM = "application/x-www-form-urlencoded"
APP = Client("app", "s3cret-value-for-tests", "TENANT-1", frozenset({"read"}), 60)
ANON_PATH = ANONYMOUS_TOKEN_PATH + "?user_type=customer&domain_hint=TENANT-1"
APP_PATH = "/system/auth/TENANT-1-U/oauth2/token"


def judge(target: str, content_type: str = FORM, method: str = "POST", **form: str) -> str:
    """The scope granted to a request, or the OAuth error it gets."""
    fields = {"grant_type": "client_credentials", "client_id": "app"}
    fields |= {"client_secret": APP.client_secret, "scope": "read"} | form
    seen, query, parsed = observe(method, target, content_type, urlencode(fields).encode())
    try:
        return authorize(seen, query, parsed, {"app": APP}.get)[1]
    except OAuthError as exc:
        return exc.error


def test_observe_names_flow_tenant_and_client() -> None:
    seen, _, form = observe("POST", APP_PATH, FORM, b"client_id=app&scope=a%20b")
    assert (seen.flow, seen.tenant, seen.client_id, seen.scopes) == (
        Flow.CLIENT_APP,
        "TENANT-1",  # the suffix is what follows the last hyphen
        "app",
        ("a", "b"),
    )
    assert form is not None
    assert observe("GET", "/nowhere", None, b"")[0].flow is None


@pytest.mark.parametrize(
    ("target", "options", "outcome"),
    [
        (APP_PATH, {}, "read"),
        (ANON_PATH, {"scope": ANONYMOUS_SCOPE_PREFIX + "read"}, ANONYMOUS_SCOPE_PREFIX + "read"),
        (ANON_PATH, {}, "invalid_scope"),  # the prefix is missing
        (APP_PATH, {"method": "GET"}, "invalid_request"),
        (APP_PATH, {"content_type": "application/json"}, "invalid_request"),
        (APP_PATH, {"grant_type": "password"}, "unsupported_grant_type"),
        (APP_PATH, {"client_secret": "wrong"}, "invalid_client"),
        (APP_PATH.replace("TENANT-1", "OTHER"), {}, "unauthorized_client"),
        (APP_PATH, {"scope": "read write"}, "invalid_scope"),
    ],
)
def test_authorize(target: str, options: dict[str, str], outcome: str) -> None:
    assert judge(target, **options) == outcome


def test_checked_fault_fills_defaults_and_refuses_nonsense() -> None:
    assert checked_fault(Fault(FaultKind.REDIRECT, count=-1)) == Fault(
        FaultKind.REDIRECT, count=None, status=302
    )
    with pytest.raises(ValueError, match="5xx"):
        checked_fault(Fault(FaultKind.SERVER_ERROR, status=404))


def test_shape_payload_leaves_the_original_alone() -> None:
    payload: dict[str, object] = {"access_token": "t", "expires_in": 60}
    assert shape_payload(payload, Fault(FaultKind.STRING_EXPIRES_IN))["expires_in"] == "60"
    assert "expires_in" not in shape_payload(payload, Fault(FaultKind.NO_EXPIRES_IN))
    assert payload["expires_in"] == 60
