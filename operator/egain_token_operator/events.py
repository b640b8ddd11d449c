"""Kubernetes Events about EgainTokens, posted through the operator's own API client.

`kopf.event()` only works inside the task kopf runs for an object's handlers;
the workers that a new leader starts (see `leader.py`) run elsewhere, so the
operator posts its Events itself, from any task, in the background: a look
never waits for an Event, and an Event that cannot be posted is only logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from egain_token_operator.kube import Kube, KubeError
from egain_token_operator.render import rfc3339

logger = logging.getLogger(__name__)

COMPONENT = "egain-token-operator"


def render_event(
    involved: Mapping[str, Any], type_: str, reason: str, message: str, now: datetime
) -> dict[str, Any]:
    """A core/v1 Event about the object `involved` (as the API sent it)."""
    metadata = involved["metadata"]
    stamp = rfc3339(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{metadata['name']}.", "namespace": metadata["namespace"]},
        "involvedObject": {
            "apiVersion": involved["apiVersion"],
            "kind": involved["kind"],
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "uid": metadata.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": message,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


class EventRecorder:
    """Posts Events in the background; `stop` waits for those under way."""

    def __init__(
        self, kube: Kube, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._kube = kube
        self._clock = clock
        self._pending: set[asyncio.Task[None]] = set()

    def __call__(self, involved: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        event = render_event(involved, type_, reason, message, self._clock())
        task = asyncio.get_running_loop().create_task(self._post(event), name=f"event {reason}")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _post(self, event: Mapping[str, Any]) -> None:
        subject = event["involvedObject"]
        try:
            await self._kube.create_event(subject["namespace"], event)
        except KubeError as exc:
            logger.warning(
                "could not post the %s Event for %s/%s: %s",
                event["reason"],
                subject["namespace"],
                subject["name"],
                exc,
            )

    async def stop(self) -> None:
        """Let the Events under way be posted."""
        await asyncio.gather(*self._pending, return_exceptions=True)
