"""FairSlots: waiting for a namespace's slot, and giving it back whatever happens."""

import asyncio

import pytest

from egain_token_operator.egain.slots import FairSlots


async def settle() -> None:
    """Let every task that can run, run."""
    for _ in range(10):
        await asyncio.sleep(0)


def holder(slots: FairSlots, namespace: str, gate: asyncio.Event) -> asyncio.Task[None]:
    async def hold() -> None:
        async with slots.hold(namespace):
            await gate.wait()

    return asyncio.create_task(hold())


def test_a_namespace_holds_its_share_and_leaves_the_rest_to_others() -> None:
    async def go() -> None:
        slots, gate = FairSlots(4), asyncio.Event()
        hog = [holder(slots, "hog", gate) for _ in range(10)]
        await settle()
        assert (slots.held("hog"), slots.in_use) == (3, 3)
        neighbour = holder(slots, "neighbour", gate)
        await settle()
        assert slots.held("neighbour") == 1
        gate.set()
        await asyncio.gather(*hog, neighbour)
        assert slots.in_use == 0

    asyncio.run(go())


def test_a_waiter_cancelled_before_its_turn_leaks_nothing() -> None:
    async def go() -> None:
        slots, gate = FairSlots(1), asyncio.Event()
        first = holder(slots, "a", gate)
        await settle()
        waiting = holder(slots, "b", gate)
        await settle()
        waiting.cancel()
        await settle()
        after = holder(slots, "c", gate)
        gate.set()
        await asyncio.gather(first, after)
        assert waiting.cancelled()
        assert (slots.in_use, slots._queue.waiters("b")) == (0, 0)

    asyncio.run(go())


def test_a_waiter_cancelled_after_its_turn_came_gives_the_slot_back() -> None:
    async def go() -> None:
        slots, gate = FairSlots(1), asyncio.Event()
        release = asyncio.Event()
        first = holder(slots, "a", release)
        await settle()
        granted_then_cancelled = holder(slots, "b", gate)
        await settle()
        # The slot is handed over as the first ends; the waiter is cancelled
        # before it could resume to take it.
        release.set()
        await asyncio.sleep(0)  # the first ends and hands over the slot
        assert slots.held("b") == 1
        granted_then_cancelled.cancel()
        await settle()
        assert granted_then_cancelled.cancelled()
        assert slots.in_use == 0
        after = holder(slots, "c", gate)
        gate.set()
        await asyncio.gather(first, after)

    asyncio.run(go())


def test_a_holder_that_fails_gives_its_slot_back() -> None:
    async def go() -> None:
        slots = FairSlots(1)
        with pytest.raises(RuntimeError):
            async with slots.hold("a"):
                raise RuntimeError("the look failed")
        assert slots.in_use == 0

    asyncio.run(go())
