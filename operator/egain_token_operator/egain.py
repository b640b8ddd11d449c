"""The eGain client-credentials flows: the wire, response parsing, errors.

Everything sent to eGain is decided here: the flow objects build the URL (with
`user_type` and `domain_hint` for anonymous customers), the scopes (with the
prefix) and the form. Nothing here knows about Kubernetes. Every failure is a
`TokenError` whose `reason` is exactly one Ready reason, so the caller never
has to interpret strings. Error messages are built from status codes, hosts and
eGain's error codes only, and anything echoed from the server is scrubbed of
the credentials, so they are safe for status, events and logs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import certifi
import httpx

from egain_token_operator import __version__
from egain_token_operator.hosts import HostAllowList
from egain_token_operator.metrics import REQUEST_DURATION
from egain_token_operator.reasons import (
    InvalidCredentialsError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTokenResponseError,
    RateLimitedError,
    TokenEndpointUnavailableError,
    TokenError,
    TokenUrlNotAllowedError,
    UnauthorizedClientError,
)
from egain_token_operator.spec import GRANT_TYPE, Flow, TokenSpec

# Sent with every token request, so eGain (or a proxy) can tell which operator asks.
USER_AGENT = f"egain-token-operator/{__version__}"

_MAX_DESCRIPTION = 200
_ABSOLUTE_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class ClientCredentials:
    """A client id and secret. The secret never shows in `repr`."""

    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True)
class TokenRequest:
    """One token request, ready to send."""

    url: str
    flow: str
    scopes: tuple[str, ...]
    form: Mapping[str, str] = field(repr=False)

    @property
    def fingerprint(self) -> str:
        """A digest of everything that determines the token this request gets.

        Stored beside the token, it tells after a restart whether the token
        still answers the current spec and credentials. It is a SHA-256 over
        the URL and the form, so the client secret cannot be read back from it.
        """
        canonical = json.dumps([self.url, sorted(self.form.items())], separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def host(self) -> str:
        """The host the request goes to (safe to show)."""
        return urlsplit(self.url).hostname or ""

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never be echoed back in a message."""
        return (self.form["client_secret"],)


@dataclass(frozen=True)
class ClientAppFlow:
    """`POST tokenUrl` as written, the scopes as written."""

    token_url: str
    scopes: tuple[str, ...]

    name = Flow.CLIENT_APP

    def url(self) -> str:
        """The URL the request is POSTed to."""
        return self.token_url

    def requested_scopes(self) -> tuple[str, ...]:
        """The scopes as sent."""
        return self.scopes


@dataclass(frozen=True)
class AnonymousCustomerFlow:
    """`POST tokenUrl?user_type=customer&domain_hint=<tenant>`, prefixed scopes."""

    token_url: str
    tenant_id: str
    scopes: tuple[str, ...]
    scope_prefix: str

    name = Flow.ANONYMOUS_CUSTOMER

    def url(self) -> str:
        """The token URL with the customer query appended to any it already has."""
        parts = urlsplit(self.token_url)
        query = urlencode({"user_type": "customer", "domain_hint": self.tenant_id})
        joined = f"{parts.query}&{query}" if parts.query else query
        return urlunsplit(parts._replace(query=joined))

    def requested_scopes(self) -> tuple[str, ...]:
        """Each scope prefixed with `scopePrefix`, unless already an absolute URL."""
        return tuple(
            scope if _ABSOLUTE_URL.match(scope) else self.scope_prefix + scope
            for scope in self.scopes
        )


def flow_of(spec: TokenSpec) -> ClientAppFlow | AnonymousCustomerFlow:
    """The flow `spec` asks for."""
    if spec.flow is Flow.CLIENT_APP:
        return ClientAppFlow(spec.token_url, spec.scopes)
    return AnonymousCustomerFlow(
        spec.token_url, spec.tenant_id or "", spec.scopes, spec.scope_prefix
    )


@dataclass(frozen=True)
class TokenResponse:
    """A parsed, successful token response."""

    access_token: str = field(repr=False)
    token_type: str
    expires_in: float
    scopes: tuple[str, ...]
    expires_in_defaulted: bool

    def expires_at(self, issued_at: datetime) -> datetime:
        """The instant the token expires, for a token received at `issued_at`."""
        return issued_at + timedelta(seconds=self.expires_in)


_OAUTH_ERRORS: Mapping[str, type[TokenError]] = {
    "invalid_client": InvalidCredentialsError,
    "invalid_grant": InvalidCredentialsError,
    "invalid_scope": InvalidScopeError,
    "unauthorized_client": UnauthorizedClientError,
    "access_denied": UnauthorizedClientError,
    "invalid_request": InvalidRequestError,
    "unsupported_grant_type": InvalidRequestError,
}


def build_request(spec: TokenSpec, credentials: ClientCredentials) -> TokenRequest:
    """The request for `spec`'s flow, exactly as eGain documents it."""
    flow = flow_of(spec)
    scopes = flow.requested_scopes()
    return TokenRequest(
        url=flow.url(),
        flow=flow.name.value,
        scopes=scopes,
        form={
            "grant_type": GRANT_TYPE,
            "scope": " ".join(scopes),
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
        },
    )


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every secret replaced, cut to a length fit for a status message."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DESCRIPTION else text[: _MAX_DESCRIPTION - 3] + "..."


