"""One upstream token for identical requests, in the looks at several EgainTokens."""

from __future__ import annotations

import asyncio
import base64
import copy
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import REGISTRY

from egain_token_operator.controller.observe import TokenWorker
from egain_token_operator.controller.workers import WorkerRegistry
from egain_token_operator.decisions.reasons import TokenEndpointUnavailableError
from egain_token_operator.egain.request import TokenRequest
from egain_token_operator.egain.response import TokenResponse
from tests.unit.clock import Clock
from tests.unit.controller.support import START, FakeEgain, b64, registry
from tests.unit.egain.test_sharing import spec
from tests.unit.fakes import FakeKube

# --- looks at several EgainTokens ---------------------------------------------


class CountingEgain(FakeEgain):
    """FakeEgain that remembers the scopes of each request."""

    def __init__(self, clock: Clock, lifetime: float = 3600) -> None:
        super().__init__(clock, lifetime)
        self.sent: list[tuple[str, ...]] = []

    async def fetch_token(
        self,
        request: TokenRequest,
        *,
        namespace: str,
        sending: Callable[[], None] | None = None,
    ) -> tuple[TokenResponse, datetime]:
        self.sent.append(request.scopes)
        return await super().fetch_token(request, namespace=namespace, sending=sending)


NAMESPACES = ("ns-1", "ns-2", "ns-3")


def body(namespace: str, name: str, **overrides: Any) -> dict[str, Any]:
    return {
        "apiVersion": "egain.cloud/v1alpha1",
        "kind": "EgainToken",
        "metadata": {
            "namespace": namespace,
            "name": name,
            "uid": f"uid-{namespace}-{name}",
            "generation": 1,
        },
        "spec": spec(**overrides),
    }


class Cluster:
    """EgainTokens in several namespaces with identical credentials, and one controller."""

    def __init__(self, lifetime: float = 3600) -> None:
        self.clock = Clock(START)
        self.kube = FakeKube()
        for namespace in NAMESPACES:
            self.kube.secrets[(namespace, "creds")] = {
                "metadata": {"resourceVersion": "1"},
                "data": {"client_id": b64("id"), "client_secret": b64("s3cret")},
            }
        self.egain = CountingEgain(self.clock, lifetime)
        self.events: list[tuple[str, str, str]] = []
        self.workers: dict[tuple[str, str], TokenWorker] = {}
        self.wake_at: dict[tuple[str, str], datetime | None] = {}
        self.controller = self.restart()

    def restart(self) -> WorkerRegistry:
        """A new controller (and new workers) over the same cluster."""
        self.controller = registry(
            self.kube,
            self.egain,
            self.clock,
            lambda _, kind, reason, message: self.events.append((kind, reason, message)),
        )
        self.workers = {key: TokenWorker(key, w.body) for key, w in self.workers.items()}
        return self.controller

    def add(self, namespace: str, name: str, **overrides: Any) -> TokenWorker:
        worker = TokenWorker((namespace, name), body(namespace, name, **overrides))
        self.kube.tokens[worker.key] = copy.deepcopy(dict(worker.body))
        self.workers[worker.key] = worker
        return worker

    async def look(self, *workers: TokenWorker) -> None:
        """Look at `workers` at once, as their tasks would."""
        for worker in workers:
            worker.wake.clear()
        wakes = await asyncio.gather(*(self.controller.reconciler.reconcile(w) for w in workers))
        for worker, wake_at in zip(workers, wakes, strict=True):
            self.wake_at[worker.key] = wake_at

    async def run_until(self, end: datetime) -> None:
        """Advance time from wake-up to wake-up, looking at every worker due or woken."""
        while True:
            due = [
                w
                for w in self.workers.values()
                if w.wake.is_set() or (self.wake_at.get(w.key) or end) <= self.clock.now
            ]
            if due:
                await self.look(*due)
                continue
            planned = [at for at in self.wake_at.values() if at is not None]
            if not planned or min(planned) > end:
                return
            self.clock.now = max(self.clock.now, min(planned))

    def access_token(self, key: tuple[str, str]) -> str:
        secret = self.kube.secrets[(key[0], self.workers[key].spec.secret_name)]  # type: ignore[union-attr]
        return base64.b64decode(secret["data"]["access_token"]).decode()

    def ready(self, key: tuple[str, str]) -> str:
        return str(self.kube.held[key]["conditions"][0]["status"])


