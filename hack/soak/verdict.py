"""The verdict of a soak run: pure functions of what it recorded.

The timeline is what the run wrote down: the disturbances (`Window`s), the
sampler's ticks (when it read every managed Secret, and how many held no
valid token) and bad samples, the Pod's file samples, the times eGain issued
tokens. Nothing here reads a clock, a file or the cluster, so every rule is
unit-tested with small hand-made timelines (`tests/harness/test_soak_verdict.py`).

A sample is *judged* when nothing that excuses its token has disturbed it for
longer than the recovery bound; the run's start excuses nothing, since every
token was Ready before it. `failures` names every rule a report broke.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from soak.plan import CONSUMER_TOKEN, FILE_PROPAGATION, OLDER, TAMPERING
from soak.timeline import Window
from testground.incluster import Sample

# The least judged share of API samples a run must reach, by variant. Lead:
# what is excused is the outage of one client's tokens (a sixth) and the API
# server's restart for the 60 and 72 s tokens (a third), each for the fault and
# the bound after it, and a few tampered tokens: about 5 % of a 10-minute run
# (94.2 % and 94.8 % were judged while the run's start still excused 23 s).
# Stress: its eGain and Kubernetes faults overlap and each excuses the bound
# after it, so what the schedule guarantees is the quiet `JUDGED_TAIL` (30 s)
# after the last fault's bound, for every token: a tenth of any run up to
# 300 s. The 60 s soak of `make test` runs for about 150-250 s (some 25 s of
# them without a sample while the API server is down): it judged 17.9 % of a
# 203 s run; the 10-minute run judges more (about a fifth).
MIN_JUDGED = {"lead": 0.9, "stress": 0.1}

Excuse = Callable[[Window], bool]


def every(_: Window) -> bool:
    """The excuse of the stress variant: every disturbance excuses."""
    return True


def excuse(variant: str, lead: float) -> Excuse:
    """Which disturbances excuse a sample of a token refreshed `lead` seconds before expiry.

    Stress: every one (its tokens are shorter than most faults). Lead: one that
    acts on the token itself, lasts at least its lead, or has not ended; a
    shorter one the lead must absorb.
    """
    if variant == "stress":
        return every
    return lambda window: (
        window.kind in TAMPERING or window.end is None or window.end - window.start >= lead
    )


def undisturbed_for(
    windows: Sequence[Window], token: str, at: float, excuses: Excuse = every
) -> float:
    """How long before `at` nothing that `excuses` had disturbed `token`: 0 while
    something does, infinite when nothing had since the run began."""
    since = -math.inf
    for window in windows:
        if window.start > at or not window.affects(token) or not excuses(window):
            continue
        if window.end is None or window.end >= at:
            return 0.0
        since = max(since, window.end)
    return at - since


def judged_fraction(
    ticks: Sequence[tuple[float, int]],
    excuses: Mapping[str, Excuse],
    windows: Sequence[Window],
    bound: float,
) -> float:
    """The share of API samples (one per token in `excuses` at each tick) taken while
    no disturbance excused them."""
    judged = total = 0
    for at, _ in ticks:
        for token, excused_by in excuses.items():
            total += 1
            judged += undisturbed_for(windows, token, at, excused_by) > bound
    return judged / total if total else 0.0


def api_violations(
    bad: Sequence[tuple[float, str, str]],
    excuses: Mapping[str, Excuse],
    windows: Sequence[Window],
    bound: float,
    started: float,
) -> list[dict[str, Any]]:
    """The bad samples `(at, token, what)` that count: judged, or holding an older token."""
    return [
        {"at": round(at - started, 1), "token": token, "what": what}
        for at, token, what in bad
        if what == OLDER or undisturbed_for(windows, token, at, excuses[token]) > bound
    ]


def file_violations(
    samples: Sequence[Sample],
    expiry: Mapping[str, float],
    excuses: Excuse,
    windows: Sequence[Window],
    bound: float,
    started: float,
) -> list[dict[str, Any]]:
    """The Pod's file samples that held no valid token (by `expiry`, fingerprint → epoch
    seconds of what eGain issued) while nothing excused it for the bound and the
    kubelet's propagation."""
    found = []
    for sample in samples:
        expires = expiry.get(sample.fingerprint)
        if expires is not None and sample.at < expires:
            continue
        since = undisturbed_for(windows, CONSUMER_TOKEN, sample.at, excuses)
        if since > bound + FILE_PROPAGATION:
            what = "expired" if expires is not None else "not a token eGain issued"
            found.append({"at": round(sample.at - started, 1), "what": what})
    return found


