"""The soak's verdict (`soak.verdict`) over small hand-made timelines.

Times are seconds of a run that started at 0; the recovery bound is 2 s
unless a test says otherwise.
"""

from __future__ import annotations

import copy
import math
import random
from typing import Any

import pytest

from soak import verdict
from soak.plan import CONSUMER_TOKEN, EGAIN_FAULTS, FILE_PROPAGATION, KUBE_FAULTS, OLDER
from soak.schedule import fault_plan
from soak.timeline import Window
from testground.incluster import Sample

BOUND = 2.0
EVERY = {"a": verdict.every, "b": verdict.every}


def window(kind: str, start: float, end: float | None, tokens: set[str] | None = None) -> Window:
    return Window(kind, start, end, None if tokens is None else frozenset(tokens))


# --- what excuses a sample -----------------------------------------------------


def test_the_runs_start_excuses_nothing() -> None:
    """Every token was Ready before the run began: its first sample is judged."""
    assert verdict.undisturbed_for([], "a", 0.5) == math.inf
    assert verdict.judged_fraction([(0.5, 0)], EVERY, [], BOUND) == 1.0


def test_a_disturbance_excuses_its_tokens_during_it_and_for_the_bound_after() -> None:
    windows = [window("etcd_pause", 10.0, 20.0)]
    assert verdict.undisturbed_for(windows, "a", 9.0) == math.inf
    assert verdict.undisturbed_for(windows, "a", 15.0) == 0.0
    assert verdict.undisturbed_for(windows, "a", 21.5) == 1.5
    assert verdict.undisturbed_for(windows, "a", 23.0) == 3.0
    ticks = [(at, 0) for at in (9.0, 15.0, 21.5, 23.0)]
    # judged: 9.0 (before it) and 23.0 (past the bound), of both tokens
    assert verdict.judged_fraction(ticks, EVERY, windows, BOUND) == 0.5


def test_a_disturbance_of_other_tokens_excuses_nothing_here() -> None:
    windows = [window("secret_deleted", 10.0, 11.0, {"b"})]
    assert verdict.undisturbed_for(windows, "a", 10.5) == math.inf
    assert verdict.judged_fraction([(10.5, 0)], EVERY, windows, BOUND) == 0.5


def test_the_latest_of_several_disturbances_counts() -> None:
    windows = [window("hang", 10.0, 20.0), window("reset", 12.0, 14.0)]
    assert verdict.undisturbed_for(windows, "a", 25.0) == 5.0


def test_with_the_lead_lifetimes_a_fault_shorter_than_the_lead_excuses_nothing() -> None:
    excuse = verdict.excuse("lead", lead=20.0)
    assert not excuse(window("5xx_burst", 0.0, 19.0))
    assert excuse(window("long_outage", 0.0, 20.0))
    assert excuse(window("hang", 0.0, None)), "one that has not ended"


@pytest.mark.parametrize(
    "kind", ["credentials_rotation", "secret_deleted", "secret_edited", "spec_changed"]
)
def test_with_the_lead_lifetimes_tampering_with_a_token_excuses_it_however_short(
    kind: str,
) -> None:
    assert verdict.excuse("lead", lead=20.0)(window(kind, 0.0, 0.1, {"a"}))


def test_with_the_stress_lifetimes_every_fault_excuses() -> None:
    assert verdict.excuse("stress", lead=2.0)(window("5xx_burst", 0.0, 0.1))


def test_the_judged_fraction_counts_every_token_at_every_tick() -> None:
    windows = [window("secret_edited", 2.0, 3.0, {"a"})]
    ticks = [(float(at), 0) for at in range(10)]
    # a at 2, 3 (during it), 4 and 5 (within the bound): 4 of 20 samples excused
    assert verdict.judged_fraction(ticks, EVERY, windows, BOUND) == 0.8


def test_no_tick_judges_nothing() -> None:
    assert verdict.judged_fraction([], EVERY, [], BOUND) == 0.0


# --- violations ----------------------------------------------------------------


