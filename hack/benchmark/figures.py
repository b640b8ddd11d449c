"""Figures made of many measurements."""

from __future__ import annotations

import statistics
from collections.abc import Iterable


def percentile(values: Iterable[float], percent: int) -> float:
    """The `percent`th percentile (inclusive method; the value itself for one value)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[percent - 1]
