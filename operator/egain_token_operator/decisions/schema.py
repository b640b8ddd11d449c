"""The names the three kinds are served under, and the checks of their fields
that the CRD schema makes too.

The CRD schema validates and defaults at admission; the models (`issuer.py`,
`clients.py`, `tokenspec.py`) still apply every default and check themselves,
with these, so that objects stored before a CRD upgrade, or written while the
schema was looser, are handled the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

GROUP = "egain.cloud"
VERSION = "v1alpha1"
PLURAL = "egaintokens"
KIND = "EgainToken"
CLIENT_PLURAL = "egainclients"
CLUSTER_CLIENT_PLURAL = "clusteregainclients"

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# A scope: visible ASCII only (0x21-0x7E), as the CRDs' rule on every scope item
# says. Nothing else is needed in a scope, and a scope is quoted in messages and
# printed at an admin's terminal: no control character may reach it.
_SCOPE = re.compile(r"[!-~]+")
_SCOPE_MAX_LENGTH = 512


class InvalidSpecError(ValueError):
    """The spec cannot be served; the message names the field."""


def parse_duration(text: str) -> timedelta:
    """Parse durations like `90s`, `10m` and `1h30m`.

    Not `durationpy.from_str`: it takes Go durations, so it also accepts what the
    CRD's pattern `^([0-9]+h)?([0-9]+m)?([0-9]+s)?$` rejects (`1.5h`, `-1h`,
    `10ms`, `30m1h`), and an object stored before the schema would then be
    served where the API server refuses it.
    """
    match = _DURATION.match(text)
    if not text or match is None:
        raise ValueError(f"{text!r} is not a duration like 90s, 10m or 1h30m")
    hours, minutes, seconds = (int(group or 0) for group in match.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def string_field(spec: Mapping[str, Any], field: str, default: str | None = None) -> str | None:
    """`spec[field]` (else `default`), which must be a string when present."""
    value = spec.get(field, default)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidSpecError(f"spec.{field} must be a string")
    return value


def string_map(value: Any, field: str) -> Mapping[str, str]:
    """`value`, a map of strings to strings at `field`; empty when absent."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidSpecError(f"{field} must map strings to strings")
    return dict(value)


def dns_subdomain(value: str | None, field: str) -> str:
    """`value`, a DNS-1123 subdomain at `field` (the name of an object)."""
    if not value or len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
        raise InvalidSpecError(f"{field} must be a DNS-1123 subdomain")
    return value


def scope_list(scopes: Any, field: str, maximum: int) -> tuple[str, ...]:
    """`scopes`, a list of 1 to `maximum` scopes at `field`, each 1 to 512 visible
    ASCII characters. The message names the item, never quotes it."""
    if not isinstance(scopes, list) or not 1 <= len(scopes) <= maximum:
        raise InvalidSpecError(f"{field} must list 1 to {maximum} scopes")
    for index, scope in enumerate(scopes):
        if not isinstance(scope, str) or not 1 <= len(scope) <= _SCOPE_MAX_LENGTH:
            raise InvalidSpecError(
                f"{field}[{index}] must be a string of 1 to {_SCOPE_MAX_LENGTH} characters"
            )
        if not _SCOPE.fullmatch(scope):
            raise InvalidSpecError(
                f"{field}[{index}] must be visible ASCII (0x21-0x7E): no whitespace, "
                "control or non-ASCII characters"
            )
    return tuple(scopes)
