"""One upstream token for identical requests: the key, the group, the decision, the looks."""

from __future__ import annotations

import asyncio
import base64
import copy
import functools
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from egain_token_operator.controller.observe import TokenWorker
from egain_token_operator.controller.workers import WorkerRegistry
from egain_token_operator.decisions.policy import Memory, Plan, Snapshot, plan
from egain_token_operator.decisions.reasons import TokenEndpointUnavailableError
from egain_token_operator.decisions.render import rfc3339
from egain_token_operator.decisions.schedule import StoredToken, refresh_at, stable_fraction
from egain_token_operator.decisions.spec import InvalidSpecError, TokenSharing, parse_spec
from egain_token_operator.egain.sharing import SharedTokens
from egain_token_operator.egain.transport import (
    ClientCredentials,
    TokenRequest,
    TokenResponse,
    build_request,
)
from tests.unit.clock import Clock
from tests.unit.fakes import FakeKube
from tests.unit.samples import NOW, POLICY, token
from tests.unit.test_controller import START, FakeEgain, b64, registry

URL = "https://ai.egain.cloud/system/auth/T-U/oauth2/token"
CREDENTIALS = ClientCredentials("id", "s3cret")


def spec(**overrides: Any) -> dict[str, Any]:
    return {
        "tokenUrl": URL,
        "scopes": ["a", "b"],
        "credentialsSecretRef": {"name": "creds"},
        **overrides,
    }


def request(
    credentials: ClientCredentials = CREDENTIALS, name: str = "t", **overrides: Any
) -> TokenRequest:
    return build_request(parse_spec(name, spec(**overrides)), credentials)


# --- the key ------------------------------------------------------------------


class TestSharingKey:
    def test_equal_whatever_the_scope_order_name_or_secret_written(self) -> None:
        first = request(name="one", scopes=["a", "b"])
        second = request(name="two", scopes=["b", "a", "a"], secretName="elsewhere")
        assert first.sharing_key is not None
        assert first.sharing_key == second.sharing_key
        # The fingerprint is kept as it was: stored tokens stay valid after an upgrade.
        assert first.fingerprint != second.fingerprint

    @pytest.mark.parametrize(
        ("credentials", "overrides"),
        [
            (CREDENTIALS, {"tokenUrl": URL + "?tenant=2"}),
            (CREDENTIALS, {"tokenUrl": URL.replace("T-U", "T-V")}),
            (CREDENTIALS, {"scopes": ["a"]}),
            (CREDENTIALS, {"scopes": ["a", "b", "c"]}),
            (ClientCredentials("other-id", "s3cret"), {}),
            (ClientCredentials("id", "other-secret"), {}),
            (CREDENTIALS, {"flow": "AnonymousCustomer", "tenantId": "T"}),
        ],
    )
    def test_differs_when_what_is_sent_differs(
        self, credentials: ClientCredentials, overrides: dict[str, Any]
    ) -> None:
        assert request(credentials, **overrides).sharing_key != request().sharing_key

    def test_does_not_show_the_secret(self) -> None:
        key = request().sharing_key
        assert key is not None and "s3cret" not in key
        assert "s3cret" not in repr(request())

    def test_opting_out_leaves_no_key(self) -> None:
        assert request(tokenSharing="Disabled").sharing_key is None
        assert request(tokenSharing="Shared").sharing_key is not None

    def test_token_sharing_is_parsed(self) -> None:
        assert parse_spec("t", spec()).token_sharing is TokenSharing.SHARED
        assert parse_spec("t", spec(tokenSharing="Disabled")).token_sharing is TokenSharing.DISABLED
        with pytest.raises(InvalidSpecError, match=r"spec\.tokenSharing"):
            parse_spec("t", spec(tokenSharing="Sometimes"))


# --- the group ----------------------------------------------------------------


def issued(at: datetime = NOW, access_token: str = "opaque") -> StoredToken:
    return replace(token(issued=at), access_token=access_token)


