"""The worker registry: workers that act only while the replica may, and back off
after a failed look; over in-memory Kubernetes and eGain and an injected clock."""

from __future__ import annotations

import asyncio
import copy
import logging
from datetime import timedelta
from typing import Any

import pytest

from egain_token_operator.controller.workers import WorkerRegistry
from egain_token_operator.kube.api import UnreachableError
from egain_token_operator.kube.leader import LeaderElector, LeaseTiming
from tests.unit.controller.support import (
    BODY,
    controller,
    ready,
    registry,
    settle,
    setup,
)


def test_a_standby_controller_acts_only_while_active() -> None:
    kube, egain, clock = setup()
    standby, _ = controller(kube, egain, clock, active=False)

    async def scenario() -> None:
        standby.observe_token("ADDED", BODY)
        await asyncio.sleep(0)
        assert egain.requests == 0, "a standby replica requested a token"
        await standby.activate()
        await settle()  # let the new worker take its first look
        assert egain.requests == 1
        assert ready(kube) == ("True", "TokenIssued")
        await standby.deactivate()
        await standby.activate()  # leads again: starts afresh from the Secret
        await settle()
        assert egain.requests == 1, "a new leader requested a token the Secret holds"
        await standby.stop()

    asyncio.run(scenario())


def test_a_worker_looks_only_once_the_replica_may_act() -> None:
    # As after a freeze past the Lease's renew deadline: the elector has not
    # yet renewed the Lease (or stood by), so the worker must wait.
    kube, egain, clock = setup()
    may_act = asyncio.Event()

    async def acting() -> None:
        await may_act.wait()

    made = registry(kube, egain, clock, lambda *_: None, acting=acting)

    async def scenario() -> None:
        made.observe_token("ADDED", BODY)
        await settle()
        assert egain.requests == 0, "a worker acted while its replica's hold was not current"
        assert kube.statuses == []
        may_act.set()
        await settle()
        assert egain.requests == 1
        assert ready(kube) == ("True", "TokenIssued")
        await made.stop()

    asyncio.run(scenario())


def test_a_request_resumed_past_the_lease_deadline_is_not_sent() -> None:
    # A replica frozen (SIGSTOP, a paused VM) while a request waits for its slot:
    # the worker passed its gate with the Lease held, and resumes once the renew
    # deadline has passed, when another replica may lead. The request must not
    # leave before this replica holds the Lease again.
    kube, egain, clock = setup()
    slot = asyncio.Event()

    async def wait_for_slot() -> None:
        await slot.wait()

    egain.slot = wait_for_slot
    made: WorkerRegistry

    async def lead() -> None:
        await made.activate()

    async def stand_by() -> None:
        await made.deactivate()

    elector = LeaderElector(
        kube, ("ops", "lease"), "a", on_started=lead, on_stopped=stand_by, clock=clock
    )
    made = registry(
        kube,
        egain,
        clock,
        lambda *_: None,
        active=False,
        acting=elector.acting,
        holds=elector.holds,
    )

    async def scenario() -> None:
        made.observe_token("ADDED", BODY)
        await elector.step()
        await settle()  # past the gate, waiting for a slot
        clock.now += LeaseTiming().renew_deadline  # frozen until the deadline passed
        slot.set()
        await settle()
        assert egain.requests == 0, "a request was sent after the Lease's renew deadline"
        assert kube.statuses == []
        await elector.step()  # its next round: it stands by
        assert not elector.leading
        await elector.step()  # and takes the Lease again: the token is requested afresh
        await settle()
        assert egain.requests == 1
        assert ready(kube) == ("True", "TokenIssued")
        await made.stop()

    asyncio.run(scenario())


