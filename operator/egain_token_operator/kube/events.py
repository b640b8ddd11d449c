"""Kubernetes Events about EgainTokens and clients, posted through the operator's own API client.

`kopf.event()` only works inside the task kopf runs for an object's handlers;
the workers that a new leader starts (see `leader.py`) run elsewhere, so the
operator posts its Events itself, from any task, in the background: a look
never waits for an Event, and an Event that cannot be posted is only logged.
Events wait for their turn in a queue, not each in a task of its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from egain_token_operator import metrics
from egain_token_operator.decisions.timestamps import rfc3339
from egain_token_operator.kube.adapter import EVENTS_IN_FLIGHT
from egain_token_operator.kube.api import KubeApi, KubeError

logger = logging.getLogger(__name__)

COMPONENT = "egain-token-operator"

# Posts an Event about an object: (the object, Normal or Warning, reason, message).
# An `EventRecorder`; a look and the client status say what they have to through it.
EventPoster = Callable[[Mapping[str, Any], str, str, str], None]


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An Event not yet posted, kept as little as rendering it needs: a burst
    of new tokens queues thousands (each about the size of its message, where
    a task waiting to post it came to a few KiB)."""

    api_version: str
    kind: str
    name: str
    uid: str | None
    namespace: str | None
    type_: str
    reason: str
    message: str
    at: datetime

    @classmethod
    def about(
        cls, involved: Mapping[str, Any], type_: str, reason: str, message: str, at: datetime
    ) -> PendingEvent:
        """An Event about the object `involved` (as the API sent it)."""
        metadata = involved["metadata"]
        return cls(
            involved["apiVersion"],
            involved["kind"],
            metadata["name"],
            metadata.get("uid"),
            metadata.get("namespace"),
            type_,
            reason,
            message,
            at,
        )

    def render(self, cluster_namespace: str = "default") -> dict[str, Any]:
        """The core/v1 Event, in its object's namespace; about a cluster-scoped
        object (a ClusterEgainClient), in `cluster_namespace`."""
        stamp = rfc3339(self.at)
        subject = {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
        }
        if self.namespace:
            subject["namespace"] = self.namespace
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{self.name}.",
                "namespace": self.namespace or cluster_namespace,
            },
            "involvedObject": subject,
            "type": self.type_,
            "reason": self.reason,
            "message": self.message,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }


class EventRecorder:
    """Posts Events in the background, in order, as many at once as the API
    client's lane for Events takes (`adapter.EVENTS_IN_FLIGHT`); the others
    wait in a queue. `stop` waits for every one; `pending` counts those not
    yet posted (the `egain_token_operator_events_pending` gauge)."""

    def __init__(
        self,
        kube: KubeApi,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        cluster_namespace: str = "default",
    ) -> None:
        self._kube = kube
        self._clock = clock
        # Where Events about cluster-scoped objects go: the cluster resource namespace.
        self._cluster_namespace = cluster_namespace
        self._waiting: deque[PendingEvent] = deque()
        self._posters: set[asyncio.Task[None]] = set()
        self._posting = 0
        # The operator has one recorder: the gauge reads the latest made.
        metrics.EVENTS_PENDING.set_function(self.pending)

    def __call__(self, involved: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self._waiting.append(PendingEvent.about(involved, type_, reason, message, self._clock()))
        if len(self._posters) < EVENTS_IN_FLIGHT:
            task = asyncio.get_running_loop().create_task(self._post_waiting(), name="events")
            self._posters.add(task)
            task.add_done_callback(self._posters.discard)

    async def _post_waiting(self) -> None:
        while self._waiting:
            waiting = self._waiting.popleft()
            self._posting += 1
            try:
                await self._post(waiting.render(self._cluster_namespace))
            finally:
                self._posting -= 1

    def pending(self) -> int:
        """Events not posted yet: waiting for their turn, or being posted. After
        a burst of new tokens, the Events go on being posted for a while after
        the last token is Ready: their lane gives way to the writes."""
        return len(self._waiting) + self._posting

    async def _post(self, event: Mapping[str, Any]) -> None:
        subject, namespace = event["involvedObject"], event["metadata"]["namespace"]
        try:
            await self._kube.create_event(namespace, event)
        except KubeError as exc:
            logger.warning(
                "could not post the %s Event for %s: %s",
                event["reason"],
                f"{subject['namespace']}/{subject['name']}"
                if "namespace" in subject
                else subject["name"],
                exc,
            )

    async def stop(self) -> None:
        """Let every Event waiting or under way be posted."""
        while self._posters:
            await asyncio.gather(*self._posters, return_exceptions=True)
