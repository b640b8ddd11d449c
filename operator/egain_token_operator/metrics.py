"""Prometheus metrics. Names and labels are part of the API contract.

No label value a tenant chooses outlives the EgainTokens that use it, so the
series are bounded by what is served (README, "Metrics"):
- `namespace` and `name` are an EgainToken's, and `forget` drops every series
  holding them when the token is no longer served;
- `condition`, `result`, `reason` and `flow` come from fixed sets;
- `host` of the request histogram is the allow-list entry the token URL matched
  (`*.egain.cloud`), a value of the operator's, never the URL's own host: a tenant
  editing `tokenUrl` through many hosts under one entry adds no series;
- `status_code` is what an allowed host answered, or `error`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

from egain_token_operator import __version__

EXPIRATION = Gauge(
    "egain_token_expiration_timestamp_seconds",
    "Unix time at which the token held in the EgainToken's Secret expires.",
    ["namespace", "name"],
)
RENEWAL = Gauge(
    "egain_token_renewal_timestamp_seconds",
    "Unix time of the next planned token request for the EgainToken.",
    ["namespace", "name"],
)
READY = Gauge(
    "egain_token_ready_status",
    "1 for the EgainToken's current Ready condition status, 0 for the others.",
    ["namespace", "name", "condition"],
)
REFRESHES = Counter(
    "egain_token_refresh",
    "Token requests made for an EgainToken, by result and Ready reason.",
    ["namespace", "name", "result", "reason"],
)
REQUEST_DURATION = Histogram(
    "egain_token_request_duration_seconds",
    "Duration of token requests to eGain, by the allowed token host entry the URL matched, "
    "flow and HTTP status code.",
    ["host", "flow", "status_code"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
READY_REASON = Gauge(
    "egain_token_ready_reason",
    "1 for the reason of the EgainToken's current Ready condition (one series per token).",
    ["namespace", "name", "reason"],
)
SHARED_REFRESHES = Counter(
    "egain_token_shared_refresh",
    "New tokens an EgainToken took from another EgainToken's identical request instead "
    "of sending its own: token requests saved by sharing.",
    ["namespace", "name"],
)
CONSECUTIVE_FAILURES = Gauge(
    "egain_token_consecutive_failures",
    "Failed token requests for the EgainToken since its last success.",
    ["namespace", "name"],
)

LEADER = Gauge(
    "egain_token_operator_leader",
    "1 while this replica acts (holds the leader election Lease, or runs without one).",
)

BUILD = Info("egain_token_operator_build", "The running operator's version.")
BUILD.info({"version": __version__})

_CONDITION_STATUSES = ("True", "False", "Unknown")

# The label values of each token's series that are not just (namespace, name),
# so that setting and forgetting them costs the same at any fleet size:
# `remove_by_labels` goes through every series of a metric.
_reasons: dict[tuple[str, str], str] = {}
_refresh_results: dict[tuple[str, str], set[tuple[str, str]]] = {}


def set_ready(namespace: str, name: str, status: str, reason: str) -> None:
    """Set the ready gauge to 1 for `status` and 0 for the other statuses, and the
    token's one reason series to `reason`."""
    for candidate in _CONDITION_STATUSES:
        READY.labels(namespace, name, candidate).set(1.0 if candidate == status else 0.0)
    # Reasons are many: keep only the current one rather than a series per reason.
    previous = _reasons.get((namespace, name))
    if previous is not None and previous != reason:
        READY_REASON.remove(namespace, name, previous)
    _reasons[(namespace, name)] = reason
    READY_REASON.labels(namespace, name, reason).set(1.0)


def count_refresh(namespace: str, name: str, result: str, reason: str) -> None:
    """Count a token request sent for the EgainToken, by result and Ready reason."""
    _refresh_results.setdefault((namespace, name), set()).add((result, reason))
    REFRESHES.labels(namespace, name, result, reason).inc()


def forget(namespace: str, name: str) -> None:
    """Drop every per-token series of a deleted EgainToken."""
    for metric in (EXPIRATION, RENEWAL, CONSECUTIVE_FAILURES, SHARED_REFRESHES):
        metric.remove(namespace, name)
    for status in _CONDITION_STATUSES:
        READY.remove(namespace, name, status)
    reason = _reasons.pop((namespace, name), None)
    if reason is not None:
        READY_REASON.remove(namespace, name, reason)
    for result, counted in _refresh_results.pop((namespace, name), set()):
        REFRESHES.remove(namespace, name, result, counted)
