"""Rollout restarts of the workloads that read a token from environment variables.

Restarts are coalesced: all requests for one workload within a short window
become one restart, and a workload is never restarted more often than the
minimum interval, counted from the `egain.cloud/restarted-at` annotation it
carries, so the limit holds across operator restarts too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta

from egain_token_operator.decisions.render import RESTARTED_AT_ANNOTATION
from egain_token_operator.decisions.timestamps import parse_rfc3339, rfc3339
from egain_token_operator.decisions.tokenspec import RolloutTarget
from egain_token_operator.kube.api import KubeApi, KubeError

logger = logging.getLogger(__name__)

TargetKey = tuple[str, RolloutTarget]

# Tokens rotating together (created together, or sharing credentials that just
# changed) ask within moments of each other; waiting this long folds them into one.
COALESCE_WINDOW = timedelta(seconds=2)


def restart_time(
    requested_at: datetime, last_restart: datetime | None, min_interval: timedelta
) -> datetime:
    """When a restart requested at `requested_at` happens."""
    earliest = requested_at + COALESCE_WINDOW
    if last_restart is None:
        return earliest
    return max(earliest, last_restart + min_interval)


def _last_restart(workload: dict[str, object]) -> datetime | None:
    template = workload.get("spec", {}).get("template", {})  # type: ignore[attr-defined]
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    try:
        return parse_rfc3339(annotations[RESTARTED_AT_ANNOTATION])
    except (KeyError, TypeError, ValueError):
        return None


class RolloutRestarter:
    """Schedules coalesced, rate-limited rollout restarts."""

    def __init__(
        self,
        kube: KubeApi,
        min_interval: timedelta,
        *,
        enabled: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._kube = kube
        self._enabled = enabled
        self._min_interval = min_interval
        self._clock = clock
        # How a restart waits for an instant of `clock` (tests move the clock instead).
        self._sleep = sleep
        self._pending: dict[TargetKey, asyncio.Task[None]] = {}

    def request(self, namespace: str, targets: Iterable[RolloutTarget], now: datetime) -> None:
        """Ask for each target to be restarted; a pending restart already covers it."""
        if not self._enabled:
            logger.warning(
                "rollout restarts are disabled (--rollout-restarts=false); not restarting %s",
                ", ".join(f"{t.kind} {namespace}/{t.name}" for t in targets),
            )
            return
        for target in targets:
            key = (namespace, target)
            if key in self._pending:
                continue
            self._pending[key] = asyncio.get_running_loop().create_task(
                self._restart(key, now), name=f"restart {namespace}/{target.kind}/{target.name}"
            )

    async def _restart(self, key: TargetKey, requested_at: datetime) -> None:
        namespace, target = key
        try:
            workload = await self._kube.read_workload(namespace, target.kind, target.name)
            if workload is None:
                logger.warning(
                    "rollout restart: %s %s/%s not found", target.kind, namespace, target.name
                )
                return
            when = restart_time(requested_at, _last_restart(workload), self._min_interval)
            await self._sleep(max((when - self._clock()).total_seconds(), 0.0))
            # Leave the set before writing, so a token written from now on
            # schedules a restart of its own rather than being lost.
            self._pending.pop(key, None)
            patch = {
                "spec": {
                    "template": {
                        "metadata": {
                            "annotations": {RESTARTED_AT_ANNOTATION: rfc3339(self._clock())}
                        }
                    }
                }
            }
            await self._kube.patch_workload(namespace, target.kind, target.name, patch)
            logger.info("rollout restart: %s %s/%s restarted", target.kind, namespace, target.name)
        except KubeError as exc:
            logger.warning(
                "rollout restart: %s %s/%s failed: %s", target.kind, namespace, target.name, exc
            )
        finally:
            if self._pending.get(key) is asyncio.current_task():
                del self._pending[key]

    async def stop(self) -> None:
        """Cancel pending restarts."""
        tasks = list(self._pending.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._pending.clear()