class TestSharedTokens:
    def test_concurrent_fetches_send_one_request_and_wake_the_others(self) -> None:
        async def scenario() -> None:
            tokens = SharedTokens()
            woken: list[str] = []
            for member in ("a", "b", "c", "idle"):
                tokens.enroll(("ns", member), "k", functools.partial(woken.append, member))
            release, sent = asyncio.Event(), []

            async def send() -> StoredToken:
                sent.append(1)
                await release.wait()
                return issued()

            assert not tokens.in_flight("k")
            fetches = [
                asyncio.create_task(tokens.fetch(("ns", m), "k", send)) for m in ("a", "b", "c")
            ]
            await asyncio.sleep(0)
            assert tokens.in_flight("k")
            release.set()
            results = await asyncio.gather(*fetches)
            assert len(sent) == 1
            assert results == [issued()] * 3
            assert not tokens.in_flight("k")
            assert tokens.latest("k") == issued()
            assert woken == ["idle"], "only the member that did not await it is woken"

        asyncio.run(scenario())

    def test_a_failure_is_the_failure_of_every_awaiting_member(self) -> None:
        async def scenario() -> None:
            tokens = SharedTokens()
            release = asyncio.Event()

            async def send() -> StoredToken:
                await release.wait()
                raise TokenEndpointUnavailableError("HTTP 503 from ai.egain.cloud")

            fetches = [asyncio.create_task(tokens.fetch(("ns", m), "k", send)) for m in ("a", "b")]
            await asyncio.sleep(0)
            release.set()
            results = await asyncio.gather(*fetches, return_exceptions=True)
            assert all(isinstance(r, TokenEndpointUnavailableError) for r in results)
            assert tokens.latest("k") is None

        asyncio.run(scenario())

    def test_a_cancelled_member_does_not_cancel_the_request_for_the_others(self) -> None:
        async def scenario() -> None:
            tokens = SharedTokens()
            tokens.enroll(("ns", "b"), "k", lambda: None)
            release = asyncio.Event()

            async def send() -> StoredToken:
                await release.wait()
                return issued()

            first = asyncio.create_task(tokens.fetch(("ns", "a"), "k", send))
            second = asyncio.create_task(tokens.fetch(("ns", "b"), "k", send))
            await asyncio.sleep(0)
            first.cancel()
            await asyncio.sleep(0)
            release.set()
            assert await second == issued()
            assert first.cancelled()

        asyncio.run(scenario())

    def test_without_a_key_every_fetch_sends(self) -> None:
        async def scenario() -> None:
            tokens, sent = SharedTokens(), []

            async def send() -> StoredToken:
                sent.append(1)
                await asyncio.sleep(0)
                return issued()

            await asyncio.gather(*(tokens.fetch(("ns", m), None, send) for m in ("a", "b")))
            assert len(sent) == 2
            assert tokens.latest(None) is None

        asyncio.run(scenario())

    def test_keeps_the_newest_token(self) -> None:
        async def scenario() -> None:
            tokens = SharedTokens()
            tokens.enroll(("ns", "a"), "k", lambda: None)

            async def send(at: datetime) -> StoredToken:
                return issued(at)

            await tokens.fetch(("ns", "a"), "k", lambda: send(NOW + timedelta(minutes=1)))
            await asyncio.sleep(0)
            await tokens.fetch(("ns", "a"), "k", lambda: send(NOW))
            await asyncio.sleep(0)
            latest = tokens.latest("k")
            assert latest is not None and latest.issued_at == NOW + timedelta(minutes=1)

        asyncio.run(scenario())

    def test_a_key_nobody_uses_is_dropped(self) -> None:
        async def scenario() -> None:
            tokens = SharedTokens()
            tokens.enroll(("ns", "a"), "k", lambda: None)
            tokens.enroll(("other", "b"), "k", lambda: None)

            async def send() -> StoredToken:
                return issued()

            await tokens.fetch(("ns", "a"), "k", send)
            await asyncio.sleep(0)
            tokens.leave(("ns", "a"))
            assert tokens.latest("k") is not None
            tokens.enroll(("other", "b"), "k2", lambda: None)  # its credentials changed
            assert tokens.latest("k") is None
            assert tokens._groups.keys() == {"k2"}
            tokens.enroll(("other", "b"), None, lambda: None)  # it opted out
            assert not tokens._groups and not tokens._key_of

        asyncio.run(scenario())


# --- the decision -------------------------------------------------------------

UID = "uid-1"
SPEC = parse_spec("t", spec())
SEEN = Snapshot(
    uid=UID,
    generation=1,
    refresh_request=None,
    spec=SPEC,
    fingerprint="mine",
    credentials_version="7",
)


def decide(
    own: StoredToken | None,
    shared: StoredToken | None,
    *,
    now: datetime = NOW,
    refresh_request: str | None = None,
    refresh_before: timedelta | None = None,
) -> Plan:
    snapshot = replace(
        SEEN,
        shared_token=shared,
        refresh_request=refresh_request,
        spec=replace(SPEC, refresh_before=refresh_before),
    )
    return plan(snapshot, Memory(own, None, looked=True), now, POLICY)


def refresh_time(stored: StoredToken, refresh_before: timedelta | None = None) -> datetime:
    jitter = stable_fraction(UID, rfc3339(stored.issued_at))
    return refresh_at(stored, refresh_before, POLICY, jitter)


