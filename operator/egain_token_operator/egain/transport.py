"""The transport to eGain: one pooled HTTP client that sends token requests.

`EgainClient.fetch_token` is the one place a request leaves the process: it
checks the host allow-list first and the address guard (before the request
when it goes through a proxy, as the connection opens when it is direct),
bounds the whole exchange by a timeout and the number of requests in flight
(shared fairly among namespaces, `slots.FairSlots`), verifies TLS always, and
hands what comes back to `response.parse_token_response`. Connections are
kept alive between requests. The request itself is built in `request`;
nothing here knows about Kubernetes.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import certifi
import httpcore
import httpx
from httpcore._utils import is_socket_readable

from egain_token_operator import __version__
from egain_token_operator.decisions.hosts import HostAllowList
from egain_token_operator.decisions.reasons import (
    TokenEndpointUnavailableError,
    TokenUrlNotAllowedError,
)
from egain_token_operator.egain.addresses import AddressGuard, GuardedNetworkBackend
from egain_token_operator.egain.request import TokenRequest
from egain_token_operator.egain.response import TokenResponse, parse_token_response, read_body
from egain_token_operator.egain.slots import FairSlots
from egain_token_operator.metrics import REQUEST_DURATION

# Sent with every token request, so eGain (or a proxy) can tell which operator asks.
USER_AGENT = f"egain-token-operator/{__version__}"


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
    """Sends token requests: one pooled HTTP client, a concurrency limit shared
    fairly among namespaces, the host allow-list and the address guard checked
    before anything leaves the process."""

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
        self._slots = FairSlots(max_concurrent_requests)
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
                # A compressed body could unpack to any size; see read_body.
                "Accept-Encoding": "identity",
                "User-Agent": USER_AGENT,
            },
        )
        # Direct connections are guarded when they are opened (`GuardedNetworkBackend`),
        # so a request over a kept-alive one needs no name resolution; a request
        # through a proxy, or over a transport given here, is checked before it is sent.
        self._guarded_on_connect = transport is None
        if transport is None:
            _guard_direct_connections(self._http, self._guard)

    @property
    def allowed_hosts(self) -> HostAllowList:
        """The hosts token requests may be sent to."""
        return self._allowed_hosts

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._http.aclose()

    async def fetch_token(
        self,
        request: TokenRequest,
        *,
        namespace: str,
        sending: Callable[[], None] | None = None,
    ) -> tuple[TokenResponse, datetime]:
        """Send `request` for an EgainToken in `namespace`; return the token with
        the instant it was requested.

        The request waits for a slot of `namespace`'s (`FairSlots`): one namespace's
        hanging or numerous requests leave slots for the others.

        The allow-list (already a local check of the policy's, asked again here
        as the last line) and the address guard are checked before anything is
        sent (over a kept-alive direct connection, the guard checked its addresses
        when it opened). `timeout` bounds the whole exchange (name
        resolution, connection, request and reading the answer), so a server
        that trickles its answer cannot hold a request slot for longer.
        Expiry is counted from the moment the request was sent, not received,
        so a slow response can only make the recorded expiry early, never late.

        `sending` is called once the request holds its slot, just before it is
        sent, with nothing awaited in between: what it raises stops the request
        unsent (the controller checks there that its replica still holds the Lease).
        """
        refused = self._allowed_hosts.refusal(request.url)
        if refused is not None:
            raise TokenUrlNotAllowedError(refused)
        if not self._checked_on_connect(request.url):
            try:
                async with asyncio.timeout(self._timeout):
                    await self._guard.check(request.url)
            except TimeoutError:
                raise TokenEndpointUnavailableError(f"timed out resolving {request.host}") from None
        async with self._slots.hold(namespace):
            if sending is not None:
                sending()
            requested_at = self._clock()
            started = time.monotonic()
            status_label = "error"
            try:
                async with (
                    asyncio.timeout(self._timeout),
                    self._http.stream("POST", request.url, data=dict(request.form)) as response,
                ):
                    status_label = str(response.status_code)
                    body, unread = await read_body(response)
            except (TimeoutError, httpx.TimeoutException):
                raise TokenEndpointUnavailableError(
                    f"timed out talking to {request.host}"
                ) from None
            except httpx.HTTPError as exc:
                raise TokenEndpointUnavailableError(_transport_failure(request.host, exc)) from None
            finally:
                # Labelled by the allow-list entry the URL matched (one exists: the
                # refusal above was None), a value of the operator's, never by the
                # tenant's host, so editing `tokenUrl` cannot add series.
                allowed_by = str(self._allowed_hosts.matching(request.url))
                REQUEST_DURATION.labels(allowed_by, request.flow, status_label).observe(
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

    def _checked_on_connect(self, url: str) -> bool:
        """True when a request to `url` goes over a direct connection, whose
        addresses the guard checks as it is opened."""
        if not self._guarded_on_connect:
            return False
        # The proxies the environment names are mounted when the client is made.
        return self._http._transport_for_url(httpx.URL(url)) is self._http._transport


def _guard_direct_connections(http: httpx.AsyncClient, guard: AddressGuard) -> None:
    """Make the client's direct (not proxied) connections go through `guard`.

    httpx has no public way to give its connection pool a network backend, so
    the pool of its default transport is replaced by one built the same way
    with the guarded backend (tests/unit/egain/test_addresses.py proves it in use).
    """
    transport = http._transport
    assert isinstance(transport, httpx.AsyncHTTPTransport)
    pool = transport._pool
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=pool._ssl_context,
        max_connections=pool._max_connections,
        max_keepalive_connections=pool._max_keepalive_connections,
        keepalive_expiry=pool._keepalive_expiry,
        network_backend=GuardedNetworkBackend(guard, _SocketKnownBackend()),
    )


class _SocketKnownBackend(httpcore.AnyIOBackend):
    """httpcore's own backend, whose streams look their socket up once.

    Before each request the pool asks every idle connection whether its socket
    is readable (a server that closed it); anyio answers by building every
    attribute of a TLS stream: 8 % of the operator's CPU in a burst of new
    tokens (docs/benchmarks.md). The socket a connection was opened on is the
    one it keeps.
    """

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connected as httpcore's backend connects."""
        stream = await super().connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )
        return _SocketKnownStream(stream, stream.get_extra_info("socket"))


class _SocketKnownStream(httpcore.AsyncNetworkStream):
    """A stream whose socket, and so whether it is readable, is known without asking anyio."""

    def __init__(self, inner: httpcore.AsyncNetworkStream, sock: socket.socket | None) -> None:
        self._inner, self._socket = inner, sock

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        """Passed through."""
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Passed through."""
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        """Passed through."""
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
    ) -> httpcore.AsyncNetworkStream:
        """TLS over the same socket."""
        stream = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return _SocketKnownStream(stream, self._socket)

    def get_extra_info(self, info: str) -> Any:
        """`socket` and `is_readable` from the socket known; the rest passed through."""
        if info == "socket":
            return self._socket
        if info == "is_readable":
            return is_socket_readable(self._socket)
        return self._inner.get_extra_info(info)
