"""The eGain client-credentials flows: the wire, response parsing, errors.

Everything sent to eGain is decided here: the flow objects build the URL (with
`user_type` and `domain_hint` for anonymous customers), the scopes (with the
prefix) and the form. Nothing here knows about Kubernetes. Every failure is a
`TokenError` whose `reason` is exactly one Ready reason, so the caller never
has to interpret strings. Error messages are built from status codes, hosts and
eGain's error codes only, and anything echoed from the server is scrubbed of
the credentials and of unprintable characters, so they are safe for status,
events and logs.

A response is not trusted: its body is read up to `MAX_RESPONSE_BYTES` and no
further, and a token is accepted only if it can go into an HTTP header as it
is and lives a plausible time (`MIN_TOKEN_LIFETIME` to `MAX_TOKEN_LIFETIME`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import re
import secrets
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
import httpcore
import httpx

from egain_token_operator import __version__
from egain_token_operator.decisions.hosts import HostAllowList
from egain_token_operator.decisions.issuer import GRANT_TYPE, Flow, with_scope_prefix
from egain_token_operator.decisions.reasons import (
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
from egain_token_operator.decisions.tokenspec import TokenSharing, TokenSpec
from egain_token_operator.egain.addresses import AddressGuard, GuardedNetworkBackend
from egain_token_operator.metrics import REQUEST_DURATION

# Sent with every token request, so eGain (or a proxy) can tell which operator asks.
USER_AGENT = f"egain-token-operator/{__version__}"

_MAX_DESCRIPTION = 200

# The most of a response body that is read; a token response is a few KiB.
MAX_RESPONSE_BYTES = 64 * 1024
# Lifetimes outside these bounds are not believed: a token that expires within
# a second cannot be used, and one said to outlive a year is a bug somewhere.
MIN_TOKEN_LIFETIME = 1.0
MAX_TOKEN_LIFETIME = 366 * 24 * 3600.0
# What each field may hold so that `<token_type> <access_token>` is a valid
# HTTP header value: RFC 6749's VSCHAR for the token, an HTTP token (RFC 9110)
# for its type, visible ASCII for each scope.
_ACCESS_TOKEN = re.compile(r"[\x20-\x7e]+")
_TOKEN_TYPE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_SCOPE = re.compile(r"[\x21-\x7e]+")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
# The key of `TokenRequest.sharing_key`. Sharing keys live in this process's
# memory only, so a key drawn at start-up serves, and makes them useless to
# anyone who reads one: even a weak client secret cannot be guessed from it.
_SHARING_KEY = secrets.token_bytes(32)


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
    # Whether the token it gets may serve identical requests (`spec.tokenSharing`).
    shared: bool = True

    @property
    def sharing_key(self) -> str | None:
        """What identical requests have in common, so that they can share one token.

        The URL (query included), the grant type, the client id and secret, and
        the set of scopes as sent: their order does not change the token eGain
        issues, so it does not count here (it does in `fingerprint`, which is
        kept as it was so that tokens already stored stay valid). An HMAC under
        a key drawn at start-up: equal within the process, never stored, and
        the client secret cannot be read back from it. None when the request
        must have a token of its own.
        """
        if not self.shared:
            return None
        canonical = json.dumps(
            [
                self.url,
                self.form["grant_type"],
                self.form["client_id"],
                self.form["client_secret"],
                sorted(set(self.scopes)),
            ],
            separators=(",", ":"),
        )
        return hmac.new(_SHARING_KEY, canonical.encode(), hashlib.sha256).hexdigest()

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
        return tuple(with_scope_prefix(self.scope_prefix, scope) for scope in self.scopes)


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
        shared=spec.token_sharing is TokenSharing.SHARED,
    )


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every secret replaced, on one line of printable characters, cut
    to a length fit for a status message."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    text = "".join(c if c.isprintable() else " " for c in text)
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


def _json_object(body: bytes) -> tuple[dict[str, Any] | None, str]:
    """The body as a JSON object, or None and what is wrong with it."""
    try:
        payload = json.loads(body)
    except RecursionError:
        return None, "the body is JSON nested too deeply"
    except ValueError:  # UnicodeDecodeError included
        return None, "the body is not a JSON object"
    if not isinstance(payload, dict):
        return None, "the body is not a JSON object"
    return payload, ""


def _expires_in(value: Any, origin: str) -> float:
    """`expires_in` as eGain deployments send it: a JSON number or a numeric string.

    Anything else, and a lifetime outside `MIN_TOKEN_LIFETIME` to
    `MAX_TOKEN_LIFETIME`, is an `InvalidTokenResponseError`.
    """
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        value = float(value.strip())
    nan = isinstance(value, float) and math.isnan(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or nan:
        raise InvalidTokenResponseError(f"{origin}: expires_in is not a number")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds) or seconds > MAX_TOKEN_LIFETIME:
        raise InvalidTokenResponseError(
            f"{origin}: expires_in is more than {MAX_TOKEN_LIFETIME:.0f}s (366 days)"
        )
    if seconds < MIN_TOKEN_LIFETIME:
        raise InvalidTokenResponseError(
            f"{origin}: expires_in {seconds:g}s is shorter than {MIN_TOKEN_LIFETIME:g}s"
        )
    return seconds


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
    unread: str | None = None,
) -> TokenResponse:
    """Turn an HTTP response into a `TokenResponse`, or raise the matching error.

    `secrets` are scrubbed from anything of the body that reaches a message.
    `unread` says why the body was not read (too large, say), when it was not.
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
    payload, malformed = _json_object(body) if unread is None else (None, unread)
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
        raise InvalidTokenResponseError(f"{origin}: {malformed}")
    access_token = payload.get("access_token")
    if not isinstance(access_token, str) or not access_token.strip():
        raise InvalidTokenResponseError(f"{origin}: no access_token in the response")
    access_token = access_token.strip()
    if not _ACCESS_TOKEN.fullmatch(access_token):
        # Never say which characters: they are part of the token.
        raise InvalidTokenResponseError(
            f"{origin}: access_token holds characters that cannot go in an HTTP header "
            "(control characters, line breaks or non-ASCII)"
        )
    token_type = payload.get("token_type")
    if token_type is not None and (not isinstance(token_type, str) or not token_type.strip()):
        raise InvalidTokenResponseError(f"{origin}: token_type is not a string")
    token_type = token_type.strip() if token_type else "Bearer"
    if not _TOKEN_TYPE.fullmatch(token_type):
        raise InvalidTokenResponseError(
            f"{origin}: token_type is not an HTTP authentication scheme"
        )
    defaulted = "expires_in" not in payload or payload["expires_in"] is None
    expires_in = default_lifetime if defaulted else _expires_in(payload["expires_in"], origin)
    scope = payload.get("scope")
    granted = tuple(scope.split()) if isinstance(scope, str) and scope.strip() else requested_scopes
    if not all(_SCOPE.fullmatch(item) for item in granted):
        raise InvalidTokenResponseError(f"{origin}: scope holds characters outside visible ASCII")
    return TokenResponse(
        access_token=access_token,
        token_type=token_type,
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
    the host allow-list and the address guard checked before anything leaves
    the process."""

    def __init__(
        self,
        *,
        allowed_hosts: HostAllowList,
        ca_bundle: Path | None,
        timeout: float,
        max_concurrent_requests: int,
        default_lifetime: float,
        guard: AddressGuard | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._allowed_hosts = allowed_hosts
        self._guard = guard or AddressGuard()
        self._default_lifetime = default_lifetime
        self._timeout = timeout
        self._limit = asyncio.Semaphore(max_concurrent_requests)
        self._clock = clock
        self._http = httpx.AsyncClient(
            verify=trust_store(ca_bundle),
            timeout=timeout,
            follow_redirects=False,
            trust_env=True,
            transport=transport,
            limits=httpx.Limits(max_connections=max_concurrent_requests),
            headers={
                "Accept": "application/json",
                # A compressed body could unpack to any size; see _read_body.
                "Accept-Encoding": "identity",
                "User-Agent": USER_AGENT,
            },
        )
        if transport is None:
            _guard_direct_connections(self._http, self._guard)

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._http.aclose()

    async def fetch_token(self, request: TokenRequest) -> tuple[TokenResponse, datetime]:
        """Send `request`; return the token with the instant it was requested.

        The allow-list and the address guard are checked here, the one place,
        before anything is sent. `timeout` bounds the whole exchange (name
        resolution, connection, request and reading the answer), so a server
        that trickles its answer cannot hold a request slot for longer.
        Expiry is counted from the moment the request was sent, not received,
        so a slow response can only make the recorded expiry early, never late.
        """
        if not self._allowed_hosts.allows(request.url):
            raise TokenUrlNotAllowedError(
                f"host {request.host} is not in the operator's allowed token hosts "
                f"({self._allowed_hosts}); no request was sent"
            )
        try:
            async with asyncio.timeout(self._timeout):
                await self._guard.check(request.url)
        except TimeoutError:
            raise TokenEndpointUnavailableError(f"timed out resolving {request.host}") from None
        async with self._limit:
            requested_at = self._clock()
            started = time.monotonic()
            status_label = "error"
            try:
                async with (
                    asyncio.timeout(self._timeout),
                    self._http.stream("POST", request.url, data=dict(request.form)) as response,
                ):
                    status_label = str(response.status_code)
                    body, unread = await _read_body(response)
            except (TimeoutError, httpx.TimeoutException):
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
            body,
            host=request.host,
            requested_scopes=request.scopes,
            default_lifetime=self._default_lifetime,
            secrets=request.secrets,
            now=requested_at,
            unread=unread,
        )
        return token, requested_at


async def _read_body(response: httpx.Response) -> tuple[bytes, str | None]:
    """At most `MAX_RESPONSE_BYTES` of the body, streamed; else why it was left unread.

    What is not read is dropped with the connection. A compressed body was not
    asked for and is not unpacked: a few KiB of it can hold gigabytes.
    """
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return b"", f"the body is compressed ({encoding[:20]}), which was not asked for"
    too_large = f"the body is larger than {MAX_RESPONSE_BYTES // 1024} KiB"
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        return b"", too_large
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            return b"", too_large
    return bytes(body), None


def _guard_direct_connections(http: httpx.AsyncClient, guard: AddressGuard) -> None:
    """Make the client's direct (not proxied) connections go through `guard`.

    httpx has no public way to give its connection pool a network backend, so
    the pool of its default transport is replaced by one built the same way
    with the guarded backend (tests/unit/test_addresses.py proves it in use).
    """
    transport = http._transport
    assert isinstance(transport, httpx.AsyncHTTPTransport)
    pool = transport._pool
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=pool._ssl_context,
        max_connections=pool._max_connections,
        max_keepalive_connections=pool._max_keepalive_connections,
        keepalive_expiry=pool._keepalive_expiry,
        network_backend=GuardedNetworkBackend(guard),
    )
