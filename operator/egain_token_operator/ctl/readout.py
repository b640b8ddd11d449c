"""Readings of objects as the API sends them, shared by the views and the renewal:
instants as spans from now (as kubectl shows ages), the recorded Ready
condition, and text made safe to print at a terminal. Pure: `now` is passed in."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from egain_token_operator.decisions.readiness import ready_in
from egain_token_operator.decisions.timestamps import parse_rfc3339

# What is shown for a value there is none of.
NONE = "-"


def printable(text: str) -> str:
    """`text` with every character that is not printable escaped as Python writes
    it (ESC as `\\x1b`, a tab as `\\t`, U+2028 as `\\u2028`): C0 and C1 controls,
    DEL, line and paragraph separators, spaces other than ` `, format characters
    (bidirectional overrides), unassigned and private-use code points.

    Statuses, Events and specs are written by tenants (or hold what they wrote):
    printed as they are, an escape sequence in one would drive the admin's
    terminal, and a line break in one would forge a line of the output. Every
    value the command line prints from the API goes through here, in the layouts
    that print it (`views.table`, `views.fields`, `reports.check_report`, the
    lines of `renew`, the error line)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def human_duration(span: timedelta) -> str:
    """A span as kubectl shows ages: `45s`, `4m30s`, `42m`, `5h10m`, `30h`, `3d4h`."""
    seconds = int(abs(span.total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if days < 2:
        return f"{hours}h"
    return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"


def instant(text: Any) -> datetime | None:
    """The instant `text` (RFC 3339) names; None when it is not one."""
    if not isinstance(text, str):
        return None
    try:
        return parse_rfc3339(text)
    except ValueError:
        return None


def time_until(text: Any, now: datetime, past: str) -> str:
    """How long until the instant `text` (RFC 3339): `42m`; `past` with the span
    filled in (`{}`) when it has passed; `-` when there is none."""
    when = instant(text)
    if when is None:
        return NONE
    if when > now:
        return human_duration(when - now)
    return past.format(human_duration(now - when))


def time_ago(text: Any, now: datetime) -> str:
    """How long ago the instant `text` (RFC 3339) was: `3m ago`; `-` when there is none."""
    when = instant(text)
    return NONE if when is None else f"{human_duration(now - when)} ago"


def recorded_ready(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The Ready condition recorded in the status of an EgainToken (or a client);
    empty before there is one."""
    return ready_in(body.get("status") or {})


def is_ready(body: Mapping[str, Any]) -> bool:
    """True when the Ready condition of an EgainToken (or a client) is `True`."""
    return recorded_ready(body).get("status") == "True"
