"""The metric names the operator exports, and the names a PromQL expression reads.

Exported names come from the metric objects in `egain_token_operator.metrics`
(what its registry serves), with the suffixes Prometheus sees for each type:
`_total` and `_created` for counters, `_bucket`, `_count`, `_sum` and
`_created` for histograms, `_info` for info metrics.
"""

from __future__ import annotations

import re

from prometheus_client.metrics import MetricWrapperBase

from egain_token_operator import metrics

_SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "info": ("_info",),
    "gauge": ("",),
}

# PromQL words that are not metric names: keywords, aggregation modifiers, literals.
_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"bool", "offset", "inf", "nan", "start", "end", "atan2"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?")


def metric_families() -> dict[str, str]:
    """Each metric family `metrics.py` defines, by name, with its type."""
    families: dict[str, str] = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase | metrics.TokenMetrics):
            for family in value.describe():
                families[family.name] = family.type
    return families


def exported_metric_names() -> set[str]:
    """Every sample name the operator's metrics produce."""
    return {
        name + suffix
        for name, kind in metric_families().items()
        for suffix in _SAMPLE_SUFFIXES[kind]
    }


def documented_metric_names() -> set[str]:
    """The names users write: families, with `_total` for counters, `_info` for info."""
    names = set()
    for name, kind in metric_families().items():
        names.add({"counter": f"{name}_total", "info": f"{name}_info"}.get(kind, name))
    return names


def referenced_metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression selects (function names and keywords left out)."""
    text = _STRING.sub('""', expression)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return names
