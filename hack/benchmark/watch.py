"""What the benchmark knows of the EgainTokens of a namespace, from a watch.

Each event is stamped when it arrives, so waiting on the result can be
coarse while the figures stay exact to the event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from benchmark.kube import Api, tokens_path
from egain_token_operator.decisions.timestamps import parse_rfc3339


@dataclass(frozen=True)
class Issue:
    """A token the status reported, and when the watch first saw it."""

    issued_at: str  # as in status, RFC 3339
    expires_at: str
    seen_at: float  # Unix time


@dataclass(frozen=True)
class Replacement:
    """A token replaced by the next one the status reported."""

    left_seconds: float  # what the old one had left when the new one was issued
    seen_at: float  # when the watch saw the new one (Unix time)


@dataclass
class TokenState:
    """One EgainToken as the watch saw it."""

    ready_at: float | None = None  # first seen Ready=True (Unix time)
    issues: list[Issue] = field(default_factory=list)


class TokenWatch:
    """Watches the EgainTokens of one namespace (or, for None, of all, by name:
    names must then be unique), optionally those of a label selector, until stopped."""

    def __init__(self, api: Api, namespace: str | None, selector: str = "") -> None:
        self._api = api
        self._path = tokens_path(namespace)
        self._selection = {"labelSelector": selector} if selector else {}
        self.tokens: dict[str, TokenState] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """List, then watch from there in the background."""
        version = await self._list()
        self._task = asyncio.create_task(self._watch(version), name=f"watch {self._path}")

    async def stop(self) -> None:
        """Stop watching."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _list(self) -> str:
        listed = await self._api.get(self._path, **self._selection)
        now = time.time()
        for item in listed["items"]:
            self._observe(item, now)
        version: str = listed["metadata"]["resourceVersion"]
        return version

    async def _watch(self, version: str) -> None:
        params = {"watch": "1", "allowWatchBookmarks": "true", **self._selection}
        while True:
            async with self._api.client.stream(
                "GET",
                self._path,
                params={**params, "resourceVersion": version},
                timeout=httpx.Timeout(None, connect=10.0),
            ) as response:
                async for line in response.aiter_lines():
                    if not line:
                        continue
                    event = json.loads(line)
                    if event["type"] == "ERROR":  # e.g. 410 Gone: list again
                        version = await self._list()
                        break
                    version = event["object"]["metadata"]["resourceVersion"]
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._observe(event["object"], time.time())

    def _observe(self, token: dict[str, Any], now: float) -> None:
        state = self.tokens.setdefault(token["metadata"]["name"], TokenState())
        status = token.get("status") or {}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        if ready and state.ready_at is None:
            state.ready_at = now
        issued_at = status.get("issuedAt")
        if issued_at and (not state.issues or state.issues[-1].issued_at != issued_at):
            state.issues.append(Issue(issued_at, str(status.get("expiresAt")), now))

    def is_ready(self, name: str) -> bool:
        """Whether the watch has seen `name` Ready."""
        state = self.tokens.get(name)
        return state is not None and state.ready_at is not None

    def replacements(self) -> list[Replacement]:
        """Every token the watch saw replaced, of every EgainToken."""
        return [
            Replacement(
                (parse_rfc3339(old.expires_at) - parse_rfc3339(new.issued_at)).total_seconds(),
                new.seen_at,
            )
            for state in self.tokens.values()
            for old, new in zip(state.issues, state.issues[1:], strict=False)
        ]

    def ready_count(self) -> int:
        """How many EgainTokens have been Ready."""
        return sum(state.ready_at is not None for state in self.tokens.values())

    async def all_ready(self, count: int, within: float) -> float:
        """Wait until `count` EgainTokens have been Ready; when the last turned Ready (epoch s)."""
        await self.until(lambda: self.ready_count() >= count, f"{count} EgainTokens Ready", within)
        return max(s.ready_at for s in self.tokens.values() if s.ready_at is not None)

    async def all_refreshed(self, within: float) -> None:
        """Wait until every EgainToken watched has had a second token."""
        await self.until(
            lambda: all(len(s.issues) >= 2 for s in self.tokens.values()),
            f"{len(self.tokens)} EgainTokens refreshed",
            within,
            poll=0.25,
        )

    async def until(
        self, done: Callable[[], bool], what: str, within: float, poll: float = 0.1
    ) -> None:
        """Wait until `done()`, asked every `poll` seconds; TimeoutError after `within` s."""
        deadline = time.monotonic() + within
        while not done():
            if self._task is not None and self._task.done():
                self._task.result()  # the watch failed: say why
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not after {within:.0f} s")
            await asyncio.sleep(poll)