def test_a_sleeping_worker_holds_a_timer_not_a_task_and_looks_again_when_it_fires() -> None:
    kube, egain, clock = setup()
    made = registry(kube, egain, clock, lambda *_: None)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        made.observe_token("ADDED", BODY)
        worker = made._workers[("ns", "portal")]
        await settle()
        assert egain.requests == 1
        assert worker.task is None, "an idle worker kept its task"
        assert asyncio.all_tasks() == {asyncio.current_task()}
        timer = worker.timer
        assert timer is not None
        # Refreshed a third of its hour before expiry (the default `refreshBefore`),
        # less a jitter.
        due = timer.when() - loop.time()
        assert 2000 < due <= 2400
        start = loop.time()  # both clocks a second past the wake-up time
        clock.now += timedelta(seconds=due + 1)
        loop.time = lambda: start + due + 1  # type: ignore[method-assign]
        await settle()
        assert worker.timer is not timer, "the timer did not fire"
        assert egain.requests == 2, "the timer did not start a look"
        assert worker.task is None and worker.timer is not None
        timer = worker.timer
        made.observe_token("DELETED", BODY)
        assert timer.cancelled() and worker.timer is None, "a deleted token's timer was left"
        await made.stop()

    asyncio.run(scenario())


def test_an_event_wakes_a_sleeping_worker_and_a_standby_replica_leaves_none_asleep() -> None:
    kube, egain, clock = setup()
    made = registry(kube, egain, clock, lambda *_: None)

    async def scenario() -> None:
        made.observe_token("ADDED", BODY)
        worker = made._workers[("ns", "portal")]
        await settle()
        changed: dict[str, Any] = copy.deepcopy(BODY)
        changed["metadata"]["annotations"] = {"egain.cloud/refresh-requested-at": "now"}
        made.observe_token("MODIFIED", changed)
        assert worker.task is not None, "the event did not start the sleeping worker"
        await settle()
        assert worker.task is None
        timer = worker.timer
        assert timer is not None
        await made.deactivate()
        assert timer.cancelled() and worker.timer is None
        worker.wake.set()  # a late event, or a shared token landing
        assert worker.task is None, "a standby replica started a worker"

    asyncio.run(scenario())


def test_a_worker_woken_as_its_replica_stands_by_still_ends() -> None:
    # A watch event wakes a worker in the same loop iteration as the elector
    # cancels it (standing by): the worker must end, or standing by never
    # finishes and the replica never competes for the Lease again. (Python
    # 3.11's asyncio.wait_for swallows such a cancellation.)
    kube, egain, clock = setup()
    made = registry(kube, egain, clock, lambda *_: None)

    async def scenario() -> None:
        made.observe_token("ADDED", BODY)
        await settle()  # its first look; then it waits for its refresh time
        assert egain.requests == 1
        changed: dict[str, Any] = copy.deepcopy(BODY)
        changed["metadata"]["generation"] = 2
        made.observe_token("MODIFIED", changed)  # wakes the worker
        async with asyncio.timeout(5):
            await made.deactivate()

    asyncio.run(scenario())


def test_failed_looks_back_off_from_2s_doubling_to_20s_and_afresh_after_a_look_that_worked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kube, egain, clock = setup()
    kube.failure = UnreachableError("API server unreachable")
    made = registry(kube, egain, clock, lambda *_: None)
    waits: list[float] = []

    async def failed_look() -> None:
        """Wait for the next failed look to be logged; keep the wait it announced."""
        for _ in range(50):
            await asyncio.sleep(0)
            logged = [r for r in caplog.records if "retrying in" in r.getMessage()]
            if len(logged) > len(waits):
                (record,) = logged[len(waits) :]
                assert isinstance(record.args, tuple) and isinstance(record.args[-1], float)
                waits.append(record.args[-1])
                return
        raise AssertionError("no failed look was logged")

    async def scenario() -> None:
        made.observe_token("ADDED", BODY)
        worker = made._workers[("ns", "portal")]
        for _ in range(7):
            await failed_look()
            worker.wake.set()  # look again now, not at the end of the wait
        assert waits == [2.0, 4.0, 8.0, 16.0, 20.0, 20.0, 20.0]
        kube.failure = None  # the look woken last works
        for _ in range(50):
            await asyncio.sleep(0)
        assert egain.requests == 1 and ready(kube) == ("True", "TokenIssued")
        kube.failure = UnreachableError("API server unreachable")
        worker.wake.set()
        await failed_look()
        assert waits[7:] == [2.0], "the backoff did not start afresh after a look that worked"
        await made.stop()

    with caplog.at_level(logging.WARNING, logger="egain_token_operator.controller.workers"):
        asyncio.run(scenario())
    assert all("Kubernetes API call failed" in r.getMessage() for r in caplog.records)
