"""A client's request budget in memory: a minute's window, a line by urgency."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from egain_token_operator.controller.budgets import ClientBudgets
from egain_token_operator.decisions.clients import ClientKey, ClientKind
from tests.unit.controller.support import START

CLIENT = ClientKey(ClientKind.CLUSTER_EGAIN_CLIENT, "", "portal")
SOON = START + timedelta(minutes=5)


class Woken:
    def __init__(self) -> None:
        self.who: list[str] = []

    def __call__(self, name: str) -> Callable[[], None]:
        return lambda: self.who.append(name)


def test_a_minute_holds_at_most_the_limit_and_says_when_the_next_fits() -> None:
    budgets, woken = ClientBudgets(), Woken()
    assert budgets.acquire(CLIENT, 2, ("a", "1"), SOON, woken("1"), START) is None
    later = START + timedelta(seconds=10)
    assert budgets.acquire(CLIENT, 2, ("a", "2"), SOON, woken("2"), later) is None
    turn = budgets.acquire(CLIENT, 2, ("a", "3"), SOON, woken("3"), later)
    assert turn == START + timedelta(minutes=1)
    assert budgets.acquire(CLIENT, 2, ("a", "3"), SOON, woken("3"), turn) is None
    # Unlimited: never held.
    assert budgets.acquire(CLIENT, None, ("a", "4"), SOON, woken("4"), turn) is None


def test_the_most_urgent_waiting_goes_first_and_is_woken_when_room_comes() -> None:
    budgets, woken = ClientBudgets(), Woken()
    assert budgets.acquire(CLIENT, 1, ("a", "sent"), SOON, woken("sent"), START) is None
    assert budgets.acquire(CLIENT, 1, ("a", "later"), SOON, woken("later"), START) is not None
    # No valid token at all: ahead of any expiry.
    assert budgets.acquire(CLIENT, 1, ("a", "expired"), None, woken("expired"), START)
    free = START + timedelta(minutes=1)
    # Room, but a more urgent one waits: "later" is held, and tries again soon.
    assert budgets.acquire(CLIENT, 1, ("a", "later"), SOON, woken("later"), free) == free + (
        timedelta(seconds=1)
    )
    assert budgets.acquire(CLIENT, 1, ("a", "expired"), None, woken("expired"), free) is None
    # Once the one ahead gives up its turn (a shared token came), the next is woken.
    budgets = ClientBudgets()
    budgets.acquire(CLIENT, 1, ("a", "sent"), SOON, woken("sent"), START)
    budgets.acquire(CLIENT, 1, ("a", "first"), START, woken("first"), START)
    budgets.acquire(CLIENT, 1, ("a", "second"), SOON, woken("second"), START)
    budgets.withdraw(("a", "first"), free)
    assert woken.who == ["second"]


def test_a_budget_lifted_lets_its_line_go_and_unused_budgets_are_dropped() -> None:
    budgets, woken = ClientBudgets(), Woken()
    budgets.acquire(CLIENT, 1, ("a", "sent"), SOON, woken("sent"), START)
    budgets.acquire(CLIENT, 1, ("a", "held"), SOON, woken("held"), START)
    assert budgets.acquire(CLIENT, None, ("a", "other"), SOON, woken("other"), START) is None
    assert woken.who == ["held"]
    other = ClientKey(ClientKind.EGAIN_CLIENT, "team-a", "portal")
    budgets.acquire(other, 1, ("a", "x"), SOON, woken("x"), START)
    budgets.acquire(other, 1, ("a", "y"), SOON, woken("y"), START + timedelta(minutes=2))
    assert list(budgets._budgets) == [other]  # memory follows the clients in use
