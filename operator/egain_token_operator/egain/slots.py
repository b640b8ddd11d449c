"""A limit shared fairly among namespaces, for the token requests in flight
(`transport`) and the looks under way (`controller.workers`).

Who goes next is `decisions.slots.SlotQueue`'s: round-robin among the
namespaces waiting, none holding more than its share. Here only the waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from egain_token_operator.decisions.slots import SlotQueue, share_of


def _waiting(granted: asyncio.Future[None]) -> bool:
    return not granted.done()


class FairSlots:
    """At most `total` holders at once, at most `share_of(total)` of them for one namespace."""

    def __init__(self, total: int) -> None:
        self._queue: SlotQueue[asyncio.Future[None]] = SlotQueue(total, share_of(total))

    @property
    def in_use(self) -> int:
        """Slots held now."""
        return self._queue.in_use

    def held(self, namespace: str) -> int:
        """Slots `namespace` holds now."""
        return self._queue.held(namespace)

    @contextlib.asynccontextmanager
    async def hold(self, namespace: str) -> AsyncIterator[None]:
        """Hold a slot for `namespace` (waiting for its turn) while in the block.

        A waiter cancelled before its turn leaves no trace; one cancelled after
        a slot was handed to it but before it resumed gives the slot back.
        """
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.arrive(namespace, granted)
        self._grant()
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._release(namespace)
            raise
        try:
            yield
        finally:
            self._release(namespace)

    def _release(self, namespace: str) -> None:
        self._queue.release(namespace)
        self._grant()

    def _grant(self) -> None:
        for granted in self._queue.grants(_waiting):
            granted.set_result(None)
