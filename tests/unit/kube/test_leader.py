"""Leader election over a Lease, with an in-memory API and injected clocks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from egain_token_operator.kube.api import UnreachableError
from egain_token_operator.kube.leader import Attempt, LeaderElector, LeaseTiming
from tests.unit.clock import Clock
from tests.unit.fakes import FakeKube

START = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
LEASE = ("ops", "egain-token-operator")
TIMING = LeaseTiming()


DOWN = UnreachableError("API server unreachable")


def lease(kube: FakeKube) -> dict[str, Any] | None:
    """The Lease as the API server holds it."""
    return kube.leases.get(LEASE)


def holder(kube: FakeKube) -> str | None:
    """Who holds the Lease."""
    held = lease(kube)
    assert held is not None
    name = held["spec"]["holderIdentity"]
    return str(name) if name else None


class Replica:
    """An elector with its own clock, recording when it starts and stops leading."""

    def __init__(self, leases: FakeKube, identity: str) -> None:
        self.clock = Clock(START)
        self.calls: list[str] = []
        self.elector = LeaderElector(
            leases,
            LEASE,
            identity,
            on_started=self._started,
            on_stopped=self._stopped,
            clock=self.clock,
        )

    async def _started(self) -> None:
        self.calls.append("started")

    async def _stopped(self) -> None:
        self.calls.append("stopped")

    def step(self, after: timedelta = timedelta()) -> None:
        self.clock.now += after
        asyncio.run(self.elector.step())


def test_the_first_replica_creates_and_holds_the_lease() -> None:
    leases = FakeKube()
    a = Replica(leases, "a")
    a.step()
    assert a.elector.leading
    assert a.calls == ["started"]
    assert holder(leases) == "a"
    assert lease(leases) is not None
    spec = leases.leases[LEASE]["spec"]
    assert spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0
    assert spec["acquireTime"] == spec["renewTime"] == "2026-11-24T02:00:00.000000Z"
    requests = leases.requests
    a.step(TIMING.retry_period)
    assert leases.requests == requests + 1, "a renewal took more than one request"
    assert a.calls == ["started"], "a renewal started leading again"
    assert leases.leases[LEASE]["spec"]["renewTime"] == "2026-11-24T02:00:02.000000Z"
    assert leases.leases[LEASE]["spec"]["acquireTime"] == "2026-11-24T02:00:00.000000Z"


def test_a_standby_waits_while_the_leader_renews() -> None:
    leases = FakeKube()
    a, b = Replica(leases, "a"), Replica(leases, "b")
    a.step()
    for _ in range(20):
        b.step(TIMING.retry_period)
        a.step(TIMING.retry_period)
    assert not b.elector.leading
    assert b.calls == []
    assert holder(leases) == "a"


def test_a_standby_takes_over_a_lease_nobody_renewed_for_its_duration() -> None:
    leases = FakeKube()
    a, b = Replica(leases, "a"), Replica(leases, "b")
    a.step()
    b.step()  # b sees the Lease change now, on its own clock
    b.step(TIMING.duration - timedelta(seconds=1))
    assert not b.elector.leading
    assert asyncio.run(b.elector.attempt()) is Attempt.TAKEN
    b.step(timedelta(seconds=1))
    assert b.elector.leading
    assert holder(leases) == "b"
    assert lease(leases) is not None
    assert leases.leases[LEASE]["spec"]["leaseTransitions"] == 1


def test_a_leader_cut_off_steps_down_before_anyone_may_take_over() -> None:
    leases = FakeKube()
    a = Replica(leases, "a")
    a.step()
    leases.failure = DOWN
    a.step(TIMING.renew_deadline - timedelta(seconds=1))
    assert a.elector.leading, "stepped down before the renew deadline"
    a.step(timedelta(seconds=1))
    assert not a.elector.leading
    assert a.calls == ["started", "stopped"]
    assert TIMING.renew_deadline < TIMING.duration


def test_a_leader_frozen_past_the_renew_deadline_may_not_act_until_it_holds_the_lease_again() -> (
    None
):
    leases = FakeKube()
    a = Replica(leases, "a")
    assert not a.elector.holds()
    a.step()
    assert a.elector.holds()
    # Frozen (SIGSTOP) for the renew deadline: it still says it leads, since
    # it has not yet had its next round, but it may no longer act.
    a.clock.now += TIMING.renew_deadline
    assert a.elector.leading
    assert not a.elector.holds()

    async def resumed() -> list[bool]:
        acting = asyncio.create_task(a.elector.acting())
        await asyncio.sleep(0)
        waited = [not acting.done()]
        await a.elector.step()  # past the deadline: it stands by
        await asyncio.sleep(0)
        waited.append(not acting.done())
        await a.elector.step()  # nobody took over: it leads again
        await asyncio.wait_for(acting, 1)
        return waited

    assert asyncio.run(resumed()) == [True, True], "acted without a current hold on the Lease"
    assert a.elector.holds()
    assert a.calls == ["started", "stopped", "started"]


def test_a_leader_that_finds_another_holder_steps_down_at_once() -> None:
    leases = FakeKube()
    a, b = Replica(leases, "a"), Replica(leases, "b")
    a.step()
    b.step()
    b.step(TIMING.duration)  # a seemed gone to b (say, a long pause of a)
    assert b.elector.leading
    a.step(TIMING.retry_period)
    assert not a.elector.leading
    assert a.calls == ["started", "stopped"]


def test_a_released_lease_is_taken_at_the_next_try() -> None:
    leases = FakeKube()
    a, b = Replica(leases, "a"), Replica(leases, "b")
    a.step()
    b.step()
    asyncio.run(a.elector.release())
    assert a.calls == ["started", "stopped"]
    assert holder(leases) is None
    b.step(TIMING.retry_period)
    assert b.elector.leading
    assert holder(leases) == "b"


def test_an_unreachable_api_server_never_makes_a_leader_and_is_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    leases = FakeKube()
    leases.failure = DOWN
    a = Replica(leases, "a")
    for _ in range(10):
        a.step(TIMING.retry_period)
    assert a.calls == []
    assert lease(leases) is None
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["Lease ops/egain-token-operator: API server unreachable"]
    leases.failure = None
    a.step(TIMING.retry_period)
    leases.failure = DOWN
    for _ in range(6):
        a.step(TIMING.retry_period)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 3, warnings  # unreachable again, then the Lease lost
    assert warnings[2].startswith("Standing by: lost Lease")