def test_an_expired_read_counts_only_once_nothing_excuses_it() -> None:
    windows = [window("apiserver_restart", 10.0, 20.0)]
    bad = [(21.0, "a", "expired"), (30.0, "b", "missing")]
    found = verdict.api_violations(bad, EVERY, windows, BOUND, started=0.0)
    assert found == [{"at": 30.0, "token": "b", "what": "missing"}]


def test_an_older_token_is_a_violation_whatever_excuses_it() -> None:
    windows = [window("leader_partition", 10.0, 20.0)]
    found = verdict.api_violations([(15.0, "a", OLDER)], EVERY, windows, BOUND, started=0.0)
    assert found == [{"at": 15.0, "token": "a", "what": OLDER}]


def test_violations_are_timed_from_the_runs_start() -> None:
    found = verdict.api_violations([(1030.0, "a", "expired")], EVERY, [], BOUND, started=1000.0)
    assert found[0]["at"] == 30.0


def test_the_pods_file_is_judged_after_the_bound_and_the_kubelets_propagation() -> None:
    windows = [window("etcd_pause", 10.0, 20.0)]
    expiry = {"old": 18.0, "new": 40.0}
    within = 20.0 + BOUND + FILE_PROPAGATION - 1
    after = 20.0 + BOUND + FILE_PROPAGATION + 1
    samples = [
        Sample(at=int(within), expires_at=18, fingerprint="old"),
        Sample(at=int(after), expires_at=18, fingerprint="old"),
        Sample(at=int(after), expires_at=40, fingerprint="new"),
        Sample(at=int(after), expires_at=0, fingerprint="forged"),
    ]
    found = verdict.file_violations(samples, expiry, verdict.every, windows, BOUND, started=0.0)
    assert found == [
        {"at": float(int(after)), "what": "expired"},
        {"at": float(int(after)), "what": "not a token eGain issued"},
    ]


def test_the_pods_file_is_judged_by_the_mounted_tokens_disturbances_only() -> None:
    samples = [Sample(at=12, expires_at=5, fingerprint="old")]
    others = [window("secret_deleted", 10.0, 11.0, {"token-0001"})]
    own = [window("secret_deleted", 10.0, 11.0, {CONSUMER_TOKEN})]
    judge = verdict.file_violations
    assert judge(samples, {"old": 5.0}, verdict.every, others, BOUND, started=0.0) == [
        {"at": 12.0, "what": "expired"}
    ]
    assert judge(samples, {"old": 5.0}, verdict.every, own, BOUND, started=0.0) == []


# --- recoveries and the watchdog -----------------------------------------------


def test_a_recovery_lasts_until_a_tick_finds_every_token_valid() -> None:
    windows = [window("etcd_pause", 10.0, 20.0)]
    ticks = [(19.0, 5), (21.0, 2), (23.5, 0), (25.0, 0)]
    (found,) = verdict.recoveries(windows, ticks, started=0.0)
    assert found == {
        "kind": "etcd_pause",
        "at": 10.0,
        "lasted_s": 10.0,
        "recovery_s": 3.5,
        "complete": True,
        "overlapped": False,
    }


def test_a_recovery_no_clean_tick_ended_is_incomplete() -> None:
    windows = [window("leader_kill", 10.0, 20.0)]
    (found,) = verdict.recoveries(windows, [(21.0, 3), (30.0, 1)], started=0.0)
    assert found["complete"] is False
    assert found["recovery_s"] == 10.0


def test_a_recovery_another_disturbance_began_in_is_overlapped() -> None:
    windows = [window("hang", 10.0, 12.0), window("reset", 13.0, 14.0)]
    first, second = verdict.recoveries(windows, [(15.0, 0)], started=0.0)
    assert first["overlapped"] is True
    assert second["overlapped"] is False


def test_recoveries_are_measured_after_disturbances_of_every_token_only() -> None:
    windows = [window("secret_deleted", 10.0, 11.0, {"a"})]
    assert verdict.recoveries(windows, [(12.0, 1)], started=0.0) == []


def test_the_watchdog_finds_a_stall_longer_than_the_threshold() -> None:
    found = verdict.watchdog([1.0, 2.0, 14.0, 15.0], [], started=0.0, threshold=10.0)
    assert found == {"threshold_s": 10.0, "longest_undisturbed_gap_s": 12.0, "stalled": True}


