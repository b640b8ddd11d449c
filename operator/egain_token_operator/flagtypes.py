"""The values of the operator's flags: each function parses and validates one
(an argparse `type`), raising `argparse.ArgumentTypeError` with what was
expected, so a bad flag or environment variable is named with its value.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from egain_token_operator.decisions.hosts import HostAllowList

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class Address:
    """A `HOST:PORT` listening address; an IPv6 host is held without its brackets."""

    host: str
    port: int

    def __str__(self) -> str:
        # Brackets keep an IPv6 host apart from the port, as URLs need them.
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def url(self, path: str) -> str:
        """The `http://` URL of `path` served on this address."""
        return f"http://{self}{path}"


def address(value: str) -> Address:
    """A `HOST:PORT` listening address; an IPv6 host in brackets."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        # "::1:8080" could be the port 8080 of ::1 or the address ::1:8080 alone.
        raise argparse.ArgumentTypeError(
            f"an IPv6 address goes in brackets, as in [::1]:8080; got {value!r}"
        )
    if not host or "[" in host or "]" in host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return Address(host, int(port))


def positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """A parser of positive numbers of `kind` (int or float)."""

    def parse(value: str) -> float:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}") from None
        if number <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
        return number

    return parse


def non_negative(value: str) -> float:
    """A number of seconds, 0 or more."""
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0.0 <= number < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {value!r}")
    return number


def fraction(value: str) -> float:
    """A fraction in [0, 1)."""
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0.0 <= number < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {value!r}")
    return number


def ca_bundle(value: str) -> Path | None:
    """The path of a readable PEM file; None for the empty string."""
    if not value:
        return None
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"CA bundle {value!r} is not a readable file")
    return path


def hosts(value: str) -> HostAllowList:
    """A host allow-list (`hosts.HostAllowList.parse`)."""
    try:
        return HostAllowList.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def boolean(value: str) -> bool:
    """`true` or `false`, in any case."""
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")
    return lowered == "true"


def lease(value: str) -> tuple[str, str] | None:
    """NAMESPACE/NAME of a Lease; None for the empty string."""
    if not value:
        return None
    namespace, sep, name = value.partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise argparse.ArgumentTypeError(f"expected NAMESPACE/NAME, got {value!r}")
    return namespace, name


def namespace(value: str) -> str:
    """A namespace name (a DNS label), or the empty string."""
    value = value.strip()
    if value and not _DNS_LABEL.match(value):
        raise argparse.ArgumentTypeError(f"expected a namespace name, got {value!r}")
    return value


def comma_list(value: str) -> list[str]:
    """The non-empty items of a comma-separated list, stripped."""
    return [item.strip() for item in value.split(",") if item.strip()]