class TestAdoption:
    def test_a_newer_shared_token_is_adopted_as_obtained_for_this_request(self) -> None:
        own = token(issued=NOW - timedelta(minutes=10), fingerprint="mine", refresh_request="1")
        shared = token(issued=NOW - timedelta(minutes=1), fingerprint="theirs", refresh_request="x")
        made = decide(own, shared, refresh_request="1")
        assert not made.request_token and made.shared
        assert made.token == replace(shared, fingerprint="mine", refresh_request="1")
        assert made.condition.status == "True"
        assert made.wake_at == refresh_time(made.token)

    def test_a_first_look_adopts_instead_of_requesting(self) -> None:
        made = decide(None, token(fingerprint="theirs"))
        assert not made.request_token and made.shared
        assert made.reported_token is not None and made.reported_token.fingerprint == "mine"

    def test_a_token_for_stale_credentials_is_replaced_by_the_shared_one(self) -> None:
        own = token(fingerprint="before-rotation")
        made = decide(own, token(issued=NOW - timedelta(minutes=5), fingerprint="theirs"))
        assert not made.request_token and made.shared

    @pytest.mark.parametrize(
        ("own", "shared"),
        [
            # The same token (already adopted, or the one it requested itself).
            (token(fingerprint="mine"), token(fingerprint="theirs")),
            # An older one.
            (token(fingerprint="mine"), token(issued=NOW - timedelta(minutes=5))),
            # An expired one.
            (None, token(issued=NOW - timedelta(hours=2))),
        ],
    )
    def test_no_adoption_of_what_is_not_newer_and_valid(
        self, own: StoredToken | None, shared: StoredToken
    ) -> None:
        assert not decide(own, shared).shared

    def test_a_forced_refresh_requests_instead_of_adopting(self) -> None:
        own = token(issued=NOW - timedelta(minutes=10), fingerprint="mine")
        made = decide(own, token(fingerprint="theirs", refresh_request="1"), refresh_request="2")
        assert made.request_token and not made.shared

    def test_a_token_answering_the_same_refresh_request_answers_it_here_too(self) -> None:
        # One value set on many (a bulk renew): the first sharer's request answers all.
        own = token(issued=NOW - timedelta(minutes=10), fingerprint="mine", refresh_request="1")
        shared = token(fingerprint="theirs", refresh_request="2")
        made = decide(own, shared, refresh_request="2")
        assert not made.request_token and made.shared
        assert made.token is not None and made.token.refresh_request == "2"

    def test_a_shared_token_already_due_here_is_not_adopted_but_requested_once(self) -> None:
        # Issued 30 min ago by a sharer with a short refreshBefore; this one
        # refreshes 45 min before expiry, so the token is past due for it.
        shared = token(issued=NOW - timedelta(minutes=30), fingerprint="theirs")
        assert refresh_time(shared, timedelta(minutes=45)) < NOW
        made = decide(None, shared, refresh_before=timedelta(minutes=45))
        assert made.request_token and not made.shared
        # The token it gets is not due for it: its next look waits.
        fresh = token(fingerprint="mine")
        later = decide(fresh, shared, refresh_before=timedelta(minutes=45))
        assert not later.request_token and not later.shared
        assert later.wake_at == refresh_time(fresh, timedelta(minutes=45)) > NOW

    def test_without_a_shared_token_nothing_changes(self) -> None:
        made = decide(None, None)
        assert made.request_token and not made.shared


# --- looks at several EgainTokens ---------------------------------------------


class CountingEgain(FakeEgain):
    """FakeEgain that remembers the scopes of each request."""

    def __init__(self, clock: Clock, lifetime: float = 3600) -> None:
        super().__init__(clock, lifetime)
        self.sent: list[tuple[str, ...]] = []

    async def fetch_token(self, request: TokenRequest) -> tuple[TokenResponse, datetime]:
        self.sent.append(request.scopes)
        return await super().fetch_token(request)


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
        # The group's token is past due for it: it requests once, `first` adopts.
        second = cluster.add("ns-2", "second", refreshBefore="45m")
        await cluster.look(second)
        await cluster.run_until(cluster.clock.now + timedelta(minutes=1))
        assert len(cluster.egain.sent) == 2
        assert cluster.access_token(first.key) == cluster.access_token(second.key) == "token-2"

    asyncio.run(scenario())


def test_a_forced_refresh_on_one_renews_all() -> None:
    async def scenario() -> None:
        cluster = Cluster()
        sharers = [cluster.add(namespace, "t") for namespace in NAMESPACES]
        await cluster.look(*sharers)
        await cluster.run_until(cluster.clock.now)
        cluster.clock.now += timedelta(minutes=1)
        forced = sharers[0]
        metadata = {
            **forced.body["metadata"],
            "annotations": {"egain.cloud/refresh-requested-at": "1"},
        }
        forced.body = {**forced.body, "metadata": metadata}
        await cluster.look(forced)
        await cluster.run_until(cluster.clock.now)
        assert len(cluster.egain.sent) == 2
        assert {cluster.access_token(w.key) for w in sharers} == {"token-2"}
        # Answered once: the next look requests nothing.
        await cluster.look(forced)
        assert len(cluster.egain.sent) == 2

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
