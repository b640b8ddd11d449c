"""Looks at EgainTokens whose token response grants a scope outside their
client's `allowedScopes`: nothing written, the refusal said and held back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from prometheus_client import REGISTRY

from egain_token_operator.controller.workers import WorkerRegistry
from egain_token_operator.egain.request import TokenRequest
from egain_token_operator.egain.response import TokenResponse
from tests.unit.clock import Clock
from tests.unit.controller.clients import (
    CLUSTER_CLIENT,
    EGAIN_CLIENT,
    RecordingEgain,
    client_body,
    credentials,
    look,
    token_body,
)
from tests.unit.controller.support import OPERATOR_NAMESPACE, START, ready, recorder, registry
from tests.unit.fakes import FakeKube

READ = "knowledge.portalmgr.read"
ADMIN = "core.admin"


class GrantingMore(RecordingEgain):
    """eGain granting `extra` beside what is asked, as an Entra-style `.default` does."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.extra: tuple[str, ...] = ()

    async def fetch_token(
        self,
        request: TokenRequest,
        *,
        namespace: str,
        sending: Callable[[], None] | None = None,
    ) -> tuple[TokenResponse, Any]:
        response, at = await super().fetch_token(request, namespace=namespace, sending=sending)
        granted = TokenResponse(
            response.access_token,
            response.token_type,
            response.expires_in,
            response.scopes + self.extra,
            response.expires_in_defaulted,
        )
        return granted, at


def setup() -> tuple[FakeKube, GrantingMore, Clock, WorkerRegistry, list[tuple[str, str, str]]]:
    """An EgainClient team-a/portal allowing only READ, and its credentials."""
    clock = Clock(START)
    kube = FakeKube()
    egain = GrantingMore(clock)
    events: list[tuple[str, str, str]] = []
    made = registry(kube, egain, clock, recorder(events))
    kube.clients[EGAIN_CLIENT] = client_body(EGAIN_CLIENT, allowedScopes=[READ])
    kube.secrets[("team-a", "portal-client")] = credentials("team-a-id")
    return kube, egain, clock, made, events


def refreshes(result: str, reason: str) -> float:
    labels = {"namespace": "team-a", "name": "web", "result": result, "reason": reason}
    return REGISTRY.get_sample_value("egain_token_refresh_total", labels) or 0.0


def test_a_token_granting_more_than_allowed_is_not_written() -> None:
    kube, egain, clock, made, events = setup()
    egain.extra = (ADMIN,)
    refused, issued = refreshes("failure", "ScopeNotAllowed"), refreshes("success", "TokenIssued")
    worker = look(made, token_body())
    assert egain.requests == 1
    # Counted as the failure it is.
    assert refreshes("failure", "ScopeNotAllowed") == refused + 1
    assert refreshes("success", "TokenIssued") == issued
    assert ("team-a", "web") not in kube.secrets
    assert ready(kube) == ("False", "ScopeNotAllowed")
    message = kube.statuses[-1]["conditions"][0]["message"]
    assert message == (
        f"the token response grants scope {ADMIN}, which EgainClient portal in namespace "
        "team-a does not allow (allowedScopes); the token is not used"
    )
    assert kube.statuses[-1]["lastFailure"]["reason"] == "ScopeNotAllowed"
    assert kube.statuses[-1].get("scopes") is None
    assert events[-1] == ("Warning", "ScopeNotAllowed", message)
    assert not any(reason == "TokenIssued" for _, reason, _ in events)

    # Held back like eGain's own permanent failures: not asked again a minute later.
    clock.now += timedelta(minutes=1)
    asyncio.run(made.reconciler.reconcile(worker))
    assert egain.requests == 1


def test_the_previous_token_stays_when_the_next_grants_more() -> None:
    kube, egain, clock, made, events = setup()
    worker = look(made, token_body())
    issued = kube.secrets[("team-a", "web")]
    assert ready(kube) == ("True", "TokenIssued")

    clock.now += timedelta(minutes=1)  # past the request floor: the forced refresh is served
    egain.extra = (ADMIN,)
    forced = token_body()
    forced["metadata"]["annotations"] = {"egain.cloud/refresh-requested-at": "now"}
    worker.body = {**forced, "status": worker.body.get("status") or {}}
    asyncio.run(made.reconciler.reconcile(worker))
    assert egain.requests == 2
    assert kube.secrets[("team-a", "web")] == issued
    assert kube.statuses[-1]["lastFailure"]["reason"] == "ScopeNotAllowed"
    assert ADMIN in kube.statuses[-1]["lastFailure"]["message"]
    assert events[-1][:2] == ("Warning", "ScopeNotAllowed")


def test_a_token_shared_through_a_broader_client_is_not_taken() -> None:
    # The same credentials behind an EgainClient allowing any scope and a
    # ClusterEgainClient allowing READ only: identical requests, one sharing group.
    kube, egain, _, made, _ = setup()
    kube.clients[EGAIN_CLIENT] = client_body(EGAIN_CLIENT)
    kube.clients[CLUSTER_CLIENT] = client_body(
        CLUSTER_CLIENT, allowedNamespaces={"names": ["team-b"]}, allowedScopes=[READ]
    )
    kube.secrets[("team-a", "portal-client")] = credentials("platform-id")
    kube.secrets[(OPERATOR_NAMESPACE, "portal-client")] = credentials("platform-id")
    egain.extra = (ADMIN,)
    look(made, token_body())
    assert ("team-a", "web") in kube.secrets  # its client allows any scope
    look(made, token_body(namespace="team-b", kind="ClusterEgainClient"))
    assert egain.requests == 2  # not adopted: requested, and refused in turn
    assert ("team-b", "web") not in kube.secrets
    assert ready(kube) == ("False", "ScopeNotAllowed")
