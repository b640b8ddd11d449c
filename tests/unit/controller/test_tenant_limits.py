"""What one team cannot make the operator do to a shared client or to its
neighbours, in the looks: forced refreshes past the request floor (deferred,
said, served later), a client's request budget (the most urgent first, valid
tokens kept), a client requiring sharing, and restarts for a token's own
reasons only."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, cast

from egain_token_operator.controller.observe import TokenWorker
from egain_token_operator.controller.restarts import RolloutRestarter
from egain_token_operator.decisions.tokenspec import RolloutTarget
from tests.unit.controller.clients import EGAIN_CLIENT, client_body, credentials, token_body
from tests.unit.controller.support import START
from tests.unit.controller.test_sharing_looks import Cluster

FORCED = "egain.cloud/refresh-requested-at"


class Restarts:
    """Records the rollout restarts asked for: (namespace, target names)."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, tuple[str, ...]]] = []

    def request(self, namespace: str, targets: tuple[RolloutTarget, ...], now: datetime) -> None:
        self.asked.append((namespace, tuple(target.name for target in targets)))


def restarting(cluster: Cluster) -> Restarts:
    restarts = Restarts()
    reconciler = cluster.controller.reconciler
    cluster.controller.reconciler = replace(reconciler, restarter=cast(RolloutRestarter, restarts))
    return restarts


def force(worker: TokenWorker, value: str) -> None:
    metadata = {**worker.body["metadata"], "annotations": {FORCED: value}}
    worker.body = {**worker.body, "metadata": metadata}
    worker.wake.set()


def with_client(**spec: Any) -> Cluster:
    """A cluster with EgainClient team-a/portal (`spec` added) and its credentials."""
    cluster = Cluster()
    cluster.kube.clients[EGAIN_CLIENT] = client_body(EGAIN_CLIENT, **spec)
    cluster.kube.secrets[("team-a", "portal-client")] = credentials("team-a-id")
    return cluster


def add_client_token(cluster: Cluster, name: str, **spec: Any) -> TokenWorker:
    body = token_body(name)
    body["spec"].update(spec)
    worker = TokenWorker(("team-a", name), body)
    cluster.kube.tokens[worker.key] = copy.deepcopy(body)
    cluster.workers[worker.key] = worker
    return worker


def test_a_forced_refresh_too_soon_is_deferred_with_an_event_and_served_later() -> None:
    async def scenario() -> None:
        cluster = Cluster()
        worker = cluster.add("ns-1", "t")
        await cluster.look(worker)
        cluster.clock.now += timedelta(seconds=10)
        for value in ("1", "2", "2"):
            force(worker, value)
            await cluster.look(worker)
        assert len(cluster.egain.sent) == 1
        deferred = [(kind, m) for kind, reason, m in cluster.events if reason == "RefreshDeferred"]
        said = (
            "Normal",
            "refresh requested by annotation deferred until 2026-11-23T21:00:31Z: token "
            "requests for one EgainToken come at least 30s apart (a 120th of the 3600s lifetime)",
        )
        assert deferred == [said, said]  # once per value
        assert cluster.ready(worker.key) == "True"
        assert cluster.kube.held[worker.key]["nextRefreshAt"] == "2026-11-23T21:00:31Z"
        # Served when allowed, with the latest value.
        await cluster.run_until(START + timedelta(seconds=31))
        assert len(cluster.egain.sent) == 2
        secret = cluster.kube.secrets[("ns-1", "t")]
        assert secret["metadata"]["annotations"][FORCED] == "2"

    asyncio.run(scenario())


def test_a_refresh_before_a_second_short_of_the_lifetime_requests_at_the_floor() -> None:
    async def scenario() -> None:
        cluster = Cluster()
        worker = cluster.add("ns-1", "t", refreshBefore="59m59s")
        await cluster.look(worker)
        await cluster.run_until(START + timedelta(minutes=10))
        sent = len(cluster.egain.sent)
        # A request every 31 s (the 30 s floor after the second of issue), not every second.
        assert sent == 1 + 600 // 31, sent
        message = cluster.kube.held[worker.key]["conditions"][0]["message"]
        assert "refreshBefore 3599s is taken as 3569s" in message

    asyncio.run(scenario())


def test_a_sharer_is_restarted_for_its_own_reasons_only() -> None:
    async def scenario() -> None:
        cluster = Cluster()
        restarts = restarting(cluster)
        targets = [{"kind": "Deployment", "name": "app"}]
        forced, other = (
            cluster.add(namespace, "t", rolloutRestartTargets=targets)
            for namespace in ("ns-1", "ns-2")
        )
        await cluster.look(forced, other)
        await cluster.run_until(cluster.clock.now)
        # The first token is each one's own reason.
        assert sorted(restarts.asked) == [("ns-1", ("app",)), ("ns-2", ("app",))]
        cluster.clock.now += timedelta(minutes=10)
        force(forced, "1")
        await cluster.run_until(cluster.clock.now)
        assert len(cluster.egain.sent) == 2
        assert restarts.asked[2:] == [("ns-1", ("app",))]
        assert cluster.access_token(other.key) == "token-1"  # no Secret write either
        # At its own refresh time it takes the shared token over, and restarts.
        await cluster.run_until(START + timedelta(minutes=41))
        assert len(cluster.egain.sent) == 2
        assert cluster.access_token(other.key) == "token-2"
        assert restarts.asked[3:] == [("ns-2", ("app",))]

    asyncio.run(scenario())


def test_a_client_budget_defers_requests_most_urgent_first_and_keeps_tokens_ready() -> None:
    async def scenario() -> None:
        cluster = with_client(requestsPerMinute=1)
        x = add_client_token(cluster, "x", scopes=["a"])
        y = add_client_token(cluster, "y", scopes=["b"])
        z = add_client_token(cluster, "z", scopes=["c"])
        for worker, lifetime in ((x, 3600), (y, 1800), (z, 3600)):
            cluster.egain.lifetime = lifetime
            await cluster.look(worker)
            cluster.clock.now += timedelta(minutes=1)
        cluster.egain.lifetime = 3600
        # At +50 min all three want a token: y's expired at +31 min (most urgent),
        # x's expires at +60, z's at +62. z asks first and takes the minute's request.
        cluster.clock.now = START + timedelta(minutes=50)
        await cluster.look(z, x, y)
        assert cluster.egain.sent[3:] == [("c",)]
        assert cluster.ready(x.key) == "True"  # deferred, still Ready
        await cluster.run_until(START + timedelta(minutes=53))
        assert cluster.egain.sent[3:] == [("c",), ("b",), ("a",)]
        assert {cluster.ready(w.key) for w in (x, y, z)} == {"True"}
        said = [w for w in cluster.workers.values() if w.memory.failure is not None]
        assert not said  # a deferral is no failure

    asyncio.run(scenario())


def test_a_client_requiring_sharing_refuses_a_token_that_opts_out() -> None:
    async def scenario() -> None:
        cluster = with_client(tokenSharing="Required")
        alone = add_client_token(cluster, "alone", tokenSharing="Disabled")
        await cluster.look(alone)
        assert cluster.egain.sent == []
        condition = cluster.kube.held[alone.key]["conditions"][0]
        assert (condition["status"], condition["reason"]) == ("False", "SharingRequired")
        assert ("Warning", "SharingRequired") in {(k, r) for k, r, _ in cluster.events}

    asyncio.run(scenario())