def counted(sample: str, keys: list[tuple[str, str]], **labels: str) -> float:
    """The sum of a counter's samples over EgainTokens `keys`."""
    return sum(
        REGISTRY.get_sample_value(sample, {"namespace": ns, "name": name, **labels}) or 0.0
        for ns, name in keys
    )


def test_identical_requests_in_several_namespaces_cost_one_request() -> None:
    async def scenario() -> None:
        cluster = Cluster()
        sharers = [
            cluster.add(namespace, f"t{i}", scopes=["a", "b"] if i % 2 else ["b", "a"])
            for namespace in NAMESPACES
            for i in range(3)
        ]
        keys = [w.key for w in sharers]
        sent_before = counted(
            "egain_token_refresh_total", keys, result="success", reason="TokenIssued"
        )
        shared_before = counted("egain_token_shared_refresh_total", keys)
        await cluster.look(*sharers)
        assert len(cluster.egain.sent) == 1
        await cluster.run_until(cluster.clock.now)  # the ones woken by the landing
        sent = counted("egain_token_refresh_total", keys, result="success", reason="TokenIssued")
        assert sent - sent_before == 1
        assert counted("egain_token_shared_refresh_total", keys) - shared_before == len(keys) - 1
        assert {cluster.access_token(w.key) for w in sharers} == {"token-1"}
        assert {cluster.ready(w.key) for w in sharers} == {"True"}
        issued = [m for kind, reason, m in cluster.events if reason == "TokenIssued"]
        assert len(issued) == len(sharers)
        assert sum(m.endswith("(shared)") for m in issued) == len(sharers) - 1

        # Each refresh, over five lifetimes: one request for all nine.
        await cluster.run_until(START + timedelta(hours=5))
        rounds = len(cluster.egain.sent)
        assert 8 <= rounds <= 9, rounds  # a refresh every 36 to 40 minutes
        assert {cluster.access_token(w.key) for w in sharers} == {f"token-{rounds}"}
        assert {cluster.ready(w.key) for w in sharers} == {"True"}

    asyncio.run(scenario())


def test_opting_out_gets_a_token_of_its_own() -> None:
    async def scenario() -> None:
        cluster = Cluster()
        sharer = cluster.add("ns-1", "shared")
        alone = cluster.add("ns-2", "alone", tokenSharing="Disabled")
        await cluster.look(sharer, alone)
        await cluster.run_until(cluster.clock.now)
        assert len(cluster.egain.sent) == 2
        assert cluster.access_token(sharer.key) != cluster.access_token(alone.key)
        assert not any(m.endswith("(shared)") for _, _, m in cluster.events)

    asyncio.run(scenario())


def test_rotated_credentials_get_one_new_token_for_all() -> None:
    async def scenario() -> None:
        cluster = Cluster()
        sharers = [cluster.add(namespace, "t") for namespace in NAMESPACES]
        await cluster.look(*sharers)
        await cluster.run_until(cluster.clock.now)
        cluster.clock.now += timedelta(minutes=5)
        for namespace in NAMESPACES:
            cluster.kube.secrets[(namespace, "creds")] = {
                "metadata": {"resourceVersion": "2"},
                "data": {"client_id": b64("id"), "client_secret": b64("rotated")},
            }
        await cluster.look(*sharers)
        await cluster.run_until(cluster.clock.now)
        assert len(cluster.egain.sent) == 2
        assert {cluster.access_token(w.key) for w in sharers} == {"token-2"}

    asyncio.run(scenario())


def test_a_restart_requests_nothing_while_the_stored_tokens_are_valid() -> None:
    async def scenario() -> None:
        cluster = Cluster()
        await cluster.look(*(cluster.add(namespace, "t") for namespace in NAMESPACES))
        await cluster.run_until(cluster.clock.now)
        assert len(cluster.egain.sent) == 1
        cluster.clock.now += timedelta(minutes=10)
        cluster.restart()
        await cluster.look(*cluster.workers.values())
        assert len(cluster.egain.sent) == 1, "a restart requested a token"
        # The first due then requests for all.
        await cluster.run_until(START + timedelta(minutes=45))
        assert len(cluster.egain.sent) == 2
        assert {cluster.access_token(k) for k in cluster.workers} == {"token-2"}

    asyncio.run(scenario())


def test_different_refresh_before_values_do_not_ping_pong() -> None:
    async def scenario() -> None:
        cluster = Cluster()
        early = cluster.add("ns-1", "early", refreshBefore="40m")
        late = cluster.add("ns-2", "late", scopes=["b", "a"], refreshBefore="5m")
        await cluster.look(early, late)
        await cluster.run_until(START + timedelta(hours=4))
        # Only `early` (scopes a, b) is ever due: a refresh every 20 to 24 minutes.
        assert set(cluster.egain.sent) == {("a", "b")}
        assert 13 <= len(cluster.egain.sent) <= 16, len(cluster.egain.sent)
        assert cluster.access_token(early.key) == cluster.access_token(late.key)

    asyncio.run(scenario())


