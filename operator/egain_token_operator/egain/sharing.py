"""One upstream token for identical requests.

EgainTokens whose token requests have the same `TokenRequest.sharing_key` (the
same URL, client id and secret, set of scopes), in one namespace or several,
form a group. For each group this holds, in memory only:

- the request in flight, if any: a member that must request a token while
  one is under way awaits it instead of sending its own, so at most one
  request is in flight per group;
- the latest token a request of the group obtained, which `policy.plan`
  lets every other member adopt without a request of its own;
- the members, so that each is woken when a new token lands.

Only tokens this process obtained from eGain are held, never tokens read
back from Secrets: a Secret can be written by whoever may write Secrets in
its namespace, and what it holds must not reach other namespaces. A group
that no EgainToken uses any more, and that has no request in flight, is
dropped, so memory follows the EgainTokens served. Nothing here decides
when to request; `policy.plan` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from egain_token_operator.decisions.schedule import StoredToken

# An EgainToken: (namespace, name).
Member = tuple[str, str]
Wake = Callable[[], None]


@dataclass
class _Group:
    """The EgainTokens whose requests are identical, and their shared token."""

    members: dict[Member, Wake] = field(default_factory=dict)
    latest: StoredToken | None = None
    flight: asyncio.Task[StoredToken] | None = None
    # The members awaiting `flight`: they get its token as it lands, so waking
    # them for it would only cost another look.
    awaiting: set[Member] = field(default_factory=set)


class SharedTokens:
    """The groups of EgainTokens whose requests are identical."""

    def __init__(self) -> None:
        self._groups: dict[str, _Group] = {}
        self._key_of: dict[Member, str] = {}

    def enroll(self, member: Member, key: str | None, wake: Wake) -> None:
        """`member`'s request now has sharing key `key` (None: it shares nothing);
        `wake` is called when another member's request brings a new token."""
        previous = self._key_of.get(member)
        if previous is not None and previous != key:
            self.leave(member)
        if key is None:
            return
        self._groups.setdefault(key, _Group()).members[member] = wake
        self._key_of[member] = key

    def leave(self, member: Member) -> None:
        """`member` is gone, or its request changed: it no longer shares."""
        key = self._key_of.pop(member, None)
        group = self._groups.get(key) if key is not None else None
        if key is None or group is None:
            return
        group.members.pop(member, None)
        self._drop_if_unused(key)

    def latest(self, key: str | None) -> StoredToken | None:
        """The latest token obtained for the group of `key`, if any."""
        group = self._groups.get(key) if key is not None else None
        return group.latest if group is not None else None

    def in_flight(self, key: str | None) -> bool:
        """Whether a request of the group of `key` is under way (`fetch` would await it)."""
        group = self._groups.get(key) if key is not None else None
        return group is not None and group.flight is not None

    async def fetch(
        self, member: Member, key: str | None, send: Callable[[], Awaitable[StoredToken]]
    ) -> StoredToken:
        """A token for `member`'s request.

        With a request of the group in flight (`in_flight`), awaits that one;
        otherwise sends its own with `send`, which the others may then await.
        Its failure is the failure of every member awaiting it. The request
        runs as a task of its own, so that a member cancelled meanwhile does
        not cancel it for the others.
        """
        if key is None:
            return await send()
        group = self._groups.setdefault(key, _Group())
        if group.flight is None:
            group.flight = flight = asyncio.ensure_future(send())
            flight.add_done_callback(lambda _: self._landed(key, group, flight))
        group.awaiting.add(member)
        return await asyncio.shield(group.flight)

    def clear(self) -> None:
        """Forget every group, cancelling their requests (this replica stops acting)."""
        for group in self._groups.values():
            if group.flight is not None:
                group.flight.cancel()
        self._groups.clear()
        self._key_of.clear()

    def _landed(self, key: str, group: _Group, flight: asyncio.Task[StoredToken]) -> None:
        """Keep the token a request brought, and wake the members that did not await it."""
        failed = flight.cancelled() or flight.exception() is not None  # retrieved: not "lost"
        if self._groups.get(key) is not group:
            return  # cleared meanwhile
        awaiting, group.flight, group.awaiting = group.awaiting, None, set()
        if not failed:
            token = flight.result()
            if group.latest is None or token.issued_at > group.latest.issued_at:
                group.latest = token
            for member, wake in list(group.members.items()):
                if member not in awaiting:
                    wake()
        self._drop_if_unused(key)

    def _drop_if_unused(self, key: str) -> None:
        group = self._groups.get(key)
        if group is not None and not group.members and group.flight is None:
            del self._groups[key]
