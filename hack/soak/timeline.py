"""What happened when: the disturbances of a run, and the recorder the faults write them with."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass


@dataclass
class Window:
    """A disturbance: a fault, from `start` to `end` (epoch seconds), for some tokens or all."""

    kind: str
    start: float
    end: float | None = None
    tokens: frozenset[str] | None = None  # None: every token
    note: str = ""

    def affects(self, token: str) -> bool:
        """Whether the disturbance acts on `token`."""
        return self.tokens is None or token in self.tokens


class Timeline:
    """Every disturbance of the run since `started`, recorded by several threads at once."""

    def __init__(self, started: float) -> None:
        self.started = started
        self._lock = threading.Lock()
        self.windows: list[Window] = []

    @contextlib.contextmanager
    def disturbance(
        self,
        kind: str,
        tokens: Sequence[str] | None = None,
        note: str = "",
        start: float | None = None,
    ) -> Iterator[Window]:
        """A disturbance from `start` (default: now) until the block ends; printed then."""
        window = Window(
            kind,
            time.time() if start is None else start,
            tokens=None if tokens is None else frozenset(tokens),
            note=note,
        )
        with self._lock:
            self.windows.append(window)
        try:
            yield window
        finally:
            window.end = time.time()
            print(
                f"  {window.start - self.started:6.1f} s  {kind}"
                f" ({window.end - window.start:.1f} s){' ' + window.note if window.note else ''}",
                flush=True,
            )
