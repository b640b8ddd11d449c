"""The token-host allow-list.

The operator sends client secrets to whatever URL an EgainToken names, so the
hosts it may send them to are fixed by whoever runs the operator, not by whoever
writes an EgainToken: otherwise anyone able to create an EgainToken could have
credentials carried to any address inside the cluster.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

HTTPS_PORT = 443


@dataclass(frozen=True, slots=True)
class HostPattern:
    """One entry: `host`, `*.domain` (any depth below it), each with an optional port.

    Without a port, only the standard HTTPS port is allowed.
    """

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> HostPattern:
        """Parse `host[:port]`, rejecting what could never match a token URL."""
        entry = text.strip().lower()
        host, sep, port = entry.rpartition(":")
        if not sep or entry.endswith("]"):
            host, port = entry, ""
        host = host.strip("[]")
        wildcard_free = host.removeprefix("*.")
        if not host or "*" in wildcard_free or "/" in host or "@" in host:
            raise ValueError(f"invalid token host {text.strip()!r}")
        if port and (not port.isdigit() or not 0 < int(port) < 65536):
            raise ValueError(f"invalid port in token host {text.strip()!r}")
        return cls(host, int(port) if port else HTTPS_PORT)

    def matches(self, host: str, port: int) -> bool:
        """True when `host:port` is covered by this entry."""
        if port != self.port:
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:])
        return host == self.host

    def __str__(self) -> str:
        return self.host if self.port == HTTPS_PORT else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class HostAllowList:
    """The hosts token requests may be sent to."""

    patterns: tuple[HostPattern, ...]

    @classmethod
    def parse(cls, text: str) -> HostAllowList:
        """Parse a comma-separated list such as `*.egain.cloud,login.example.com:8443`."""
        patterns = tuple(HostPattern.parse(item) for item in text.split(",") if item.strip())
        if not patterns:
            raise ValueError("the token host allow-list is empty")
        return cls(patterns)

    def matching(self, url: str) -> HostPattern | None:
        """The first entry, in the list's order, that allows `url`.

        None when none does, or when `url` is not an HTTPS URL without user info.
        The entry, not the URL's host, is what the request metrics are labelled
        by: its values are the operator's own, so tenants editing token URLs
        cannot add series.
        """
        return _matching(self.patterns, url)

    def allows(self, url: str) -> bool:
        """True when `url` is an HTTPS URL, without user info, on an allowed host and port."""
        return self.matching(url) is not None

    def refusal(self, url: str) -> str | None:
        """Why no token request may be sent to `url`; None when it may.

        The one verdict: the policy's local check (`checks.token_host_not_allowed`),
        `check` on the command line and the transport's last look before sending
        all ask here.
        """
        if self.allows(url):
            return None
        host = urlsplit(url).hostname or ""
        return (
            f"host {host} is not in the operator's allowed token hosts ({self}); "
            "no request was sent"
        )

    def __str__(self) -> str:
        return ",".join(str(pattern) for pattern in self.patterns)


# URLs whose verdicts are kept: every token request asks (twice) for its URL,
# which few EgainTokens share; a tenant writing many URLs only pushes older ones out.
_KEPT_VERDICTS = 1024


@functools.lru_cache(maxsize=_KEPT_VERDICTS)
def _matching(patterns: tuple[HostPattern, ...], url: str) -> HostPattern | None:
    parts = urlsplit(url)
    host = _host(parts)
    if parts.scheme != "https" or host is None or "@" in parts.netloc:
        return None
    try:
        port = parts.port or HTTPS_PORT
    except ValueError:
        return None
    return next((pattern for pattern in patterns if pattern.matches(host, port)), None)


def _host(parts: SplitResult) -> str | None:
    host = parts.hostname
    return host.rstrip(".") if host else None