def test_the_watchdog_does_not_count_time_disturbed_for_every_token() -> None:
    windows = [window("apiserver_restart", 3.0, 8.0), window("spec_changed", 8.0, 9.0, {"a"})]
    found = verdict.watchdog([1.0, 2.0, 14.0], windows, started=0.0, threshold=10.0)
    assert found["longest_undisturbed_gap_s"] == 7.0
    assert found["stalled"] is False


def test_the_watchdog_ignores_tokens_issued_before_the_run() -> None:
    found = verdict.watchdog([-30.0, 1.0, 2.0], [], started=0.0, threshold=10.0)
    assert found["stalled"] is False


# --- the verdict ---------------------------------------------------------------


def passing(variant: str = "stress") -> dict[str, Any]:
    """A report of a run that broke no rule."""
    return {
        "lifetimes": variant,
        "violations": 0,
        "lost": 0,
        "leaks": 0,
        "fault_errors": [],
        "faults_unmet": {},
        "split_brain": [
            {"kind": "leader_partition", "requests_after_lease_lost": 0, "both_acting_s": 0.0},
            {"kind": "leader_freeze", "requests_after_lease_lost": 0},
        ],
        "watchdog": {"threshold_s": 10.0, "longest_undisturbed_gap_s": 1.0, "stalled": False},
        "recovery_s": {"each": [{"kind": "etcd_pause", "at": 10.0, "complete": True}]},
        "judged_fraction": verdict.MIN_JUDGED[variant],
    }


def test_a_run_that_broke_no_rule_passes() -> None:
    assert verdict.failures(passing("stress")) == []
    assert verdict.failures(passing("lead")) == []


def broken(change: dict[str, Any]) -> dict[str, Any]:
    report = copy.deepcopy(passing())
    for path, value in change.items():
        *parents, last = path.split(".")
        target = report
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return report


@pytest.mark.parametrize(
    ("rule", "change", "named"),
    [
        ("an expired read", {"violations": 1}, "expired or missing token"),
        ("a lost token", {"lost": 1}, "tokens lost"),
        ("a leaked secret", {"leaks": 1}, "secrets leaked"),
        ("a fault not injected", {"fault_errors": ["hang: boom"]}, "not injected: hang"),
        ("a fault no request met", {"faults_unmet": {"reset": 1}}, "no request met: reset"),
        (
            "a request after the Lease was lost",
            {"split_brain.1.requests_after_lease_lost": 2},
            "leader_freeze: 2 token requests",
        ),
        (
            "both replicas acting",
            {"split_brain.0.both_acting_s": 0.4},
            "both replicas acted for 0.4 s",
        ),
        ("the watchdog's stall", {"watchdog.stalled": True}, "stalled"),
        (
            "an incomplete recovery",
            {"recovery_s.each.0.complete": False},
            "no recovery after etcd_pause",
        ),
        ("a judged share below the minimum", {"judged_fraction": 0.099}, "judged 9.9 %"),
    ],
)
def test_each_rule_fails_the_run(rule: str, change: dict[str, Any], named: str) -> None:
    (reason,) = verdict.failures(broken(change))
    assert named in reason, rule


def test_the_lead_variant_must_judge_more_than_the_stress_variant() -> None:
    report = passing("lead")
    report["judged_fraction"] = verdict.MIN_JUDGED["stress"]
    (reason,) = verdict.failures(report)
    assert "below the lead variant's 90 %" in reason
    assert verdict.MIN_JUDGED["lead"] > verdict.MIN_JUDGED["stress"] > 0


def test_every_rule_broken_is_named() -> None:
    report = broken({"violations": 3, "lost": 1, "watchdog.stalled": True})
    assert len(verdict.failures(report)) == 3


# --- the schedule ----------------------------------------------------------------


@pytest.mark.parametrize("variant", ["lead", "stress"])
def test_every_fault_kind_comes_at_least_once(variant: str) -> None:
    kinds = [kind for kinds in fault_plan(variant, 60.0, random.Random(7)) for kind in kinds]
    assert set(kinds) == EGAIN_FAULTS | KUBE_FAULTS
