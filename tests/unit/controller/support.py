"""The controller's tests' ground: eGain and the caches in memory, over
`fakes.FakeKube`, a registry whose looks wait for an injected clock.
"""

from __future__ import annotations

import asyncio
import base64
import copy
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

from egain_token_operator.controller.observe import TokenWorker
from egain_token_operator.controller.reconcile import Reconciler
from egain_token_operator.controller.restarts import RolloutRestarter
from egain_token_operator.controller.workers import WorkerRegistry
from egain_token_operator.decisions.clients import ClientKind
from egain_token_operator.decisions.hosts import HostAllowList
from egain_token_operator.decisions.reasons import TokenError
from egain_token_operator.decisions.schedule import RetryPolicy
from egain_token_operator.egain.request import TokenRequest
from egain_token_operator.egain.response import TokenResponse
from egain_token_operator.egain.transport import EgainClient
from egain_token_operator.kube.clientcache import ClientCache, ReadClients
from egain_token_operator.kube.events import EventPoster
from egain_token_operator.kube.secretcache import ReadSecrets, SecretCache
from tests.unit.clock import Clock
from tests.unit.fakes import FakeKube

START = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)
# The cluster resource namespace: where ClusterEgainClients' credentials are.
OPERATOR_NAMESPACE = "egain-system"


class FakeSecrets(ReadSecrets):
    """The Secret cache over FakeKube's Secrets, as if the watches were always up to date."""

    async def synced(self) -> None:
        return None

    def written(self, secret: Mapping[str, Any]) -> None:
        return None

    async def read_again(self, namespace: str, name: str) -> None:
        return None

    def release(self, namespace: str, name: str) -> None:
        return None


class FakeClients(ReadClients):
    """The client cache over FakeKube's clients, as if the watches were always up to date."""

    async def synced(self, kind: ClientKind) -> None:
        return None


class FakeEgain:
    def __init__(self, clock: Clock, lifetime: float = 3600) -> None:
        self.clock, self.lifetime = clock, lifetime
        # The chart's default allow-list.
        self.allowed_hosts = HostAllowList.parse("*.egain.cloud")
        self.requests = 0
        self.failure: TokenError | None = None
        # Awaited by each request before it is sent: a request waiting for a slot.
        self.slot: Callable[[], Awaitable[None]] | None = None
        # Awaited by each request before it answers: a request in flight.
        self.in_flight: Callable[[], Awaitable[None]] | None = None

    async def fetch_token(
        self,
        request: TokenRequest,
        *,
        namespace: str,
        sending: Callable[[], None] | None = None,
    ) -> tuple[TokenResponse, datetime]:
        if self.slot is not None:
            await self.slot()
        if sending is not None:
            sending()
        self.requests += 1
        if self.in_flight is not None:
            await self.in_flight()
        if self.failure is not None:
            raise self.failure
        token = TokenResponse(
            f"token-{self.requests}", "Bearer", self.lifetime, request.scopes, False
        )
        return token, self.clock()


BODY = {
    "apiVersion": "egain.cloud/v1alpha1",
    "kind": "EgainToken",
    "metadata": {"namespace": "ns", "name": "portal", "uid": "uid-1", "generation": 1},
    "spec": {
        "tokenUrl": "https://ai.egain.cloud/system/auth/T-U/oauth2/token",
        "scopes": ["knowledge.portalmgr.manage"],
        "credentialsSecretRef": {"name": "creds"},
    },
}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def settle() -> None:
    """Let the loop run until what was started has done what it can without waiting."""
    for _ in range(50):
        await asyncio.sleep(0)


def registry(
    kube: FakeKube,
    egain: FakeEgain,
    clock: Clock,
    post_event: EventPoster,
    policy: RetryPolicy | None = None,
    *,
    active: bool = True,
    acting: Callable[[], Awaitable[None]] | None = None,
    holds: Callable[[], bool] = lambda: True,
) -> WorkerRegistry:
    """A registry over the fakes; its looks wait for the clock by yielding only."""
    reconciler = Reconciler(
        kube=kube,
        secrets=cast(SecretCache, FakeSecrets(kube)),
        clients=cast(ClientCache, FakeClients(kube, OPERATOR_NAMESPACE)),
        egain=cast(EgainClient, egain),
        policy=policy or RetryPolicy(),
        restarter=cast(RolloutRestarter, None),
        post_event=post_event,
        clock=clock,
        sleep=lambda seconds: asyncio.sleep(0),
        holds=holds,
    )
    return WorkerRegistry(reconciler, clock=clock, active=active, acting=acting)


def recorder(events: list[tuple[str, str, str]]) -> EventPoster:
    """Events with their messages."""
    return lambda body, kind, reason, message: events.append((kind, reason, message))


def controller(
    kube: FakeKube, egain: FakeEgain, clock: Clock, *, active: bool = True
) -> tuple[WorkerRegistry, list[str]]:
    events: list[str] = []
    made = registry(
        kube,
        egain,
        clock,
        lambda body, kind, reason, message: events.append(f"{kind} {reason}"),
        active=active,
    )
    return made, events


def setup() -> tuple[FakeKube, FakeEgain, Clock]:
    clock = Clock(START)
    kube = FakeKube()
    kube.secrets[("ns", "creds")] = {"data": {"client_id": b64("id"), "client_secret": b64("s")}}
    kube.tokens[("ns", "portal")] = copy.deepcopy(BODY)
    return kube, FakeEgain(clock), clock


def look(made: WorkerRegistry, worker: TokenWorker) -> datetime | None:
    return asyncio.run(made.reconciler.reconcile(worker))


def ready(kube: FakeKube) -> tuple[str, str]:
    condition = kube.statuses[-1]["conditions"][0]
    return condition["status"], condition["reason"]
