"""Leader election over a coordination.k8s.io Lease, the way Kubernetes controllers do it.

Replicas sharing a Lease take turns: the holder renews it every `retry_period`;
the others may take it once it has not changed for `duration`, measured on
their own clock from when they saw it change (so clock skew between nodes does
not matter). A leader that could not renew for `renew_deadline` (shorter than
`duration`) steps down before anybody else may take over, and a leader that
finds the Lease held by another steps down at once. On shutdown the leader
releases the Lease so that a standby takes over without waiting it out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from egain_token_operator import metrics
from egain_token_operator.kube.api import ConflictError, KubeApi, KubeError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """How long a Lease lasts, how long a leader tries to renew it, how often all try."""

    duration: timedelta = timedelta(seconds=15)
    renew_deadline: timedelta = timedelta(seconds=10)
    retry_period: timedelta = timedelta(seconds=2)


class Attempt(Enum):
    """What one try to acquire or renew the Lease found."""

    HELD = "held by this replica"
    TAKEN = "held by another replica"
    FAILED = "the API request failed"


def micro_time(instant: datetime) -> str:
    """A Kubernetes MicroTime: `2026-11-24T02:00:00.000000Z`."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Keeps trying to hold one Lease; calls back when leadership starts and stops."""

    def __init__(
        self,
        kube: KubeApi,
        lease: tuple[str, str],
        identity: str,
        *,
        on_started: Callable[[], Awaitable[None]],
        on_stopped: Callable[[], Awaitable[None]],
        timing: LeaseTiming | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._kube = kube
        self._namespace, self._name = lease
        self.identity = identity
        self._on_started = on_started
        self._on_stopped = on_stopped
        self._timing = timing or LeaseTiming()
        self._clock = clock
        self.leading = False
        self._renewed_at: datetime | None = None  # last successful acquire or renew
        # The Lease's resourceVersion as last seen, and when (on this replica's clock).
        self._observed: tuple[str, datetime] | None = None
        # The Lease as this replica last wrote it: a leader renews from it without
        # reading first (one request per renewal; a conflict makes it read again).
        self._written: dict[str, Any] | None = None
        self._failing: str | None = None  # the last failure, until a try succeeds
        self._renewal = asyncio.Event()  # set (and replaced) at each acquire or renew

    @property
    def lease(self) -> str:
        """`namespace/name` of the Lease (for messages)."""
        return f"{self._namespace}/{self._name}"

    def holds(self) -> bool:
        """Whether this replica may act now: it leads, and acquired or renewed the
        Lease within the renew deadline. A process that was frozen (SIGSTOP, a
        paused VM) past that deadline has not, though it still thinks it leads
        until its next round: by then the others may have taken over."""
        return (
            self.leading
            and self._renewed_at is not None
            and self._clock() - self._renewed_at < self._timing.renew_deadline
        )

    async def acting(self) -> None:
        """Return once `holds()`: at once, or after the next successful renewal."""
        while not self.holds():
            await self._renewal.wait()

    async def attempt(self) -> Attempt:
        """One try to acquire or renew the Lease."""
        now = self._clock()
        written, self._written = self._written, None
        try:
            if self.leading and written is not None:
                # Changed by someone else meanwhile: read it, and see who holds it.
                with contextlib.suppress(ConflictError):
                    return self._held(await self._replace(written, now), now)
            lease = await self._kube.read_lease(self._namespace, self._name)
            if lease is None:
                body = self._body(None, now)
                return self._held(await self._kube.create_lease(self._namespace, body), now)
            self._observe(lease, now)
            if not self._may_take(lease, now):
                return Attempt.TAKEN
            return self._held(await self._replace(lease, now), now)
        except KubeError as exc:
            # Said once per kind of failure, not at every try: an unreachable API
            # server or missing RBAC must show, without flooding the log.
            if not isinstance(exc, ConflictError) and str(exc) != self._failing:
                logger.warning("Lease %s: %s", self.lease, exc)
            self._failing = str(exc)
            return Attempt.FAILED

    async def _replace(self, lease: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        return await self._kube.replace_lease(self._namespace, self._body(lease, now))

    def _held(self, lease: dict[str, Any], now: datetime) -> Attempt:
        self._failing = None
        self._observe(lease, now)
        self._written = lease
        return Attempt.HELD

    def _observe(self, lease: Mapping[str, Any], now: datetime) -> None:
        version = str(lease.get("metadata", {}).get("resourceVersion", ""))
        if self._observed is None or self._observed[0] != version:
            self._observed = (version, now)

    def _may_take(self, lease: Mapping[str, Any], now: datetime) -> bool:
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        if not holder or holder == self.identity:
            return True
        seconds = spec.get("leaseDurationSeconds")
        duration = timedelta(seconds=seconds) if isinstance(seconds, int) else self._timing.duration
        assert self._observed is not None
        return now >= self._observed[1] + duration

    def _body(self, lease: Mapping[str, Any] | None, now: datetime) -> dict[str, Any]:
        spec = dict((lease or {}).get("spec") or {})
        renewing = spec.get("holderIdentity") == self.identity
        transitions = int(spec.get("leaseTransitions") or 0)
        metadata = dict((lease or {}).get("metadata") or {"name": self._name})
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self._timing.duration.total_seconds()),
                "acquireTime": spec.get("acquireTime") if renewing else micro_time(now),
                "renewTime": micro_time(now),
                "leaseTransitions": transitions if renewing or lease is None else transitions + 1,
            },
        }

    async def step(self) -> None:
        """One round: try the Lease, then start or stop leading accordingly."""
        if self.leading and self._renewed_at is not None:
            # Never run past the renew deadline: others may take over right after it.
            left = self._renewed_at + self._timing.renew_deadline - self._clock()
            timeout = max(left.total_seconds(), 0.0)
        else:
            timeout = self._timing.renew_deadline.total_seconds()
        if timeout <= 0:
            result = Attempt.FAILED  # past the renew deadline (a frozen process): no try
        else:
            try:
                # Not wait_for, which can swallow the cancellation of a shutdown (Python 3.11).
                async with asyncio.timeout(timeout):
                    result = await self.attempt()
            except TimeoutError:
                result = Attempt.FAILED
        now = self._clock()
        if result is Attempt.HELD:
            self._renewed_at = now
            renewal, self._renewal = self._renewal, asyncio.Event()
            renewal.set()
            if not self.leading:
                logger.info("Leading: holding Lease %s as %s", self.lease, self.identity)
                await self._set_leading(True)
        elif self.leading and (
            result is Attempt.TAKEN
            or self._renewed_at is None
            or now - self._renewed_at >= self._timing.renew_deadline
        ):
            logger.warning("Standing by: lost Lease %s (%s)", self.lease, result.value)
            await self._set_leading(False)

    async def _set_leading(self, leading: bool) -> None:
        self.leading = leading
        metrics.LEADER.set(1 if leading else 0)
        await (self._on_started if leading else self._on_stopped)()

    async def run(self) -> None:
        """Try forever, every `retry_period` with a little jitter."""
        metrics.LEADER.set(0)
        period = self._timing.retry_period.total_seconds()
        while True:
            try:
                await self.step()
            except Exception:
                # Nothing may end the loop: a replica must keep competing for the Lease.
                logger.exception("Lease %s: unexpected failure; trying again", self.lease)
            await asyncio.sleep(period * random.uniform(1.0, 1.2))  # noqa: S311

    async def release(self) -> None:
        """Stop leading and hand the Lease over (to be called once `run` is cancelled)."""
        if not self.leading:
            return
        await self._set_leading(False)
        with contextlib.suppress(KubeError):
            lease = await self._kube.read_lease(self._namespace, self._name)
            spec = (lease or {}).get("spec") or {}
            if lease is not None and spec.get("holderIdentity") == self.identity:
                released = {**spec, "holderIdentity": None, "leaseDurationSeconds": 1}
                await self._kube.replace_lease(self._namespace, {**lease, "spec": released})
                logger.info("Released Lease %s", self.lease)
