"""API requests in flight are bounded, Events have a lane of their own, the Lease never waits."""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes.aio import client

from egain_token_operator.kube.adapter import API_REQUESTS_IN_FLIGHT, EVENTS_IN_FLIGHT, Kube
from tests.unit.kube.test_paging import Response


class HeldCalls:
    """Each call answers once `go` is set; counts the calls under way."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.under_way: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    def __getattr__(self, method: str) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Response:
            kind = "events" if "event" in method else "lease" if "lease" in method else "other"
            self.under_way[kind] = self.under_way.get(kind, 0) + 1
            self.peak[kind] = max(self.peak.get(kind, 0), self.under_way[kind])
            await self.go.wait()
            self.under_way[kind] -= 1
            return Response(201, {"metadata": {"name": "x"}})

        return call


def test_requests_and_events_wait_in_their_lanes_and_the_lease_goes_at_once() -> None:
    async def go() -> None:
        kube = Kube(client.ApiClient(client.Configuration()))
        calls = HeldCalls()
        kube._core = kube._coordination = kube._custom = calls
        lease = {"metadata": {"name": "leader"}}
        writes = [kube.create_secret("ns", {"metadata": {"name": f"s{i}"}}) for i in range(50)]
        events = [kube.create_event("ns", {"metadata": {}}) for _ in range(20)]
        tasks = [asyncio.ensure_future(c) for c in (*writes, *events)]
        for _ in range(5):
            await asyncio.sleep(0)
        renewal = asyncio.ensure_future(kube.replace_lease("ns", lease))
        for _ in range(5):
            await asyncio.sleep(0)
        assert calls.under_way == {
            "other": API_REQUESTS_IN_FLIGHT,
            "events": EVENTS_IN_FLIGHT,
            "lease": 1,  # not behind the 50 writes and 20 Events
        }
        calls.go.set()
        await asyncio.gather(*tasks, renewal)
        assert calls.peak == {
            "other": API_REQUESTS_IN_FLIGHT,
            "events": EVENTS_IN_FLIGHT,
            "lease": 1,
        }

    asyncio.run(go())
