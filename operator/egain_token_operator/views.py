"""What the command line shows: tables, the detailed view, check reports.

Pure: objects as the API sends them and `now` in, text out, so every view is
unit-tested without a cluster. Nothing here reads a Secret's values: a
Secret is shown by its keys, labels, owner and the operator's annotations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from egain_token_operator.render import (
    EXPIRES_AT_ANNOTATION,
    ISSUED_AT_ANNOTATION,
    MANAGED_BY_LABEL,
    Owner,
    is_owned_by,
    parse_rfc3339,
)

NONE = "-"
# Where the values of the detailed view start.
LABEL_WIDTH = 17
# Events shown in the detailed view, newest last.
RECENT_EVENTS = 10


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


def _instant(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return parse_rfc3339(text)
    except ValueError:
        return None


def time_until(text: Any, now: datetime, past: str) -> str:
    """How long until the instant `text` (RFC 3339): `42m`; `past` with the span
    filled in (`{}`) when it has passed; `-` when there is none."""
    instant = _instant(text)
    if instant is None:
        return NONE
    if instant > now:
        return human_duration(instant - now)
    return past.format(human_duration(now - instant))


def time_ago(text: Any, now: datetime) -> str:
    """How long ago the instant `text` (RFC 3339) was: `3m ago`; `-` when there is none."""
    instant = _instant(text)
    return NONE if instant is None else f"{human_duration(now - instant)} ago"


def recorded_ready(token: Mapping[str, Any]) -> Mapping[str, Any]:
    """The Ready condition recorded in the EgainToken's status; empty before there is one."""
    conditions = (token.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Ready"), {})


def is_ready(token: Mapping[str, Any]) -> bool:
    """True when the EgainToken's Ready condition is `True`."""
    return recorded_ready(token).get("status") == "True"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns as kubectl prints them: left-aligned, three spaces apart."""
    every = [list(header), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in every) for i in range(len(header))]
    return "\n".join(
        "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in every
    )


STATUS_HEADER = (
    "NAME",
    "READY",
    "REASON",
    "SECRET",
    "EXPIRES IN",
    "NEXT REFRESH IN",
    "FAILURES",
    "LAST FAILURE",
)


def status_row(token: Mapping[str, Any], now: datetime) -> list[str]:
    """One EgainToken as a row under `STATUS_HEADER`."""
    status = token.get("status") or {}
    ready = recorded_ready(token)
    last_failure = status.get("lastFailure") or {}
    failed = (
        f"{last_failure.get('reason', '?')} {time_ago(last_failure.get('time'), now)}"
        if last_failure
        else NONE
    )
    return [
        str(token["metadata"]["name"]),
        str(ready.get("status", "Unknown")),
        str(ready.get("reason", NONE)),
        str(status.get("secretName") or NONE),
        time_until(status.get("expiresAt"), now, "expired {} ago"),
        time_until(status.get("nextRefreshAt"), now, "due"),
        str(status.get("consecutiveFailures") or 0),
        failed,
    ]


def status_table(
    tokens: Sequence[Mapping[str, Any]], now: datetime, *, with_namespace: bool
) -> str:
    """The `status` table, sorted by namespace and name."""
    ordered = sorted(tokens, key=lambda t: (t["metadata"]["namespace"], t["metadata"]["name"]))
    rows = [status_row(token, now) for token in ordered]
    if not with_namespace:
        return table(STATUS_HEADER, rows)
    return table(
        ("NAMESPACE", *STATUS_HEADER),
        [[str(t["metadata"]["namespace"]), *row] for t, row in zip(ordered, rows, strict=True)],
    )


def _at(text: Any, now: datetime, past: str = "{} ago") -> str:
    """`2026-11-23T22:10:00Z (in 42m)`, or `-`."""
    instant = _instant(text)
    if instant is None:
        return NONE
    relative = (
        f"in {human_duration(instant - now)}"
        if instant > now
        else past.format(human_duration(now - instant))
    )
    return f"{text} ({relative})"


def _fields(pairs: Sequence[tuple[str, str]], indent: str = "") -> list[str]:
    """`Label:  value` lines, the values in one column whatever the indent."""
    width = LABEL_WIDTH - len(indent)
    return [f"{indent}{(label + ':').ljust(width)}{value}" for label, value in pairs]


def secret_owner(secret: Mapping[str, Any], token: Mapping[str, Any]) -> str:
    """Who controls the Secret, said with respect to the EgainToken `token`."""
    metadata = token["metadata"]
    owner = Owner(metadata["namespace"], metadata["name"], metadata.get("uid", ""))
    if is_owned_by(secret, owner):
        return f"this EgainToken ({metadata['name']})"
    references = (secret.get("metadata") or {}).get("ownerReferences") or []
    controller = next((ref for ref in references if ref.get("controller") is True), None)
    if controller is None:
        return "nobody: not written by the operator, which leaves it untouched"
    return (
        f"{controller.get('kind')}/{controller.get('name')}, not this EgainToken: "
        "the operator leaves it untouched"
    )


def describe_secret(
    name: str, secret: Mapping[str, Any] | None, token: Mapping[str, Any], now: datetime
) -> list[str]:
    """The managed Secret: its keys (never their values), owner, and timestamps."""
    if secret is None:
        return _fields([("Secret", f"{name} (not found: not written yet)")])
    metadata = secret.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    labels = metadata.get("labels") or {}
    keys = ", ".join(sorted((secret.get("data") or {}).keys())) or "(none)"
    lines = _fields([("Secret", name)])
    lines += _fields(
        [
            ("Keys", keys),
            ("Owner", secret_owner(secret, token)),
            ("Managed by", str(labels.get(MANAGED_BY_LABEL, NONE))),
            ("Issued at", _at(annotations.get(ISSUED_AT_ANNOTATION), now)),
            ("Expires at", _at(annotations.get(EXPIRES_AT_ANNOTATION), now, "expired {} ago")),
        ],
        indent="  ",
    )
    return lines


def _event_time(event: Mapping[str, Any]) -> str:
    stamp = (
        event.get("lastTimestamp")
        or event.get("eventTime")
        or (event.get("metadata") or {}).get("creationTimestamp")
    )
    return stamp if isinstance(stamp, str) else ""


def describe_events(events: Sequence[Mapping[str, Any]], now: datetime) -> list[str]:
    """The most recent Events, oldest first, as `kubectl describe` lists them."""
    if not events:
        return _fields([("Events", "<none>")])
    recent = sorted(events, key=_event_time)[-RECENT_EVENTS:]
    rows = [
        [
            time_ago(_event_time(event), now).removesuffix(" ago"),
            str(event.get("type", "")),
            str(event.get("reason", "")),
            " ".join(str(event.get("message", "")).split()),
        ]
        for event in recent
    ]
    body = table(("AGE", "TYPE", "REASON", "MESSAGE"), rows)
    return ["Events:", *("  " + line for line in body.splitlines())]


def describe_token(
    token: Mapping[str, Any],
    secret_name: str,
    secret: Mapping[str, Any] | None,
    events: Sequence[Mapping[str, Any]],
    now: datetime,
) -> str:
    """The detailed view of one EgainToken."""
    metadata = token["metadata"]
    status = token.get("status") or {}
    ready = recorded_ready(token)
    last_failure = status.get("lastFailure") or {}
    failure = (
        f"{last_failure.get('reason')} {time_ago(last_failure.get('time'), now)}: "
        f"{last_failure.get('message', '')}"
        if last_failure
        else NONE
    )
    scopes = status.get("scopes")
    lines = _fields(
        [
            ("Name", str(metadata["name"])),
            ("Namespace", str(metadata["namespace"])),
            (
                "Ready",
                f"{ready.get('status', 'Unknown')} ({ready.get('reason', 'no status yet')})",
            ),
            ("Message", str(ready.get("message", NONE))),
            ("Token type", str(status.get("tokenType") or NONE)),
            ("Scopes", " ".join(scopes) if isinstance(scopes, list) and scopes else NONE),
            ("Issued at", _at(status.get("issuedAt"), now)),
            ("Expires at", _at(status.get("expiresAt"), now, "expired {} ago")),
            ("Next refresh", _at(status.get("nextRefreshAt"), now, "due {} ago")),
            ("Failures", str(status.get("consecutiveFailures") or 0)),
            ("Last failure", failure),
        ]
    )
    conditions = status.get("conditions") or []
    lines.append("Conditions:")
    if conditions:
        rows = [
            [
                str(c.get("type", "")),
                str(c.get("status", "")),
                str(c.get("reason", "")),
                time_ago(c.get("lastTransitionTime"), now),
                str(c.get("message", "")),
            ]
            for c in conditions
        ]
        header = ("TYPE", "STATUS", "REASON", "SINCE", "MESSAGE")
        lines += ["  " + line for line in table(header, rows).splitlines()]
    else:
        lines.append("  <none>")
    lines += describe_secret(secret_name, secret, token, now)
    lines += describe_events(events, now)
    return "\n".join(lines)


class Outcome(StrEnum):
    """The outcome of one step of `check`."""

    OK = "ok"
    FAIL = "FAIL"
    INFO = "info"


@dataclass(frozen=True)
class Finding:
    """One line of a `check` report."""

    outcome: Outcome
    what: str


def check_report(namespace: str, name: str, findings: Sequence[Finding]) -> str:
    """The `check` report: one line per finding, then the summary."""
    lines = [f"EgainToken {namespace}/{name}"]
    lines += [f"  {finding.outcome.value:<4}  {finding.what}" for finding in findings]
    failed = sum(finding.outcome is Outcome.FAIL for finding in findings)
    lines.append("all checks passed" if not failed else f"{failed} check(s) failed")
    return "\n".join(lines)
