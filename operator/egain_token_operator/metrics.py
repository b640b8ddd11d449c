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

import time
from collections.abc import Iterable

from prometheus_client import REGISTRY, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from egain_token_operator import __version__

TOKEN_LABELS = ("namespace", "name")
EXPIRATION = "egain_token_expiration_timestamp_seconds"
RENEWAL = "egain_token_renewal_timestamp_seconds"
READY = "egain_token_ready_status"
READY_REASON = "egain_token_ready_reason"
REFRESHES = "egain_token_refresh"
SHARED_REFRESHES = "egain_token_shared_refresh"
CONSECUTIVE_FAILURES = "egain_token_consecutive_failures"
_HELP = {
    EXPIRATION: "Unix time at which the token held in the EgainToken's Secret expires.",
    RENEWAL: "Unix time of the next planned token request for the EgainToken.",
    READY: "1 for the EgainToken's current Ready condition status, 0 for the others.",
    READY_REASON: "1 for the reason of the EgainToken's current Ready condition "
    "(one series per token).",
    REFRESHES: "Token requests made for an EgainToken, by result and Ready reason.",
    SHARED_REFRESHES: "New tokens an EgainToken took from another EgainToken's identical "
    "request instead of sending its own: token requests saved by sharing.",
    CONSECUTIVE_FAILURES: "Failed token requests for the EgainToken since its last success.",
}
_CONDITION_STATUSES = ("True", "False", "Unknown")


class _TokenSeries:
    """What one EgainToken's series hold: a value each (None: no series yet), and
    each counter's count with the Unix time it was created."""

    __slots__ = ("expiration", "failures", "ready", "reason", "refreshes", "renewal", "shared")

    def __init__(self) -> None:
        self.expiration: float | None = None
        self.renewal: float | None = None
        self.failures: float | None = None
        self.ready: str | None = None  # the Ready condition's status
        self.reason: str | None = None
        self.shared: list[float] | None = None  # [count, created]
        self.refreshes: dict[tuple[str, str], list[float]] | None = None  # (result, reason)


class TokenMetrics(Collector):
    """The per-EgainToken series, kept as the values they hold and turned into
    samples when scraped.

    A series of the client library's own metrics is an object with its labels,
    a lock and a value holder: eight per token came to 5.7 KiB, more than the
    rest of what the operator keeps of a token. Here a token costs one small
    record. The families, names, labels and types are those documented.
    Scrapes run in the metrics server's thread: they read a copy of the
    records, each value read whole.
    """

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str], _TokenSeries] = {}

    def of(self, namespace: str, name: str) -> _TokenSeries:
        """The token's record, made on first use."""
        key = (namespace, name)
        series = self._tokens.get(key)
        if series is None:
            series = self._tokens[key] = _TokenSeries()
        return series

    def forget(self, namespace: str, name: str) -> None:
        """Drop every series of the token."""
        self._tokens.pop((namespace, name), None)

    def describe(self) -> Iterable[Metric]:
        """The families, without samples."""
        return list(_families())

    def collect(self) -> Iterable[Metric]:
        """Every token's samples."""
        families = _families()
        expiration, renewal, ready, reason, refreshes, shared, failures = families
        for (namespace, name), series in list(self._tokens.items()):
            token = (namespace, name)
            if series.expiration is not None:
                expiration.add_metric(token, series.expiration)
            if series.renewal is not None:
                renewal.add_metric(token, series.renewal)
            if series.failures is not None:
                failures.add_metric(token, series.failures)
            if series.ready is not None:
                for status in _CONDITION_STATUSES:
                    ready.add_metric((*token, status), 1.0 if status == series.ready else 0.0)
            if series.reason is not None:
                reason.add_metric((*token, series.reason), 1.0)
            if series.shared is not None:
                count, created = series.shared
                shared.add_metric(token, count, created=created)
            for (result, why), (count, created) in dict(series.refreshes or {}).items():
                refreshes.add_metric((*token, result, why), count, created=created)
        return list(families)


def _gauge(name: str, *labels: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, _HELP[name], labels=(*TOKEN_LABELS, *labels))


def _counter(name: str, *labels: str) -> CounterMetricFamily:
    return CounterMetricFamily(name, _HELP[name], labels=(*TOKEN_LABELS, *labels))


def _families() -> tuple[
    GaugeMetricFamily,
    GaugeMetricFamily,
    GaugeMetricFamily,
    GaugeMetricFamily,
    CounterMetricFamily,
    CounterMetricFamily,
    GaugeMetricFamily,
]:
    """The per-token families, empty, in the order `TokenMetrics.collect` fills them."""
    return (
        _gauge(EXPIRATION),
        _gauge(RENEWAL),
        _gauge(READY, "condition"),
        _gauge(READY_REASON, "reason"),
        _counter(REFRESHES, "result", "reason"),
        _counter(SHARED_REFRESHES),
        _gauge(CONSECUTIVE_FAILURES),
    )


TOKENS = TokenMetrics()
REGISTRY.register(TOKENS)

REQUEST_DURATION = Histogram(
    "egain_token_request_duration_seconds",
    "Duration of token requests to eGain, by the allowed token host entry the URL matched, "
    "flow and HTTP status code.",
    ["host", "flow", "status_code"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

LEADER = Gauge(
    "egain_token_operator_leader",
    "1 while this replica acts (holds the leader election Lease, or runs without one).",
)

EVENTS_PENDING = Gauge(
    "egain_token_operator_events_pending",
    "Events the operator has yet to post: waiting for their turn, or being posted.",
)

BUILD = Info("egain_token_operator_build", "The running operator's version.")
BUILD.info({"version": __version__})


def set_ready(namespace: str, name: str, status: str, reason: str) -> None:
    """Set the ready gauge to 1 for `status` and 0 for the other statuses, and the
    token's one reason series to `reason` (reasons are many: only the current one
    has a series)."""
    series = TOKENS.of(namespace, name)
    series.ready, series.reason = status, reason


def set_expiration(namespace: str, name: str, at: float) -> None:
    """The Unix time the token in the EgainToken's Secret expires."""
    TOKENS.of(namespace, name).expiration = at


def set_renewal(namespace: str, name: str, at: float) -> None:
    """The Unix time of the EgainToken's next planned token request."""
    TOKENS.of(namespace, name).renewal = at


def set_failures(namespace: str, name: str, count: int) -> None:
    """Failed token requests for the EgainToken since its last success."""
    TOKENS.of(namespace, name).failures = float(count)


def count_refresh(namespace: str, name: str, result: str, reason: str) -> None:
    """Count a token request sent for the EgainToken, by result and Ready reason."""
    series = TOKENS.of(namespace, name)
    if series.refreshes is None:
        series.refreshes = {}
    series.refreshes.setdefault((result, reason), [0.0, time.time()])[0] += 1.0


def count_shared(namespace: str, name: str) -> None:
    """Count a new token the EgainToken took from an identical request of another's."""
    series = TOKENS.of(namespace, name)
    if series.shared is None:
        series.shared = [0.0, time.time()]
    series.shared[0] += 1.0


def forget(namespace: str, name: str) -> None:
    """Drop every per-token series of a deleted EgainToken."""
    TOKENS.forget(namespace, name)
