"""The OAuth rules of eGain's token endpoint, as pure functions (no I/O, no state).

Both client-credentials flows are here: the client-app flow at
`/system/auth/{TENANT}-{SUFFIX}/oauth2/token` and the anonymous-customer flow at
`/core/authmgr/v3/oauth2/v2.0/anonymous/token?user_type=customer&domain_hint=...`.
`observe()` learns leniently what a request is (for faults and the request log);
`authorize()` judges it as strictly as eGain does, raising `OAuthError`, which
`error_reply()` turns into the RFC 6749 §5.2 answer.
"""

from __future__ import annotations

import contextlib
import hmac
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import parse_qs, parse_qsl

from testground.emulator.replies import Reply, json_reply

ANONYMOUS_TOKEN_PATH = "/core/authmgr/v3/oauth2/v2.0/anonymous/token"
ANONYMOUS_SCOPE_PREFIX = "https://api.ai.egain.cloud/auth/"
# Tenant ids may contain hyphens, so the suffix is what follows the LAST one.
_CLIENT_APP_PATH = re.compile(
    r"^/system/auth/(?P<tenant>[A-Za-z0-9_-]+)-(?P<suffix>[A-Za-z0-9]+)/oauth2/token$"
)
_FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


class Flow(StrEnum):
    """The two eGain client-credentials flows (names as in the EgainToken API)."""

    CLIENT_APP = "ClientApp"
    ANONYMOUS_CUSTOMER = "AnonymousCustomer"


@dataclass(frozen=True)
class Client:
    """A client application registered with the emulated eGain tenant."""

    client_id: str
    client_secret: str = field(repr=False)
    tenant: str
    scopes: frozenset[str]  # unprefixed, e.g. "knowledge.portalmgr.read"
    lifetime: int = 3600  # seconds, sent as expires_in
    flows: frozenset[Flow] = frozenset(Flow)
    # Unix time at which every token issued to this client expires (at least
    # 1 s after its issue), whatever `lifetime` says: tokens issued at
    # different times then expire together.
    expires_at: float | None = None

    def lifetime_at(self, now: float) -> int:
        """The lifetime of a token issued at `now` (Unix time), in whole seconds."""
        if self.expires_at is None:
            return self.lifetime
        return max(1, math.ceil(self.expires_at - now))


