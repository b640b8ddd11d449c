"""The request log: one record per request to a token path, holding no secret and no token.

Each record is also logged, as one line naming the flow, client and outcome.

The log is not thread-safe by itself: `EgainEmulator` guards it with its lock
and wakes `wait_for_requests()` callers on each new record.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from testground.emulator.faults import Fault, FaultKind
from testground.emulator.oauth import Flow, Seen
from testground.emulator.tokens import IssuedToken, utcnow

logger = logging.getLogger(__name__)

_MAX_LOG = 10_000


@dataclass(frozen=True)
class RequestRecord:
    """One request to a token path, as the emulator saw it. Holds no secret and no token."""

    monotonic: float  # time.monotonic() when answered
    wall_time: datetime.datetime  # UTC
    method: str
    path: str  # without the query
    flow: Flow | None  # None: not a token path (404)
    tenant: str | None  # from the path (ClientApp) or domain_hint (AnonymousCustomer)
    domain_hint: str | None
    user_type: str | None
    content_type: str | None
    client_id: str | None
    grant_type: str | None
    scopes: tuple[str, ...]  # as sent (prefixed for AnonymousCustomer)
    user_agent: str | None  # the User-Agent header
    peer: str | None  # the client's IP address
    status: int | None  # None: reset or hang, nothing was sent
    error: str | None  # the OAuth error code of a rejection
    fault: FaultKind | None  # the takeover or shaping fault applied
    delayed: float  # seconds of latency fault applied
    token_issued: bool
    token_fingerprint: str | None  # see token_fingerprint()

    def to_json(self) -> dict[str, Any]:
        """This record as JSON-ready data (the admin endpoint's format)."""
        data = asdict(self)
        data["wall_time"] = self.wall_time.isoformat()
        data["scopes"] = list(self.scopes)
        return data


@dataclass(frozen=True)
class Concurrency:
    """Token requests in flight: now, and the most at once since the last reset."""

    current: int
    peak: int


class InFlight:
    """Counts token requests between their arrival and their answer (a hang stays in flight)."""

    def __init__(self) -> None:
        self._current = 0
        self._peak = 0

    def enter(self) -> None:
        """A request arrived."""
        self._current += 1
        self._peak = max(self._peak, self._current)

    def leave(self) -> None:
        """A request was answered (or given up)."""
        self._current -= 1

    def reset_peak(self) -> None:
        """Start counting the peak again from the requests in flight now."""
        self._peak = self._current

    def now(self) -> Concurrency:
        """The current count and the peak."""
        return Concurrency(self._current, self._peak)


class RequestLog:
    """The newest records (at most 10,000), oldest first."""

    def __init__(self) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=_MAX_LOG)

    def add(
        self,
        seen: Seen,
        status: int | None,
        *,
        error: str | None,
        fault: Fault | None,
        delayed: float,
        token: IssuedToken | None,
    ) -> RequestRecord:
        """Record (and log) a request seen as `seen`, answered with `status` (None: nothing).

        The oldest record is dropped when the log is full.
        """
        record = RequestRecord(
            monotonic=time.monotonic(),
            wall_time=utcnow(),
            **asdict(seen),
            status=status,
            error=error,
            fault=fault.kind if fault else None,
            delayed=delayed,
            token_issued=token is not None,
            token_fingerprint=token.fingerprint if token else None,
        )
        self._records.append(record)
        # Never the secret, never the token: client, outcome, nothing else.
        logger.info(
            "token request flow=%s client_id=%s status=%s error=%s fault=%s",
            record.flow,
            record.client_id,
            "none" if status is None else status,
            error,
            record.fault,
        )
        return record

    def find(self, client_id: str | None, flow: Flow | str | None) -> list[RequestRecord]:
        """The records of `client_id` and `flow` (None: any), oldest first."""
        return [
            r
            for r in self._records
            if (client_id is None or r.client_id == client_id) and (flow is None or r.flow == flow)
        ]

    def clear(self) -> None:
        """Forget every record."""
        self._records.clear()
