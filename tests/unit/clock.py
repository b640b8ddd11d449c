"""An injected clock for unit tests: time moves only when a test moves it."""

from __future__ import annotations

from datetime import datetime


class Clock:
    """Callable like `datetime.now(UTC)`; set or advance `now` to move time."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now