class OAuthError(Exception):
    """A rejection as RFC 6749 §5.2 describes it."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(error)
        self.error = error
        self.description = description
        self.status = status


@dataclass
class Seen:
    """What is known of a token request so far; becomes its RequestRecord."""

    method: str
    path: str
    content_type: str | None
    flow: Flow | None = None
    tenant: str | None = None
    domain_hint: str | None = None
    user_type: str | None = None
    client_id: str | None = None
    grant_type: str | None = None
    scopes: tuple[str, ...] = ()
    user_agent: str | None = None
    peer: str | None = None  # the client's address (which replica asked)


def error_reply(exc: OAuthError) -> Reply:
    """The JSON answer to a rejected request (with a challenge on 401)."""
    payload = {"error": exc.error, "error_description": exc.description}
    if exc.status == 401:
        return json_reply(401, payload, ("WWW-Authenticate", 'Basic realm="eGain"'))
    return json_reply(exc.status, payload)


def not_found_reply() -> Reply:
    """The answer to a path that is no token endpoint."""
    return json_reply(404, {"error": "not_found", "error_description": "no such path"})


def token_payload(token: str, lifetime: int, scope: str) -> dict[str, object]:
    """The body of a successful token answer."""
    return {"access_token": token, "token_type": "Bearer", "expires_in": lifetime, "scope": scope}


def _single_values(pairs: list[tuple[str, str]], where: str) -> dict[str, str]:
    # RFC 6749 §3.2: parameters MUST NOT be included more than once.
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values:
            raise OAuthError("invalid_request", f"parameter {name} repeated in {where}")
        values[name] = value
    return values


def _parse_form(body: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(
            body.decode("ascii"), keep_blank_values=True, strict_parsing=True, errors="strict"
        )
    except ValueError as exc:  # includes UnicodeDecodeError
        raise OAuthError("invalid_request", "malformed form body") from exc
    return _single_values(pairs, "body")


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def observe(
    method: str, target: str, content_type: str | None, body: bytes
) -> tuple[Seen, str, dict[str, str] | None]:
    """Learn what a request is (flow, client, ...) leniently, for faults and the log.

    Returns what was seen, the raw query and the form (None if not a valid
    form); validation proper is `authorize()`'s job.
    """
    path, _, query = target.partition("?")
    seen = Seen(method=method, path=path, content_type=content_type)
    if path == ANONYMOUS_TOKEN_PATH:
        query_values = parse_qs(query, keep_blank_values=True)
        seen.flow = Flow.ANONYMOUS_CUSTOMER
        seen.user_type = query_values.get("user_type", [None])[0]
        seen.domain_hint = seen.tenant = query_values.get("domain_hint", [None])[0]
    elif match := _CLIENT_APP_PATH.match(path):
        seen.flow = Flow.CLIENT_APP
        seen.tenant = match["tenant"]
    form = None
    if _media_type(content_type) == _FORM_CONTENT_TYPE:
        with contextlib.suppress(OAuthError):
            form = _parse_form(body)
    if form is not None:
        seen.client_id = form.get("client_id")
        seen.grant_type = form.get("grant_type")
        seen.scopes = tuple(form["scope"].split(" ")) if form.get("scope") else ()
    return seen, query, form


def authorize(
    seen: Seen,
    query: str,
    form: dict[str, str] | None,
    find_client: Callable[[str], Client | None],
) -> tuple[Client, str]:
    """Validate a token request like eGain does; return the client and granted scope.

    `find_client` looks a client up by its id. Raises OAuthError.
    """
    if seen.method != "POST":
        raise OAuthError("invalid_request", "the token endpoint accepts POST only", 405)
    if _media_type(seen.content_type) != _FORM_CONTENT_TYPE:
        raise OAuthError("invalid_request", f"Content-Type must be {_FORM_CONTENT_TYPE}")
    if form is None:
        raise OAuthError("invalid_request", "malformed or repeated form parameters")
    if seen.flow is Flow.ANONYMOUS_CUSTOMER:
        params = _single_values(parse_qsl(query, keep_blank_values=True), "query")
        if params.get("user_type") != "customer":
            raise OAuthError("invalid_request", "user_type must be customer")
        if not params.get("domain_hint"):
            raise OAuthError("invalid_request", "domain_hint is required")
    grant_type = form.get("grant_type")
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type is required")
    if grant_type != "client_credentials":
        raise OAuthError("unsupported_grant_type", "only client_credentials is supported")
    for name in ("client_id", "client_secret", "scope"):
        if not form.get(name):
            raise OAuthError("invalid_request", f"{name} is required")

    client = find_client(form["client_id"])
    secret = form["client_secret"].encode()
    if client is None or not hmac.compare_digest(client.client_secret.encode(), secret):
        raise OAuthError("invalid_client", "client authentication failed", 401)
    if seen.flow not in client.flows:
        raise OAuthError("unauthorized_client", f"client may not use the {seen.flow} flow")
    if seen.flow is Flow.CLIENT_APP and seen.tenant != client.tenant:
        raise OAuthError("unauthorized_client", "client does not belong to this tenant")
    if seen.flow is Flow.ANONYMOUS_CUSTOMER and seen.domain_hint != client.tenant:
        raise OAuthError("invalid_request", "domain_hint is not the client's tenant")

    scope = form["scope"]
    for requested in scope.split(" "):  # exactly one space between scopes (RFC 6749 §3.3)
        name = requested
        if seen.flow is Flow.ANONYMOUS_CUSTOMER:
            if not requested.startswith(ANONYMOUS_SCOPE_PREFIX):
                raise OAuthError(
                    "invalid_scope", f"scopes must start with {ANONYMOUS_SCOPE_PREFIX}"
                )
            name = requested.removeprefix(ANONYMOUS_SCOPE_PREFIX)
        if name not in client.scopes:
            raise OAuthError("invalid_scope", "a requested scope is not granted to this client")
    return client, scope
