"""What the command line shows: tables, the detailed views, check and renew reports.

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

from egain_token_operator.decisions.clientref import recorded_client, requested_client, slashed
from egain_token_operator.decisions.clients import ClientKey, ClientKind
from egain_token_operator.decisions.issuer import DEFAULT_ANONYMOUS_TOKEN_URL, DEFAULT_SCOPE_PREFIX
from egain_token_operator.decisions.readiness import ready_in
from egain_token_operator.decisions.render import (
    EXPIRES_AT_ANNOTATION,
    ISSUED_AT_ANNOTATION,
    MANAGED_BY_LABEL,
    Owner,
    is_owned_by,
)
from egain_token_operator.decisions.timestamps import parse_rfc3339

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


def recorded_ready(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The Ready condition recorded in the status of an EgainToken (or a client);
    empty before there is one."""
    return ready_in(body.get("status") or {})


def is_ready(body: Mapping[str, Any]) -> bool:
    """True when the Ready condition of an EgainToken (or a client) is `True`."""
    return recorded_ready(body).get("status") == "True"


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
            ("Client", client_used(token)),
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


def label_selector(selector: Mapping[str, Any]) -> str:
    """A label selector as `kubectl get -l` takes it: `a=b,c in (d,e),f,!g`."""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = ",".join(str(v) for v in expression.get("values") or [])
        terms.append(
            {
                "In": f"{key} in ({values})",
                "NotIn": f"{key} notin ({values})",
                "Exists": str(key),
                "DoesNotExist": f"!{key}",
            }.get(str(operator), f"{key} {operator} ({values})")
        )
    return ",".join(terms)


def allowed_namespaces(kind: ClientKind, namespace: str | None, spec: Mapping[str, Any]) -> str:
    """Which namespaces' EgainTokens may use a client."""
    if kind.namespaced:
        return f"{namespace} only (an EgainClient serves its own namespace)"
    allowed = spec.get("allowedNamespaces") or {}
    names = allowed.get("names") or []
    selector = allowed.get("selector")
    said = [f"names {', '.join(str(n) for n in names)}"] if names else []
    if isinstance(selector, Mapping):
        text = label_selector(selector)
        said.append(f"labels {text}" if text else "every namespace (selector {})")
    return "; or ".join(said) or "none"


def describe_client(
    client: Mapping[str, Any],
    tokens: Sequence[Mapping[str, Any]],
    tokens_namespace: str | None,
    now: datetime,
) -> str:
    """The detailed view of an EgainClient or ClusterEgainClient: its spec (a
    credentials Secret by name and keys only), Ready, policy, and the EgainTokens
    that use it (of `tokens_namespace`, or of every namespace when None)."""
    kind = ClientKind(client["kind"])
    metadata = client["metadata"]
    spec = client.get("spec") or {}
    status = client.get("status") or {}
    ready = recorded_ready(client)
    flow = str(spec.get("flow") or "ClientApp")
    anonymous = flow == "AnonymousCustomer"
    default_url = f"{DEFAULT_ANONYMOUS_TOKEN_URL} (default)" if anonymous else NONE
    credentials = spec.get("credentialsSecretRef") or {}
    where = (
        f"namespace {metadata['namespace']}"
        if kind.namespaced
        else "the operator's cluster resource namespace"
    )
    keys = (
        f"{credentials.get('clientIdKey') or 'client_id'} and "
        f"{credentials.get('clientSecretKey') or 'client_secret'}"
    )
    scopes = spec.get("allowedScopes")
    pairs = [
        ("Name", str(metadata["name"])),
        ("Kind", kind.value),
        *([("Namespace", str(metadata["namespace"]))] if kind.namespaced else []),
        ("Ready", f"{ready.get('status', 'Unknown')} ({ready.get('reason', 'no status yet')})"),
        ("Message", str(ready.get("message", NONE))),
        ("Flow", flow),
        ("Token URL", str(spec.get("tokenUrl") or default_url)),
    ]
    if anonymous:
        pairs += [
            ("Tenant", str(spec.get("tenantId") or NONE)),
            ("Scope prefix", str(spec.get("scopePrefix") or f"{DEFAULT_SCOPE_PREFIX} (default)")),
        ]
    pairs += [
        ("Credentials", f"Secret {credentials.get('name', NONE)} in {where}, keys {keys}"),
        ("Tokens", str(status.get("tokens", NONE))),
    ]
    lines = _fields(pairs)
    lines.append("Policy:")
    lines += _fields(
        [
            ("Namespaces", allowed_namespaces(kind, metadata.get("namespace"), spec)),
            (
                "Scopes",
                ", ".join(str(s) for s in scopes)
                if isinstance(scopes, list)
                else "any scope the client has",
            ),
        ],
        indent="  ",
    )
    lines += describe_conditions(status, now)
    lines += describe_client_tokens(tokens, tokens_namespace)
    return "\n".join(lines)


def describe_client_tokens(
    tokens: Sequence[Mapping[str, Any]], tokens_namespace: str | None
) -> list[str]:
    """The EgainTokens that use a client, with their Ready state."""
    where = f"namespace {tokens_namespace}" if tokens_namespace else "every namespace"
    heading = f"EgainTokens using it, in {where}:"
    if not tokens:
        return [heading, "  <none>"]
    ordered = sorted(tokens, key=lambda t: (t["metadata"]["namespace"], t["metadata"]["name"]))
    rows = [
        [
            str(t["metadata"]["namespace"]),
            str(t["metadata"]["name"]),
            str(recorded_ready(t).get("status", "Unknown")),
            str(recorded_ready(t).get("reason", NONE)),
        ]
        for t in ordered
    ]
    body = table(("NAMESPACE", "NAME", "READY", "REASON"), rows)
    return [heading, *("  " + line for line in body.splitlines())]


def selection_text(
    namespace: str | None, label_selector: str | None, client: ClientKey | None
) -> str:
    """The EgainTokens `renew` selected, in words: `EgainTokens using ... in namespace a`."""
    where = f"namespace {namespace}" if namespace else "every namespace"
    if client is not None:
        return f"EgainTokens using {slashed(client)} in {where}"
    if label_selector is not None:
        return f"EgainTokens matching {label_selector} in {where}"
    return f"EgainTokens in {where}"


def renewal_summary(endings: Mapping[Any, str], timed_out: int) -> str:
    """The last line of a `renew` of many: how many ended which way."""
    counts = {ending: list(endings.values()).count(ending) for ending in set(endings.values())}
    total = len(endings) + timed_out
    said = [
        f"{counts.get('renewed', 0)} renewed",
        f"{counts.get('failed', 0)} failed",
        f"{timed_out} timed out",
    ]
    if counts.get("deleted"):
        said.append(f"{counts['deleted']} deleted meanwhile")
    return f"{total} EgainToken(s): {', '.join(said)}"


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
