"""When the faults of a soak run come: which kinds, in how many lists, how far apart."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence

from soak.plan import EGAIN_FAULTS, KUBE_FAULTS, LEAD_FAULT_EVERY, ONCE_PER_10_MIN


def fault_plan(variant: str, duration: float, rng: random.Random) -> list[list[str]]:
    """The faults, each kind once and more at random in longer runs, as lists run side
    by side.

    Stress: eGain and Kubernetes faults in two lists, so they overlap at
    times. Lead: one list, so that no fault eats into the lead the one before
    left (see `quiet_gap`): a fault a token's lead absorbs must not excuse it,
    and two in a row may add up past it.
    """
    egain = sorted(EGAIN_FAULTS - {"long_outage"})
    kube = sorted(KUBE_FAULTS)
    repeatable = sorted((EGAIN_FAULTS | KUBE_FAULTS) - set(ONCE_PER_10_MIN))
    if variant == "stress":
        extra = max(0, int(duration // 40) - len(egain))
        egain += [rng.choice(egain) for _ in range(extra)] + ["long_outage"]
        kube += [
            rng.choice(["credentials_rotation", "secret_deleted", "secret_edited"])
            for _ in range(max(0, int(duration // 60) - 2))
        ]
        return [egain, kube]
    plan = egain + kube + ["long_outage"]
    plan += [kind for kind in ONCE_PER_10_MIN for _ in range(int(duration // 600) - 1)]
    plan += [
        rng.choice(repeatable) for _ in range(max(0, int(duration // LEAD_FAULT_EVERY) - len(plan)))
    ]
    return [plan]


def quiet_gap(variant: str, lifetimes: Sequence[int], http_timeout: float) -> float:
    """Seconds of quiet after each fault with the lead lifetimes: what a token still
    valid takes to be refreshed after a failure (its retry waits at most a quarter
    of its remaining validity, at most its lead, plus one request); none in the
    stress variant."""
    if variant == "stress":
        return 0.0
    return max(lifetimes) / 3 * 0.25 + http_timeout


def run_faults(
    inject: Callable[[str], None],
    kinds: list[str],
    until: float,
    gap: float,
    rng: random.Random,
) -> None:
    """Inject `kinds` one after the other, spread at random until `until` (epoch seconds),
    each at least `gap` seconds after the one before ended."""
    rng.shuffle(kinds)
    slot = (until - time.time()) / len(kinds)
    first = ended = time.time()
    for index, kind in enumerate(kinds):
        start = max(first + index * slot + rng.uniform(0, slot * 0.5), ended + gap)
        time.sleep(max(0.0, start - time.time()))
        inject(kind)
        ended = time.time()