def test_a_later_sharer_with_a_longer_refresh_before_does_not_loop() -> None:
    async def scenario() -> None:
        cluster = Cluster()
        first = cluster.add("ns-1", "first", refreshBefore="5m")
        await cluster.look(first)
        cluster.clock.now += timedelta(minutes=30)
        # The group's token is past due for it: it requests once.
        second = cluster.add("ns-2", "second", refreshBefore="45m")
        await cluster.look(second)
        await cluster.run_until(cluster.clock.now + timedelta(minutes=1))
        assert len(cluster.egain.sent) == 2
        # `first` was not due: it keeps its token until its own refresh time.
        assert cluster.access_token(first.key) == "token-1"
        assert cluster.access_token(second.key) == "token-2"

    asyncio.run(scenario())


def test_a_forced_refresh_on_one_renews_all() -> None:
    async def scenario() -> None:
        cluster = Cluster()
        sharers = [cluster.add(namespace, "t") for namespace in NAMESPACES]
        await cluster.look(*sharers)
        await cluster.run_until(cluster.clock.now)
        # Long enough before the others' refresh time (40 min, less up to 2 min
        # of jitter) that the forced token is not yet due for them then.
        cluster.clock.now += timedelta(minutes=10)
        forced = sharers[0]
        metadata = {
            **forced.body["metadata"],
            "annotations": {"egain.cloud/refresh-requested-at": "1"},
        }
        forced.body = {**forced.body, "metadata": metadata}
        await cluster.look(forced)
        await cluster.run_until(cluster.clock.now)
        assert len(cluster.egain.sent) == 2
        # The others were neither due nor forced: they keep their token for now.
        assert [cluster.access_token(w.key) for w in sharers] == ["token-2", "token-1", "token-1"]
        # Answered once: the next look requests nothing.
        await cluster.look(forced)
        assert len(cluster.egain.sent) == 2
        # At their own refresh time, the others adopt it: no request.
        await cluster.run_until(START + timedelta(minutes=41))
        assert len(cluster.egain.sent) == 2
        assert {cluster.access_token(w.key) for w in sharers} == {"token-2"}

    asyncio.run(scenario())


def test_a_failed_shared_request_is_recorded_by_each_awaiting_sharer() -> None:
    async def scenario() -> None:
        cluster = Cluster()
        sharers = [cluster.add(namespace, "t") for namespace in NAMESPACES]
        cluster.egain.failure = TokenEndpointUnavailableError("HTTP 503 from ai.egain.cloud")
        await cluster.look(*sharers)
        assert cluster.egain.requests == 1
        for worker in sharers:
            status = cluster.kube.held[worker.key]
            assert status["consecutiveFailures"] == 1
            assert status["lastFailure"]["reason"] == "TokenEndpointUnavailable"
        cluster.egain.failure = None
        await cluster.run_until(cluster.clock.now + timedelta(seconds=30))
        assert {cluster.ready(w.key) for w in sharers} == {"True"}
        assert len({cluster.access_token(w.key) for w in sharers}) == 1

    asyncio.run(scenario())


def test_one_refresh_request_value_on_every_sharer_costs_one_request() -> None:
    async def scenario() -> None:
        cluster = Cluster()
        sharers = [cluster.add(namespace, "t") for namespace in NAMESPACES]
        await cluster.look(*sharers)
        await cluster.run_until(cluster.clock.now)
        cluster.clock.now += timedelta(minutes=1)
        for worker in sharers:  # a bulk renew: one value on each
            annotations = {"egain.cloud/refresh-requested-at": "bulk"}
            worker.body = {
                **worker.body,
                "metadata": {**worker.body["metadata"], "annotations": annotations},
            }
            worker.wake.set()
        await cluster.look(sharers[0])
        await cluster.run_until(cluster.clock.now)
        assert len(cluster.egain.sent) == 2
        assert {cluster.access_token(w.key) for w in sharers} == {"token-2"}
        for worker in sharers:
            annotations = cluster.kube.secrets[(worker.key[0], "t")]["metadata"]["annotations"]
            assert annotations["egain.cloud/refresh-requested-at"] == "bulk"

    asyncio.run(scenario())
