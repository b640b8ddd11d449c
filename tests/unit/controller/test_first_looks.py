"""The first looks after a start: complete once every EgainToken was listed and looked at."""

from __future__ import annotations

import asyncio
import copy
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from egain_token_operator.controller.workers import FIRST_LOOKS_DONE, FirstLooks, WorkerRegistry
from tests.unit.clock import Clock
from tests.unit.controller.support import BODY, controller, setup

START = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)


def test_complete_once_listed_and_every_started_worker_looked() -> None:
    clock = Clock(START)
    looks = FirstLooks(clock)
    looks.begin()
    looks.started(("ns", "a"))
    looks.started(("ns", "b"))
    clock.now += timedelta(seconds=1)
    assert looks.looked(("ns", "a")) is None
    assert looks.listed() is None, "complete while a token was not looked at"
    looks.started(("ns", "c"))  # created meanwhile: one of every token too
    assert looks.looked(("ns", "b")) is None
    clock.now += timedelta(seconds=2)
    assert looks.gone(("ns", "c")) == 3.0
    assert looks.looked_at == 2
    assert looks.looked(("ns", "a")) is None, "said twice"


def test_not_complete_before_the_tokens_were_listed() -> None:
    looks = FirstLooks(Clock(START))
    looks.begin()
    looks.started(("ns", "a"))
    assert looks.looked(("ns", "a")) is None
    assert looks.listed() == 0.0


def test_none_to_look_at_is_complete_when_listed() -> None:
    looks = FirstLooks(Clock(START))
    looks.begin()
    assert looks.listed() == 0.0


def test_a_standby_counts_nothing_and_a_new_leader_counts_afresh() -> None:
    clock = Clock(START)
    looks = FirstLooks(clock)
    assert looks.listed() is None, "a replica that never acted said it"
    looks.started(("ns", "a"))
    assert looks.looked(("ns", "a")) is None
    clock.now += timedelta(seconds=10)
    looks.begin()  # leads
    looks.started(("ns", "a"))
    clock.now += timedelta(seconds=1)
    looks.end()  # stands by again before the look
    assert looks.looked(("ns", "a")) is None
    looks.begin()
    looks.started(("ns", "a"))
    assert looks.looked(("ns", "a")) == 0.0


def test_the_registry_says_it_once_after_a_restart_that_writes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kube, egain, clock = setup()
    first, _ = controller(kube, egain, clock)

    async def run(registry: WorkerRegistry, bodies: list[dict[str, Any]]) -> None:
        for body in bodies:
            registry.observe_token("ADDED", body)
        registry.tokens_listed()
        for _ in range(50):  # let the workers take their first look
            await asyncio.sleep(0)
        await registry.stop()

    bodies = [token(name) for name in ("portal", "docs")]
    kube.tokens = {("ns", b["metadata"]["name"]): copy.deepcopy(b) for b in bodies}
    asyncio.run(run(first, bodies))
    assert len(kube.held) == 2
    issued, written = egain.requests, len(kube.statuses)

    second, _ = controller(kube, egain, clock)
    restarted = [{**b, "status": kube.held[("ns", b["metadata"]["name"])]} for b in bodies]
    with caplog.at_level(logging.INFO, logger="egain_token_operator.controller.workers"):
        asyncio.run(run(second, restarted))
    said = [r.getMessage() for r in caplog.records if FIRST_LOOKS_DONE in r.getMessage()]
    assert said == [f"{FIRST_LOOKS_DONE} (2 looked at, 0.0s after this replica started acting)"]
    assert (egain.requests, len(kube.statuses)) == (issued, written)


def token(name: str) -> dict[str, Any]:
    """An EgainToken like `BODY`, named `name`."""
    return {**BODY, "metadata": {"namespace": "ns", "name": name, "uid": name, "generation": 1}}
