"""Shared clients in the controller's tests: clients, their credentials and
the EgainTokens that name them, and a registry over them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from egain_token_operator.controller.observe import TokenWorker
from egain_token_operator.controller.workers import WorkerRegistry
from egain_token_operator.decisions.clients import ClientKey, ClientKind
from egain_token_operator.egain.request import TokenRequest
from egain_token_operator.egain.response import TokenResponse
from tests.unit.clock import Clock
from tests.unit.controller.support import (
    START,
    FakeEgain,
    b64,
    recorder,
    registry,
)
from tests.unit.fakes import FakeKube

TOKEN_URL = "https://ai.egain.cloud/system/auth/T-U/oauth2/token"
EGAIN_CLIENT = ClientKey(ClientKind.EGAIN_CLIENT, "team-a", "portal")
CLUSTER_CLIENT = ClientKey(ClientKind.CLUSTER_EGAIN_CLIENT, "", "portal")


class RecordingEgain(FakeEgain):
    """FakeEgain that keeps the client id of each request (never a secret)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.client_ids: list[str] = []

    async def fetch_token(
        self,
        request: TokenRequest,
        *,
        namespace: str,
        sending: Callable[[], None] | None = None,
    ) -> tuple[TokenResponse, Any]:
        self.client_ids.append(request.form["client_id"])
        return await super().fetch_token(request, namespace=namespace, sending=sending)


def credentials(client_id: str, version: str = "1") -> dict[str, Any]:
    return {
        "metadata": {"resourceVersion": version},
        "data": {"client_id": b64(client_id), "client_secret": b64("s")},
    }


def client_body(key: ClientKey, generation: int = 1, **spec: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": key.name, "uid": f"uid-{key.name}"}
    metadata["generation"] = generation
    if key.namespace:
        metadata["namespace"] = key.namespace
    return {
        "apiVersion": "egain.cloud/v1alpha1",
        "kind": key.kind.value,
        "metadata": metadata,
        "spec": {"tokenUrl": TOKEN_URL, "credentialsSecretRef": {"name": "portal-client"}, **spec},
    }


def token_body(
    name: str = "web",
    namespace: str = "team-a",
    kind: str = "EgainClient",
    scopes: tuple[str, ...] = ("knowledge.portalmgr.read",),
) -> dict[str, Any]:
    return {
        "apiVersion": "egain.cloud/v1alpha1",
        "kind": "EgainToken",
        "metadata": {"namespace": namespace, "name": name, "uid": f"uid-{name}", "generation": 1},
        "spec": {"clientRef": {"kind": kind, "name": "portal"}, "scopes": list(scopes)},
    }


def setup() -> tuple[FakeKube, RecordingEgain, Clock, WorkerRegistry, list[tuple[str, str, str]]]:
    clock = Clock(START)
    kube = FakeKube()
    egain = RecordingEgain(clock)
    events: list[tuple[str, str, str]] = []
    return kube, egain, clock, registry(kube, egain, clock, recorder(events)), events


def look(made: WorkerRegistry, body: Mapping[str, Any]) -> TokenWorker:
    metadata = body["metadata"]
    worker = TokenWorker((metadata["namespace"], metadata["name"]), body)
    asyncio.run(made.reconciler.reconcile(worker))
    return worker
