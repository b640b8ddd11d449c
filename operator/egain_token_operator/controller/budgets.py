"""The request budgets of the clients (`spec.requestsPerMinute`), in memory.

A client with a budget lets at most that many token requests be sent with it
in any minute, by this operator process (another replica, or this one after a
restart, starts afresh). A request that does not fit waits; among those
waiting, the most urgent goes first: the EgainToken with no valid token, then
the one whose token expires soonest, so that nothing expires that the budget
could have refreshed in time. Joining a shared request in flight sends
nothing and costs nothing.

The waiting EgainTokens are known by their look: a look that wants a request
`acquire`s (and waits if refused), a look that wants none `withdraw`s, an
EgainToken that goes `leave`s. A budget whose minute is empty and that has no
one waiting is dropped, so memory follows the clients in use.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from egain_token_operator.decisions.clients import ClientKey

# An EgainToken: (namespace, name).
Member = tuple[str, str]
Wake = Callable[[], None]

WINDOW = timedelta(minutes=1)
# How soon a member refused only because a more urgent one waits looks again,
# should that one not take its turn (its look failed): it is woken sooner when
# that one takes or gives up its turn.
_BEHIND_RETRY = timedelta(seconds=1)


@dataclass
class _Budget:
    """One client's requests of the last minute, and who waits for one."""

    # The client's `requestsPerMinute`, as the last request for it read it.
    limit: int
    sent: deque[datetime] = field(default_factory=deque)
    # A member waiting -> (its urgency, how to wake it).
    waiting: dict[Member, tuple[datetime | None, Wake]] = field(default_factory=dict)

    def forget_before(self, start: datetime) -> None:
        while self.sent and self.sent[0] <= start:
            self.sent.popleft()


def _order(member: Member, urgency: datetime | None) -> tuple[bool, datetime | None, Member]:
    """Sorts the most urgent first: no valid token (None), then the earliest expiry."""
    return (urgency is not None, urgency, member)


class ClientBudgets:
    """The request budget of each client in use."""

    def __init__(self) -> None:
        self._budgets: dict[ClientKey, _Budget] = {}
        self._waiting_for: dict[Member, ClientKey] = {}

    def acquire(
        self,
        client: ClientKey,
        limit: int | None,
        member: Member,
        urgency: datetime | None,
        wake: Wake,
        now: datetime,
    ) -> datetime | None:
        """Take one request of `client`'s budget (`limit` a minute; None:
        unlimited) for `member` at `now`. None when taken: the request is sent
        now. Otherwise `member` waits, and this is when to try again; `urgency`
        is when its token expires (None: it has no valid token), `wake` is
        called when its turn may have come sooner."""
        self._leave_line(member)
        self._drop_unused(now)
        if limit is None:
            self._lift(client)
            return None
        budget = self._budgets.setdefault(client, _Budget(limit))
        budget.limit = limit
        budget.forget_before(now - WINDOW)
        mine = _order(member, urgency)
        ahead = any(_order(other, u) < mine for other, (u, _) in budget.waiting.items())
        if len(budget.sent) < limit and not ahead:
            budget.sent.append(now)
            self._wake_next(budget)
            return None
        budget.waiting[member] = (urgency, wake)
        self._waiting_for[member] = client
        if len(budget.sent) >= limit:
            return budget.sent[len(budget.sent) - limit] + WINDOW
        return now + _BEHIND_RETRY

    def withdraw(self, member: Member, now: datetime) -> None:
        """`member` no longer waits (its look wants no request, it joined one in
        flight, or it is gone): at `now`, the next in line is woken if the
        budget has room."""
        client = self._leave_line(member)
        budget = self._budgets.get(client) if client is not None else None
        if client is None or budget is None:
            return
        budget.forget_before(now - WINDOW)
        self._wake_next(budget)

    def clear(self) -> None:
        """Forget every budget and everyone waiting (this replica stops acting)."""
        self._budgets.clear()
        self._waiting_for.clear()

    def _lift(self, client: ClientKey) -> None:
        """`client` has no budget (any more): whoever waited for it goes at once."""
        budget = self._budgets.pop(client, None)
        for member, (_, wake) in (budget.waiting if budget is not None else {}).items():
            self._waiting_for.pop(member, None)
            wake()

    def _drop_unused(self, now: datetime) -> None:
        """Drop the budgets with nothing sent in the last minute and no one waiting
        (a client deleted, or no longer used)."""
        for client, budget in list(self._budgets.items()):
            budget.forget_before(now - WINDOW)
            if not budget.sent and not budget.waiting:
                del self._budgets[client]

    def _leave_line(self, member: Member) -> ClientKey | None:
        """Take `member` out of the line it waits in; the client it waited for."""
        client = self._waiting_for.pop(member, None)
        budget = self._budgets.get(client) if client is not None else None
        if budget is not None:
            budget.waiting.pop(member, None)
        return client

    @staticmethod
    def _wake_next(budget: _Budget) -> None:
        """With room in the budget, wake the most urgent member waiting."""
        if len(budget.sent) < budget.limit and budget.waiting:
            _, (_, wake) = min(budget.waiting.items(), key=lambda item: _order(item[0], item[1][0]))
            wake()