def global_windows(windows: Sequence[Window]) -> list[Window]:
    """The disturbances of every token, by start."""
    return sorted((w for w in windows if w.tokens is None), key=lambda w: w.start)


def recoveries(
    windows: Sequence[Window], ticks: Sequence[tuple[float, int]], started: float
) -> list[dict[str, Any]]:
    """For each disturbance of every token: from its end until a tick found every token valid.

    Another disturbance may begin before that (`overlapped`); the time then
    counts both. `complete` is false when no such tick came before the end.
    """
    found = []
    spans = global_windows(windows)
    for window in spans:
        end = window.end
        assert end is not None
        clean = next((at for at, bad in ticks if at >= end and bad == 0), None)
        until = clean if clean is not None else (ticks[-1][0] if ticks else end)
        found.append(
            {
                "kind": window.kind,
                "at": round(window.start - started, 1),
                "lasted_s": round(end - window.start, 1),
                "recovery_s": round(max(until - end, 0.0), 1),
                "complete": clean is not None,
                "overlapped": any(end < w.start < until for w in spans),
            }
        )
    return found


def watchdog(
    issued: Sequence[float], windows: Sequence[Window], started: float, threshold: float
) -> dict[str, Any]:
    """The longest time with no token issued (`issued`: epoch seconds) while nothing
    disturbed every token; longer than `threshold` (the longest lifetime: every
    token refreshes within it) is a stall."""
    times = sorted(at for at in issued if at >= started)
    spans = global_windows(windows)
    longest = 0.0
    for before, after in itertools.pairwise(times):
        covered = sum(max(0.0, min(after, w.end or after) - max(before, w.start)) for w in spans)
        longest = max(longest, after - before - covered)
    return {
        "threshold_s": threshold,
        "longest_undisturbed_gap_s": round(longest, 1),
        "stalled": longest > threshold,
    }


def growth(samples: Sequence[Mapping[str, Any]], warm_up: float) -> dict[str, Any]:
    """Per replica: its resources over the run, and the RSS slope after `warm_up` seconds."""
    found: dict[str, Any] = {}
    for name in sorted({s["replica"] for s in samples}):
        own = [s for s in samples if s["replica"] == name]
        warm = [s for s in own if s["at"] - own[0]["at"] >= warm_up]
        slope = None
        if len(warm) >= 3:
            minutes = [s["at"] / 60 for s in warm]
            slope = round(
                statistics.linear_regression(minutes, [s["rss_kib"] for s in warm]).slope, 1
            )
        found[name] = {
            "samples": len(own),
            "rss_mib": [round(own[0]["rss_kib"] / 1024, 1), round(own[-1]["rss_kib"] / 1024, 1)],
            "rss_slope_kib_per_min": slope,
            "fds": [min(s["fds"] for s in own), max(s["fds"] for s in own)],
            "sockets": [min(s["sockets"] for s in own), max(s["sockets"] for s in own)],
        }
    return found


def failures(report: Mapping[str, Any]) -> list[str]:
    """Every rule the run broke, one line each; none: it passed."""
    found = []
    if report["violations"]:
        found.append(f"{report['violations']} samples read an expired or missing token")
    if report["lost"]:
        found.append(f"{report['lost']} tokens lost")
    if report["leaks"]:
        found.append(f"{report['leaks']} secrets leaked")
    found += [f"fault not injected: {error}" for error in report["fault_errors"]]
    found += [
        f"fault no request met: {kind} ({count}x)" for kind, count in report["faults_unmet"].items()
    ]
    for split in report["split_brain"]:
        if split["requests_after_lease_lost"]:
            found.append(
                f"{split['kind']}: {split['requests_after_lease_lost']} token requests"
                " by the replica that had lost the Lease"
            )
        if split.get("both_acting_s"):
            found.append(f"{split['kind']}: both replicas acted for {split['both_acting_s']} s")
    if report["watchdog"]["stalled"]:
        found.append(
            f"stalled: no token issued for {report['watchdog']['longest_undisturbed_gap_s']} s"
            " while nothing disturbed every token"
        )
    found += [
        f"no recovery after {r['kind']} at {r['at']} s"
        for r in report["recovery_s"]["each"]
        if not r["complete"]
    ]
    minimum = MIN_JUDGED[report["lifetimes"]]
    if report["judged_fraction"] < minimum:
        found.append(
            f"judged {100 * report['judged_fraction']:.1f} % of the samples,"
            f" below the {report['lifetimes']} variant's {100 * minimum:.0f} %"
        )
    return found
