"""Looks shared among namespaces: one namespace's hanging tokens leave looks for another's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from egain_token_operator.controller.workers import _CONCURRENT_LOOKS
from egain_token_operator.decisions.slots import share_of
from egain_token_operator.egain.request import TokenRequest
from egain_token_operator.egain.response import TokenResponse
from tests.unit.clock import Clock
from tests.unit.controller.support import BODY, FakeEgain, b64, controller, settle, setup

HOGS = 70  # more than the looks: with a plain limit, they would take every one


class HangingFor(FakeEgain):
    """eGain holding the requests made for EgainTokens in `namespace` until `hang` is set."""

    def __init__(self, clock: Clock, namespace: str) -> None:
        super().__init__(clock)
        self.namespace, self.hang = namespace, asyncio.Event()
        self.asked: list[str] = []  # the namespace of each request

    async def fetch_token(
        self,
        request: TokenRequest,
        *,
        namespace: str,
        sending: Callable[[], None] | None = None,
    ) -> tuple[TokenResponse, datetime]:
        self.asked.append(namespace)
        if namespace == self.namespace:
            await self.hang.wait()
        return await super().fetch_token(request, namespace=namespace, sending=sending)


def test_a_namespace_whose_requests_hang_leaves_looks_for_another() -> None:
    kube, _, clock = setup()
    egain = HangingFor(clock, "hog")
    asked = egain.asked
    made, _ = controller(kube, egain, clock)
    for namespace in ("hog", "neighbour"):
        kube.secrets[(namespace, "creds")] = {
            "data": {"client_id": b64("id"), "client_secret": b64("s")}
        }

    def token(namespace: str, index: int) -> dict[str, Any]:
        metadata = {"namespace": namespace, "name": f"t{index}", "uid": f"{namespace}-{index}"}
        # Each its own scope: identical requests would share one upstream request.
        spec = {**cast(dict[str, Any], BODY["spec"]), "scopes": [f"{namespace}.{index}"]}
        body = {**BODY, "metadata": {**metadata, "generation": 1}, "spec": spec}
        kube.tokens[(namespace, f"t{index}")] = body
        return body

    async def scenario() -> None:
        for index in range(HOGS):
            made.observe_token("ADDED", token("hog", index))
        await settle()
        assert asked.count("hog") == share_of(_CONCURRENT_LOOKS)
        made.observe_token("ADDED", token("neighbour", 0))
        await settle()
        assert asked.count("neighbour") == 1, "the neighbour waited behind the hanging namespace"
        assert asked.count("hog") == share_of(_CONCURRENT_LOOKS)
        egain.hang.set()
        await settle()
        assert asked.count("hog") == HOGS
        await made.stop()

    asyncio.run(scenario())
