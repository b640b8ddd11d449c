"""What the emulator tests share: a client per test, an HTTPS client, well-formed requests.

The modules import the constants and helpers from here; `creds` and `http`
are fixtures.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx
import pytest

from testground.emulator import ANONYMOUS_SCOPE_PREFIX, EgainEmulator, Flow

TENANT = "TMPRODB88619984"
READ = "knowledge.portalmgr.read"
MANAGE = "core.aiservices.manage"
LIFETIME = 1800
FORM = "application/x-www-form-urlencoded"
CA, AC = Flow.CLIENT_APP, Flow.ANONYMOUS_CUSTOMER


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
