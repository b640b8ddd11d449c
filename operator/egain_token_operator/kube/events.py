"""Kubernetes Events about EgainTokens and clients, posted through the operator's own API client.

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

from egain_token_operator.decisions.timestamps import rfc3339
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


class EventRecorder:
    """Posts Events in the background; `stop` waits for those under way."""

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
        self._pending: set[asyncio.Task[None]] = set()

    def __call__(self, involved: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        event = render_event(
            involved, type_, reason, message, self._clock(), self._cluster_namespace
        )
        task = asyncio.get_running_loop().create_task(self._post(event), name=f"event {reason}")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

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
        """Let the Events under way be posted."""
        await asyncio.gather(*self._pending, return_exceptions=True)