def _retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def _expires_in(value: Any) -> float | None:
    """`expires_in` as eGain deployments send it: a JSON number or a numeric string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value) and value > 0:
        return float(value)
    return None


def parse_token_response(
    status_code: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    host: str,
    requested_scopes: tuple[str, ...],
    default_lifetime: float,
    secrets: tuple[str, ...],
    now: datetime,
) -> TokenResponse:
    """Turn an HTTP response into a `TokenResponse`, or raise the matching error.

    `secrets` are scrubbed from anything of the body that reaches a message.
    """
    origin = f"HTTP {status_code} from {host}"
    if 300 <= status_code < 400:
        raise InvalidTokenResponseError(f"{origin}: redirects are never followed")
    if status_code == 429:
        raise RateLimitedError(origin, retry_after=_retry_after(headers.get("retry-after"), now))
    if status_code >= 500 or status_code == 408:
        raise TokenEndpointUnavailableError(
            origin, retry_after=_retry_after(headers.get("retry-after"), now)
        )
    payload = _json_object(body)
    if status_code >= 400:
        error = payload.get("error") if payload else None
        description = payload.get("error_description") if payload else None
        message = origin
        if isinstance(error, str):
            message += f": {redact(error, secrets)}"
            if isinstance(description, str) and description:
                message += f" ({redact(description, secrets)})"
        if status_code == 401:
            raise InvalidCredentialsError(message)
        fallback = UnauthorizedClientError if status_code == 403 else InvalidRequestError
        error_class = _OAUTH_ERRORS.get(error, fallback) if isinstance(error, str) else fallback
        raise error_class(message)
    if status_code < 200 or status_code >= 300:
        raise InvalidTokenResponseError(f"{origin}: not a token response")
    if payload is None:
        raise InvalidTokenResponseError(f"{origin}: the body is not a JSON object")
    access_token = payload.get("access_token")
    if not isinstance(access_token, str) or not access_token.strip():
        raise InvalidTokenResponseError(f"{origin}: no access_token in the response")
    token_type = payload.get("token_type")
    if token_type is not None and (not isinstance(token_type, str) or not token_type.strip()):
        raise InvalidTokenResponseError(f"{origin}: token_type is not a string")
    defaulted = "expires_in" not in payload or payload["expires_in"] is None
    expires_in = default_lifetime if defaulted else _expires_in(payload["expires_in"])
    if expires_in is None:
        raise InvalidTokenResponseError(f"{origin}: expires_in is not a positive number")
    scope = payload.get("scope")
    granted = tuple(scope.split()) if isinstance(scope, str) and scope.strip() else requested_scopes
    return TokenResponse(
        access_token=access_token.strip(),
        token_type=token_type.strip() if token_type else "Bearer",
        expires_in=expires_in,
        scopes=granted,
        expires_in_defaulted=defaulted,
    )


def _transport_failure(host: str, exc: BaseException) -> str:
    """A message for a failed connection: its kind and host, never the request."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate of {host} not trusted: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake with {host} failed"
        cause = cause.__cause__ or cause.__context__
    return f"cannot reach {host}: {type(exc).__name__}"


def trust_store(ca_bundle: Path | None) -> ssl.SSLContext:
    """TLS trust for token endpoints: the system store, certifi's, plus `ca_bundle`.

    Verification is always on; there is deliberately no way to turn it off.
    """
    context = ssl.create_default_context(cafile=certifi.where())
    context.load_default_certs()
    if ca_bundle is not None:
        context.load_verify_locations(cafile=str(ca_bundle))
    return context


class EgainClient:
    """Sends token requests: one pooled HTTP client, a global concurrency limit,
    the host allow-list checked before anything leaves the process."""

    def __init__(
        self,
        *,
        allowed_hosts: HostAllowList,
        ca_bundle: Path | None,
        timeout: float,
        max_concurrent_requests: int,
        default_lifetime: float,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._allowed_hosts = allowed_hosts
        self._default_lifetime = default_lifetime
        self._limit = asyncio.Semaphore(max_concurrent_requests)
        self._clock = clock
        self._http = httpx.AsyncClient(
            verify=trust_store(ca_bundle),
            timeout=timeout,
            follow_redirects=False,
            trust_env=True,
            transport=transport,
            limits=httpx.Limits(max_connections=max_concurrent_requests),
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
        )

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._http.aclose()

    async def fetch_token(self, request: TokenRequest) -> tuple[TokenResponse, datetime]:
        """Send `request`; return the token with the instant it was requested.

        The allow-list is checked here, the one place, before anything is sent.
        Expiry is counted from the moment the request was sent, not received, so
        a slow response can only make the recorded expiry early, never late.
        """
        if not self._allowed_hosts.allows(request.url):
            raise TokenUrlNotAllowedError(
                f"host {request.host} is not in the operator's allowed token hosts "
                f"({self._allowed_hosts}); no request was sent"
            )
        async with self._limit:
            requested_at = self._clock()
            started = time.monotonic()
            status_label = "error"
            try:
                response = await self._http.post(request.url, data=dict(request.form))
                status_label = str(response.status_code)
            except httpx.TimeoutException:
                raise TokenEndpointUnavailableError(
                    f"timed out talking to {request.host}"
                ) from None
            except httpx.HTTPError as exc:
                raise TokenEndpointUnavailableError(_transport_failure(request.host, exc)) from None
            finally:
                REQUEST_DURATION.labels(request.host, request.flow, status_label).observe(
                    time.monotonic() - started
                )
        token = parse_token_response(
            response.status_code,
            response.headers,
            response.content,
            host=request.host,
            requested_scopes=request.scopes,
            default_lifetime=self._default_lifetime,
            secrets=request.secrets,
            now=requested_at,
        )
        return token, requested_at
