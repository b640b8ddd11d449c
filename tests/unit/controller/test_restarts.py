"""Rollout restarts: when one happens, and the restarter that coalesces and spaces them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from egain_token_operator.controller.restarts import (
    COALESCE_WINDOW,
    RolloutRestarter,
    restart_time,
)
from egain_token_operator.decisions.render import RESTARTED_AT_ANNOTATION
from egain_token_operator.decisions.timestamps import rfc3339
from egain_token_operator.decisions.tokenspec import RolloutTarget, WorkloadKind
from egain_token_operator.kube.api import KubeError
from tests.unit.clock import Clock
from tests.unit.fakes import FakeKube

NOW = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def test_first_restart_waits_only_for_the_coalescing_window() -> None:
    assert restart_time(NOW, None, MINUTE) == NOW + COALESCE_WINDOW


def test_restarts_are_spaced_by_the_minimum_interval() -> None:
    last = NOW - timedelta(seconds=10)
    assert restart_time(NOW, last, MINUTE) == last + MINUTE


def test_an_old_restart_does_not_delay_the_next() -> None:
    assert restart_time(NOW, NOW - timedelta(hours=1), MINUTE) == NOW + COALESCE_WINDOW


# --- the restarter, over an in-memory API server and an injected clock --------

WEB = RolloutTarget(WorkloadKind.DEPLOYMENT, "web")
API = RolloutTarget(WorkloadKind.STATEFUL_SET, "api")


class Sleeper:
    """The restarter's sleep: records each wait, holds it until `release`, then
    moves the clock to its end (if not there yet). `during` runs as a wait begins."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.waits: list[float] = []
        self.gate = asyncio.Event()
        self.during: Callable[[], None] = lambda: None

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        until = self.clock.now + timedelta(seconds=seconds)
        self.during()
        await self.gate.wait()
        self.clock.now = max(self.clock.now, until)

    def release(self) -> None:
        self.gate.set()


def workload(restarted_at: datetime | None = None) -> dict[str, Any]:
    annotations = {} if restarted_at is None else {RESTARTED_AT_ANNOTATION: rfc3339(restarted_at)}
    return {"spec": {"template": {"metadata": {"annotations": annotations}}}}


def restarted_at(kube: FakeKube, target: RolloutTarget) -> str | None:
    """The restart annotation `target` carries, as the API server holds it."""
    body = kube.workloads[("apps", target.kind, target.name)]
    annotations: dict[str, str] = body["spec"]["template"]["metadata"]["annotations"]
    return annotations.get(RESTARTED_AT_ANNOTATION)


def restarter(kube: FakeKube, clock: Clock, sleeper: Sleeper, **options: Any) -> RolloutRestarter:
    return RolloutRestarter(kube, MINUTE, clock=clock, sleep=sleeper, **options)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_requests_within_the_window_become_one_restart_and_a_later_one_its_own() -> None:
    kube, clock = FakeKube(), Clock(NOW)
    kube.workloads[("apps", WEB.kind, WEB.name)] = workload()
    kube.workloads[("apps", API.kind, API.name)] = workload()
    sleeper = Sleeper(clock)

    async def scenario() -> None:
        restarts = restarter(kube, clock, sleeper)
        restarts.request("apps", [WEB], clock.now)
        await settle()
        assert sleeper.waits == [COALESCE_WINDOW.total_seconds()]
        clock.now += timedelta(seconds=1)
        restarts.request("apps", [WEB, API], clock.now)  # WEB is pending already
        restarts.request("apps", [WEB], clock.now)
        await settle()
        assert sleeper.waits == [2.0, 2.0], "a pending restart was scheduled again"
        sleeper.release()
        await settle()
        assert kube.version == 2, "not one write per workload"
        assert restarted_at(kube, WEB) == rfc3339(NOW + COALESCE_WINDOW)
        assert restarted_at(kube, API) == rfc3339(NOW + timedelta(seconds=3))
        # Asked again once restarted: a restart of its own, not lost.
        restarts.request("apps", [WEB], clock.now)
        await settle()
        assert len(sleeper.waits) == 3
        assert kube.version == 3

    asyncio.run(scenario())


def test_a_workload_is_not_restarted_before_the_minimum_interval_even_by_a_new_process() -> None:
    kube, clock = FakeKube(), Clock(NOW)
    last = NOW - timedelta(seconds=10)
    kube.workloads[("apps", WEB.kind, WEB.name)] = workload(restarted_at=last)

    async def scenario() -> None:
        # A restarter that never restarted it: the annotation alone holds it back.
        sleeper = Sleeper(clock)
        restarts = restarter(kube, clock, sleeper)
        restarts.request("apps", [WEB], clock.now)
        await settle()
        assert sleeper.waits == [(last + MINUTE - NOW).total_seconds()]
        assert restarted_at(kube, WEB) == rfc3339(last), "restarted before the interval"
        sleeper.release()
        await settle()
        assert restarted_at(kube, WEB) == rfc3339(last + MINUTE)
        # Asked again at once, by another process: it waits a whole interval.
        again = Sleeper(clock)
        restarter(kube, clock, again).request("apps", [WEB], clock.now)
        await settle()
        assert again.waits == [MINUTE.total_seconds()]
        again.release()
        await settle()
        assert restarted_at(kube, WEB) == rfc3339(last + 2 * MINUTE)

    asyncio.run(scenario())


def test_a_missing_workload_or_a_failed_patch_is_logged_and_the_next_request_tries_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kube, clock = FakeKube(), Clock(NOW)
    sleeper = Sleeper(clock)
    sleeper.release()

    async def scenario() -> None:
        restarts = restarter(kube, clock, sleeper)
        restarts.request("apps", [WEB], clock.now)
        await settle()
        assert sleeper.waits == [] and kube.version == 0
        kube.workloads[("apps", WEB.kind, WEB.name)] = workload()
        sleeper.during = lambda: setattr(kube, "failure", KubeError(403, "patch is forbidden"))
        restarts.request("apps", [WEB], clock.now)
        await settle()
        assert restarted_at(kube, WEB) is None
        kube.failure = None
        sleeper.during = lambda: None
        restarts.request("apps", [WEB], clock.now)
        await settle()
        assert restarted_at(kube, WEB) == rfc3339(clock.now)

    with caplog.at_level(logging.WARNING, logger="egain_token_operator.controller.restarts"):
        asyncio.run(scenario())
    assert [r.getMessage() for r in caplog.records] == [
        "rollout restart: Deployment apps/web not found",
        "rollout restart: Deployment apps/web failed: HTTP 403: patch is forbidden",
    ]


def test_disabled_restarts_only_say_so_and_stop_cancels_pending_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kube, clock = FakeKube(), Clock(NOW)
    kube.workloads[("apps", WEB.kind, WEB.name)] = workload()
    sleeper = Sleeper(clock)

    async def scenario() -> None:
        restarter(kube, clock, sleeper, enabled=False).request("apps", [WEB], clock.now)
        await settle()
        assert kube.requests == 0
        restarts = restarter(kube, clock, sleeper)
        restarts.request("apps", [WEB], clock.now)
        await settle()
        await restarts.stop()
        sleeper.release()
        await settle()
        assert restarted_at(kube, WEB) is None

    with caplog.at_level(logging.WARNING, logger="egain_token_operator.controller.restarts"):
        asyncio.run(scenario())
    assert caplog.records[0].getMessage() == (
        "rollout restarts are disabled (--rollout-restarts=false); "
        "not restarting Deployment apps/web"
    )
