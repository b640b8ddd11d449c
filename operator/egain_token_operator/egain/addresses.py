"""Addresses no token request may reach, whatever the host allow-list says.

The allow-list names the hosts credentials may be sent to; it cannot tell
where a name leads. So, after name resolution and before any connection, two
kinds of destination are refused:

- link-local addresses (169.254.0.0/16, fe80::/10), where clouds serve instance
  metadata and credentials (169.254.169.254; AWS also at fd00:ec2::254);
- the API server's own address and port, as this operator reaches it.

Where the check runs depends on the way. A direct connection is checked by
`GuardedNetworkBackend` as it is opened, which connects only to the addresses
it has just checked, so a name that answers differently later (DNS
rebinding) cannot slip through; the requests it then carries, kept alive,
need no name resolution. A request through a proxy (which resolves the name
itself) is checked by `AddressGuard.check` before it is sent; there, a name
that does not resolve here is let through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpcore

from egain_token_operator.decisions.hosts import HTTPS_PORT
from egain_token_operator.decisions.reasons import TokenUrlNotAllowedError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses it resolves to; raises OSError when it does not.
Resolver = Callable[[str, int], Awaitable[tuple[str, ...]]]

LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
# Cloud instance metadata services (AWS's IPv6 one is outside the link-local range).
METADATA = (ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"))


async def resolve(host: str, port: int) -> tuple[str, ...]:
    """The addresses `host` resolves to, as the system resolver answers."""
    try:
        return (str(ipaddress.ip_address(host)),)  # an address needs no resolver thread
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return tuple(dict.fromkeys(str(info[4][0]) for info in infos))


def _plain(address: str) -> IPAddress:
    """`address` parsed, an IPv4-mapped IPv6 address as the IPv4 address it is."""
    parsed = ipaddress.ip_address(address)
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed


def refusal(address: str, port: int, api_server: Iterable[tuple[str, int]] = ()) -> str | None:
    """Why a token request must not go to `address:port`, or None when it may."""
    parsed = _plain(address)
    if parsed in METADATA:
        return "the cloud instance metadata address"
    if parsed.is_unspecified:
        return "an unspecified address (this host)"
    if any(parsed in network for network in LINK_LOCAL):
        return "a link-local address"
    if any(parsed == _plain(host) and port == p for host, p in api_server):
        return "the Kubernetes API server's address"
    return None


@dataclass(frozen=True, slots=True)
class AddressGuard:
    """Refuses token requests to link-local addresses and to the API server.

    `api_server` is the API server's (host, port) as this operator reaches it
    (its kubeconfig, or the `kubernetes` Service in a Pod); a name is resolved
    at every check, as its addresses may change.
    """

    api_server: tuple[str, int] | None = None
    resolver: Resolver = resolve

    async def addresses(self, host: str, port: int) -> tuple[str, ...]:
        """The addresses of `host`, every one allowed.

        Raises `TokenUrlNotAllowedError` when any is refused (a name that also
        leads somewhere forbidden is not trusted with credentials), and
        `OSError` when the name does not resolve.
        """
        found = await self.resolver(host, port)
        api_server = await self._api_server_addresses()
        for address in found:
            why = refusal(address, port, api_server)
            if why is not None:
                where = address if host.strip("[]") == address else f"{host} ({address})"
                raise TokenUrlNotAllowedError(
                    f"{where} is {why}: token requests never go there; no request was sent"
                )
        return found

    async def check(self, url: str) -> None:
        """Refuse `url` when its host leads to a forbidden address.

        A name that does not resolve here passes: a direct connection then
        fails on it, and a proxy resolves it on its own.
        """
        parts = urlsplit(url)
        try:
            port = parts.port or HTTPS_PORT
            await self.addresses(parts.hostname or "", port)
        except (OSError, ValueError):
            return

    async def _api_server_addresses(self) -> tuple[tuple[str, int], ...]:
        if self.api_server is None:
            return ()
        host, port = self.api_server
        try:
            return tuple((address, port) for address in await self.resolver(host, port))
        except OSError:
            return ()


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses the guard allows."""

    def __init__(
        self, guard: AddressGuard, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._guard = guard
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Resolve `host`, check every address, then connect to the first that answers."""
        try:
            addresses = await self._guard.addresses(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        failure: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Not used for token requests; passed through."""
        return await self._inner.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options
        )

    async def sleep(self, seconds: float) -> None:
        """Passed through."""
        await self._inner.sleep(seconds)
