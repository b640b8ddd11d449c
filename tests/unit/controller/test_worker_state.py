"""What a worker keeps of its EgainToken, and what wakes it."""

from __future__ import annotations

import asyncio

import pytest

from egain_token_operator.controller.observe import TokenWorker, Wake

BODY = {
    "apiVersion": "egain.cloud/v1alpha1",
    "kind": "EgainToken",
    "metadata": {"namespace": "ns", "name": "portal", "uid": "u-1", "generation": 2},
    "spec": {"scopes": ["s"]},
    "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]},
}


def test_the_status_is_kept_apart_and_read_back_whole() -> None:
    worker = TokenWorker(("ns", "portal"), BODY)
    assert "status" not in worker.manifest
    assert worker.status == BODY["status"]
    assert worker.body == BODY
    assert (worker.uid, worker.generation) == ("u-1", 2)
    worker.status = {"observedGeneration": 2}
    assert worker.body == {**BODY, "status": {"observedGeneration": 2}}
    worker.body = {k: v for k, v in BODY.items() if k != "status"}  # a token not yet looked at
    assert worker.status == {} and "status" not in worker.body


def test_a_wake_set_before_the_wait_returns_at_once_until_cleared() -> None:
    async def go() -> None:
        wake = Wake()
        wake.set()
        await asyncio.wait_for(wake.wait(), 1)
        assert wake.is_set()
        wake.clear()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(wake.wait(), 0.01)

    asyncio.run(go())


def test_a_wake_set_while_waiting_ends_the_wait_and_a_cancelled_wait_can_wait_again() -> None:
    async def go() -> None:
        wake = Wake()
        waiting = asyncio.get_running_loop().create_task(wake.wait())
        await asyncio.sleep(0)
        assert not waiting.done()
        wake.set()
        await asyncio.wait_for(waiting, 1)
        wake.clear()
        cancelled = asyncio.get_running_loop().create_task(wake.wait())
        await asyncio.sleep(0)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        again = asyncio.get_running_loop().create_task(wake.wait())
        await asyncio.sleep(0)
        wake.set()
        await asyncio.wait_for(again, 1)

    asyncio.run(go())
