"""Who gets the next slot: round-robin among namespaces, none past its share."""

import pytest

from egain_token_operator.decisions.slots import SlotQueue, share_of

GONE: set[str] = set()


def waiting(waiter: str) -> bool:
    return waiter not in GONE


def queued(total: int, share: int, *arrivals: tuple[str, str]) -> SlotQueue[str]:
    queue: SlotQueue[str] = SlotQueue(total, share)
    for namespace, waiter in arrivals:
        queue.arrive(namespace, waiter)
    return queue


@pytest.mark.parametrize(
    ("total", "share"), [(1, 1), (2, 1), (4, 3), (8, 7), (16, 14), (64, 56), (100, 88)]
)
def test_a_share_leaves_an_eighth_and_at_least_one_slot_to_the_others(
    total: int, share: int
) -> None:
    assert share_of(total) == share


def test_a_lone_namespace_gets_its_share_at_once_and_no_more() -> None:
    queue = queued(16, 14, *(("a", f"a{i}") for i in range(20)))
    assert queue.grants(waiting) == [f"a{i}" for i in range(14)]
    assert (queue.in_use, queue.held("a"), queue.waiters("a")) == (14, 14, 6)
    assert queue.grants(waiting) == []


def test_another_namespace_gets_a_slot_the_first_cannot_take() -> None:
    queue = queued(16, 14, *(("a", f"a{i}") for i in range(20)))
    queue.grants(waiting)
    queue.arrive("b", "b0")
    assert queue.grants(waiting) == ["b0"]


def test_freed_slots_go_round_robin_by_namespace_not_first_come() -> None:
    queue = queued(3, 2, ("a", "a0"), ("a", "a1"), ("a", "a2"), ("a", "a3"))
    assert queue.grants(waiting) == ["a0", "a1"]
    for waiter in ("b0", "b1", "b2"):
        queue.arrive("b", waiter)
    queue.arrive("c", "c0")
    assert queue.grants(waiting) == ["b0"]  # a holds its share; the third slot
    order = []
    for namespace in ("a", "a", "b"):  # a0, a1, b0 end, one at a time
        queue.release(namespace)
        order += queue.grants(waiting)
    # Though a2 and a3 came first: c, whose turn had not come yet, then a, then b.
    assert order == ["c0", "a2", "b1"]


def test_waiters_that_stopped_waiting_are_passed_over() -> None:
    queue = queued(2, 1, ("a", "a0"), ("a", "gone-a1"), ("a", "a2"), ("b", "gone-b0"))
    GONE.update({"gone-a1", "gone-b0"})
    try:
        assert queue.grants(waiting) == ["a0"]
        assert queue.waiters("b") == 0  # dropped, no slot taken
        queue.release("a")
        assert queue.grants(waiting) == ["a2"]
        assert (queue.in_use, queue.waiters("a")) == (1, 0)
    finally:
        GONE.clear()


def test_released_slots_are_forgotten_per_namespace() -> None:
    queue = queued(2, 1, ("a", "a0"))
    queue.grants(waiting)
    queue.release("a")
    assert (queue.in_use, queue.held("a")) == (0, 0)
    with pytest.raises(ValueError, match="a holds no slot"):
        queue.release("a")


def test_a_share_must_fit_the_total() -> None:
    with pytest.raises(ValueError, match="a share of 0 of 4 slots"):
        SlotQueue[str](4, 0)
