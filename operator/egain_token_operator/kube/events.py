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

from egain_token_operator.decisions.timestamps import rfc3339
from egain_token_operator.kube.adapter import EVENTS_IN_FLIGHT
from egain_token_operator.kube.api import KubeApi, KubeError

logger = logging.getLogger(__name__)

COMPONENT = "egain-token-operator"

# Posts an Event about an object: (the object, Normal or Warning, reason, message).
# An `EventRecorder`; a look and the client status say what they have to through it.
EventPoster = Callable[[Mapping[str, Any], str, str, str], None]


def render_event(
    involved: Mapping[str, Any],
    type_: str,
    reason: str,
    message: str,
    now: datetime,
    cluster_namespace: str = "default",
) -> dict[str, Any]:
    """A core/v1 Event about the object `involved` (as the API sent it), in its
    namespace; about a cluster-scoped object (a ClusterEgainClient), in
    `cluster_namespace`."""
    metadata = involved["metadata"]
    stamp = rfc3339(now)
    subject = {
        "apiVersion": involved["apiVersion"],
        "kind": involved["kind"],
        "name": metadata["name"],
        "uid": metadata.get("uid"),
    }
    if metadata.get("namespace"):
        subject["namespace"] = metadata["namespace"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "generateName": f"{metadata['name']}.",
            "namespace": metadata.get("namespace") or cluster_namespace,
        },
        "involvedObject": subject,
        "type": type_,
        "reason": reason,
        "message": message,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


@dataclass(frozen=True, slots=True)
class _Waiting:
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

    @property
    def involved(self) -> dict[str, Any]:
        """The involved object as `render_event` reads it."""
        metadata = {"name": self.name, "uid": self.uid, "namespace": self.namespace}
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": metadata}


class EventRecorder:
    """Posts Events in the background, in order, as many at once as the API
    client's lane for Events takes (`adapter.EVENTS_IN_FLIGHT`); the others
    wait in a queue. `stop` waits for every one."""

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
        self._waiting: deque[_Waiting] = deque()
        self._posters: set[asyncio.Task[None]] = set()

    def __call__(self, involved: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        metadata = involved["metadata"]
        self._waiting.append(
            _Waiting(
                involved["apiVersion"],
                involved["kind"],
                metadata["name"],
                metadata.get("uid"),
                metadata.get("namespace"),
                type_,
                reason,
                message,
                self._clock(),
            )
        )
        if len(self._posters) < EVENTS_IN_FLIGHT:
            task = asyncio.get_running_loop().create_task(self._post_waiting(), name="events")
            self._posters.add(task)
            task.add_done_callback(self._posters.discard)

    async def _post_waiting(self) -> None:
        while self._waiting:
            waiting = self._waiting.popleft()
            await self._post(
                render_event(
                    waiting.involved,
                    waiting.type_,
                    waiting.reason,
                    waiting.message,
                    waiting.at,
                    self._cluster_namespace,
                )
            )

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
