"""What `status` shows of EgainTokens: the table, and the detailed view of one
with its conditions, managed Secret and Events; the columns and `Label:  value`
lines the client views share.

Pure: objects as the API sends them and `now` in, text out, so every view is
unit-tested without a cluster. Nothing here reads a Secret's values: a
Secret is shown by its keys, labels, owner and the operator's annotations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from egain_token_operator.ctl.readout import (
    NONE,
    human_duration,
    instant,
    printable,
    recorded_ready,
    time_ago,
    time_until,
)
from egain_token_operator.decisions.clientref import recorded_client, requested_client, slashed
from egain_token_operator.decisions.outputs import FIXED_KEYS, parse_outputs
from egain_token_operator.decisions.render import (
    EXPIRES_AT_ANNOTATION,
    ISSUED_AT_ANNOTATION,
    MANAGED_BY_LABEL,
    Owner,
    is_owned_by,
)
from egain_token_operator.decisions.schema import InvalidSpecError

# Where the values of the detailed view start.
LABEL_WIDTH = 17
# Events shown in the detailed view, newest last.
RECENT_EVENTS = 10


def client_used(token: Mapping[str, Any]) -> str:
    """The client an EgainToken uses: the one the operator recorded (`status.client`),
    else the one its spec names (not used yet), else `inline`."""
    recorded = recorded_client(token)
    if recorded is not None:
        return slashed(recorded)
    requested = requested_client(token)
    if requested is not None:
        return f"{slashed(requested)} (spec.clientRef; not used yet)"
    return "inline"


def secret_keys(token: Mapping[str, Any]) -> str:
    """The names of the keys the operator writes in the EgainToken's Secret: the fixed
    keys, then those `spec.secretTemplate.data` and `spec.outputFormats` ask for, as the
    operator reads them (`decisions/outputs.parse_outputs`). Names only: no value is
    rendered."""
    spec = token.get("spec")
    try:
        extra = parse_outputs(spec if isinstance(spec, Mapping) else {}).keys()
    except InvalidSpecError as error:
        return f"{', '.join(FIXED_KEYS)}; spec invalid: {error}"
    return ", ".join((*FIXED_KEYS, *extra))


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns as kubectl prints them: left-aligned, three spaces apart; each cell
    `printable`."""
    every = [[printable(cell) for cell in row] for row in (header, *rows)]
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
    when = instant(text)
    if when is None:
        return NONE
    relative = (
        f"in {human_duration(when - now)}"
        if when > now
        else past.format(human_duration(now - when))
    )
    return f"{text} ({relative})"


def fields(pairs: Sequence[tuple[str, str]], indent: str = "") -> list[str]:
    """`Label:  value` lines, the values in one column whatever the indent; each
    value `printable`."""
    width = LABEL_WIDTH - len(indent)
    return [f"{indent}{(label + ':').ljust(width)}{printable(value)}" for label, value in pairs]


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
        return fields([("Secret", f"{name} (not found: not written yet)")])
    metadata = secret.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    labels = metadata.get("labels") or {}
    keys = ", ".join(sorted((secret.get("data") or {}).keys())) or "(none)"
    lines = fields([("Secret", name)])
    lines += fields(
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
        return fields([("Events", "<none>")])
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
    lines = fields(
        [
            ("Name", str(metadata["name"])),
            ("Namespace", str(metadata["namespace"])),
            ("Client", client_used(token)),
            (
                "Ready",
                f"{ready.get('status', 'Unknown')} ({ready.get('reason', 'no status yet')})",
            ),
            ("Message", str(ready.get("message", NONE))),
            ("Token type", str(status.get("tokenType") or NONE)),
            ("Scopes", " ".join(scopes) if isinstance(scopes, list) and scopes else NONE),
            ("Secret keys", secret_keys(token)),
            ("Issued at", _at(status.get("issuedAt"), now)),
            ("Expires at", _at(status.get("expiresAt"), now, "expired {} ago")),
            ("Next refresh", _at(status.get("nextRefreshAt"), now, "due {} ago")),
            ("Failures", str(status.get("consecutiveFailures") or 0)),
            ("Last failure", failure),
        ]
    )
    lines += describe_conditions(status, now)
    lines += describe_secret(secret_name, secret, token, now)
    lines += describe_events(events, now)
    return "\n".join(lines)


def describe_conditions(status: Mapping[str, Any], now: datetime) -> list[str]:
    """Every condition of a status, as `kubectl describe` lists them."""
    conditions = status.get("conditions") or []
    if not conditions:
        return ["Conditions:", "  <none>"]
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
    return ["Conditions:", *("  " + line for line in table(header, rows).splitlines())]
