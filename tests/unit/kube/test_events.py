"""Events are rendered as core/v1 Events and posted from any task, never failing a look."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY

from egain_token_operator.kube.adapter import EVENTS_IN_FLIGHT
from egain_token_operator.kube.api import KubeError
from egain_token_operator.kube.events import EventRecorder, PendingEvent
from tests.unit.fakes import FakeKube

NOW = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)
TOKEN = {
    "apiVersion": "egain.cloud/v1alpha1",
    "kind": "EgainToken",
    "metadata": {"name": "portal", "namespace": "team-a", "uid": "1234"},
}


def test_an_event_names_the_egaintoken() -> None:
    event = PendingEvent.about(TOKEN, "Warning", "InvalidScope", "scope x is unknown", NOW).render()
    assert event["metadata"] == {"generateName": "portal.", "namespace": "team-a"}
    assert event["involvedObject"] == {
        "apiVersion": "egain.cloud/v1alpha1",
        "kind": "EgainToken",
        "name": "portal",
        "namespace": "team-a",
        "uid": "1234",
    }
    assert (event["type"], event["reason"], event["message"]) == (
        "Warning",
        "InvalidScope",
        "scope x is unknown",
    )
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2026-11-25T10:00:00Z"
    assert event["source"] == {"component": "egain-token-operator"}


def test_an_event_about_a_cluster_scoped_client_goes_to_the_cluster_namespace() -> None:
    kube = FakeKube()
    client = {
        "apiVersion": "egain.cloud/v1alpha1",
        "kind": "ClusterEgainClient",
        "metadata": {"name": "shared", "uid": "5678"},
    }

    async def run() -> None:
        record = EventRecorder(kube, clock=lambda: NOW, cluster_namespace="egain-system")
        record(client, "Warning", "CredentialsNotFound", "no Secret")
        await record.stop()

    asyncio.run(run())
    [(namespace, event)] = kube.events
    assert namespace == event["metadata"]["namespace"] == "egain-system"
    assert "namespace" not in event["involvedObject"]


def recorder(kube: FakeKube) -> EventRecorder:
    return EventRecorder(kube, clock=lambda: NOW)


def test_events_are_posted_outside_any_kopf_handler() -> None:
    kube = FakeKube()

    async def run() -> None:
        # As a worker started by a new leader calls it: no kopf context at all.
        record = recorder(kube)
        record(TOKEN, "Normal", "TokenIssued", "token valid until later")
        await record.stop()

    asyncio.run(run())
    assert [(ns, body["reason"]) for ns, body in kube.events] == [("team-a", "TokenIssued")]


def test_an_event_that_cannot_be_posted_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    kube = FakeKube()
    kube.failure = KubeError(403, "events is forbidden")

    async def run() -> None:
        record = recorder(kube)
        record(TOKEN, "Warning", "InvalidScope", "scope x is unknown")
        await record.stop()
        assert record.pending() == 0

    with caplog.at_level(logging.WARNING):
        asyncio.run(run())
    assert "could not post the InvalidScope Event for team-a/portal" in caplog.text


class HeldEvents(FakeKube):
    """Each Event is created once `go` is set; counts those under way."""

    def __init__(self) -> None:
        super().__init__()
        self.go = asyncio.Event()
        self.under_way = self.peak = 0

    async def create_event(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self.under_way += 1
        self.peak = max(self.peak, self.under_way)
        await self.go.wait()
        self.under_way -= 1
        return await super().create_event(namespace, body)


def test_events_wait_in_a_queue_not_in_tasks_and_each_is_posted_once_then_none_pending() -> None:
    kube = HeldEvents()

    async def run() -> None:
        record = recorder(kube)
        tasks_before = len(asyncio.all_tasks())
        for i in range(100):
            record(TOKEN, "Normal", "TokenIssued", f"token {i}")
        assert record.pending() == 100
        await asyncio.sleep(0)
        assert kube.under_way == EVENTS_IN_FLIGHT
        assert len(asyncio.all_tasks()) - tasks_before == EVENTS_IN_FLIGHT
        assert record.pending() == 100  # 8 being posted count until they are
        assert REGISTRY.get_sample_value("egain_token_operator_events_pending") == 100
        kube.go.set()
        await record.stop()
        assert record.pending() == 0

    asyncio.run(run())
    assert kube.peak == EVENTS_IN_FLIGHT
    posted = sorted(body["message"] for _, body in kube.events)
    assert posted == sorted(f"token {i}" for i in range(100))
