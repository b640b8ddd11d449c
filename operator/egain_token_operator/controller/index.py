"""Which EgainTokens depend on what, both ways: the worker registry's indexes.

A watch event about a Secret, a client or a namespace wakes exactly the
EgainTokens that depend on it, found here rather than by going through every
worker.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

Target = TypeVar("Target", bound=Hashable)
User = TypeVar("User", bound=Hashable)


class Index(Generic[Target, User]):
    """Which users depend on which targets, both ways, so that both an event
    about a target and a change of a user cost only what they touch."""

    def __init__(self) -> None:
        self._users: dict[Target, set[User]] = {}
        self._targets: dict[User, frozenset[Target]] = {}

    def set(self, user: User, targets: Iterable[Target]) -> frozenset[Target]:
        """Make `user` depend on `targets` only; return the targets gained or lost."""
        new, old = frozenset(targets), self._targets.get(user, frozenset())
        for target in old - new:
            users = self._users[target]
            users.discard(user)
            if not users:
                del self._users[target]
        for target in new - old:
            self._users.setdefault(target, set()).add(user)
        if new:
            self._targets[user] = new
        else:
            self._targets.pop(user, None)
        return new ^ old

    def users(self, target: Target) -> frozenset[User]:
        """The users that depend on `target`."""
        return frozenset(self._users.get(target, ()))

    def clear(self) -> None:
        """Forget everything."""
        self._users.clear()
        self._targets.clear()
