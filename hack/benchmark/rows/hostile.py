"""Row m): what one hostile tenant costs the others.

One operator serves three namespaces: a hostile team's, a neighbour's and a
hammering team's. The hostile team forges Secrets carrying the operator's
label (the operator's memory, and its peak when it restarts among them), then
makes its token requests hang (how long the neighbour's next token takes to
turn Ready, beside the same with nothing hanging); the hammering team asks for
a refresh every second and forces more (how many requests reach eGain).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import math
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmark.ground import CREATE_CONCURRENCY, CREDENTIALS, SCOPE, TENANT, Ground, Tenant
from benchmark.kube import GROUP_PATH, secrets_path, tokens_path
from benchmark.watch import TokenWatch
from egain_token_operator.controller.workers import FIRST_LOOKS_DONE
from egain_token_operator.decisions.render import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    REFRESH_REQUESTED_AT_ANNOTATION,
    TOKEN_LABEL,
)
from egain_token_operator.decisions.schedule import request_floor
from egain_token_operator.decisions.timestamps import rfc3339
from testground.operatorprocess import OperatorProcess

# The hammering token's lifetime, and a refreshBefore one second short of it.
HAMMER_LIFETIME = 3600
HAMMER_REFRESH_BEFORE = "59m59s"


async def hostile(ground: Ground) -> dict[str, Any]:
    """m) Forged Secrets, hanging requests and a hammering token, against their neighbours."""
    settings = ground.settings
    bad = await ground.tenant("hostile")
    neighbour = await ground.tenant("neighbour")
    hammer = await ground.tenant("hammer", lifetime=HAMMER_LIFETIME)
    namespaces = [bad.namespace, neighbour.namespace, hammer.namespace]
    operator = ground.operator(namespaces)
    operator.launch()
    await operator.wait_healthy()
    watch = await ground.watch(neighbour.namespace)
    ready = functools.partial(_time_to_ready, ground, neighbour, watch)
    alone = await ready("alone")  # also the warm-up: the operator has served a token

    forged = await _forge(ground, bad, operator)
    operator.stop()  # and start again among the forged Secrets
    operator = ground.operator(namespaces)
    started = operator.launch()
    await operator.wait_healthy()
    first_looks = await operator.wait_for_line(FIRST_LOOKS_DONE, settings.timeout)
    forged["restart_all_looked_at_seconds"] = time.time() - started if first_looks else None
    forged["restart_peak_rss_mib"] = operator.peak_rss_mib()

    hanging = await _hang(ground, bad, ready)
    hanging["neighbour_alone_ms"] = alone * 1000
    hammering = await _hammer(ground, hammer)
    ground.emulator.clear_faults()
    operator.stop()
    return {"forged": forged, "hanging": hanging, "hammering": hammering}


async def _time_to_ready(ground: Ground, tenant: Tenant, watch: TokenWatch, name: str) -> float:
    """Seconds from creating the EgainToken `name` in `tenant` to the watch seeing it Ready."""
    started = time.time()
    await ground.create_tokens(tenant, [name])
    await watch.until(
        functools.partial(watch.is_ready, name), f"{name} Ready", ground.settings.timeout, 0.002
    )
    ready_at = watch.tokens[name].ready_at
    assert ready_at is not None
    return ready_at - started


async def _forge(ground: Ground, tenant: Tenant, operator: OperatorProcess) -> dict[str, Any]:
    """Secrets in `tenant`'s namespace carrying the operator's labels, each of
    `forged_kib`: the operator's memory before and after."""
    settings = ground.settings
    blob = base64.b64encode(os.urandom(settings.forged_kib * 1024 * 3 // 4)).decode()
    await asyncio.sleep(settings.settle_seconds)
    before = operator.rss_mib()
    await ground.api.create_all(
        secrets_path(tenant.namespace),
        (_forged_secret(f"forged-{i}", blob) for i in range(settings.forged_secrets)),
        CREATE_CONCURRENCY // 2,
    )
    await asyncio.sleep(settings.settle_seconds)  # the watch hands them over meanwhile
    after = operator.rss_mib()
    return {
        "secrets": settings.forged_secrets,
        "secret_kib": settings.forged_kib,
        "rss_before_mib": before,
        "rss_after_mib": after,
        "kib_per_secret": (after - before) * 1024 / settings.forged_secrets,
    }


def _forged_secret(name: str, blob: str) -> dict[str, Any]:
    """A Secret no EgainToken writes, labelled as if the operator had written it."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY, TOKEN_LABEL: name}},
        "type": "Opaque",
        "data": {"access_token": blob},
    }


async def _hang(
    ground: Ground, tenant: Tenant, ready: Callable[[str], Awaitable[float]]
) -> dict[str, Any]:
    """`hanging_tokens` EgainTokens in `tenant` whose requests never get an answer;
    meanwhile, a neighbour's new EgainToken's time to Ready."""
    settings, emulator = ground.settings, ground.emulator
    emulator.set_fault("hang", count=None, client_id=tenant.client_id)
    await ground.create_tokens(tenant, (f"hanging-{i}" for i in range(settings.hanging_tokens)))
    # The hanging namespace has taken what slots it may (half the limit at the
    # least, or every one of its requests): now the neighbour asks.
    least = min(settings.hanging_tokens, settings.max_concurrent_requests // 2)
    deadline = time.monotonic() + settings.timeout
    while len(emulator.requests(tenant.client_id)) < least:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{least} hanging requests: not after {settings.timeout:.0f} s")
        await asyncio.sleep(0.05)
    in_flight = emulator.concurrency().current
    seconds = await ready("while-hanging")
    return {
        "hanging_tokens": settings.hanging_tokens,
        "in_flight_when_asked": in_flight,
        "neighbour_ms": seconds * 1000,
    }


async def _hammer(ground: Ground, tenant: Tenant) -> dict[str, Any]:
    """One EgainToken, through an EgainClient with a budget of `hammer_budget`
    requests a minute, refreshed a second before its 1 h token expires and
    forced every `hammer_force_every` seconds: the requests eGain sees over the
    window, beside what the request floor and the budget allow."""
    settings, emulator, api = ground.settings, ground.emulator, ground.api
    client = {
        "apiVersion": "egain.cloud/v1alpha1",
        "kind": "EgainClient",
        "metadata": {"name": "hammered"},
        "spec": {
            "tokenUrl": emulator.client_app_token_url(TENANT),
            "credentialsSecretRef": {"name": CREDENTIALS},
            "requestsPerMinute": settings.hammer_budget,
        },
    }
    await api.create(f"{GROUP_PATH}/namespaces/{tenant.namespace}/egainclients", client)
    token = {
        "apiVersion": "egain.cloud/v1alpha1",
        "kind": "EgainToken",
        "metadata": {"name": "hammer"},
        "spec": {
            "clientRef": {"name": "hammered"},
            "scopes": [SCOPE],
            "refreshBefore": HAMMER_REFRESH_BEFORE,
        },
    }
    await api.create(tokens_path(tenant.namespace), token)
    path = f"{tokens_path(tenant.namespace)}/hammer"
    started = time.monotonic()
    forced = 0
    while (elapsed := time.monotonic() - started) < settings.hammer_seconds:
        forced_at = {REFRESH_REQUESTED_AT_ANNOTATION: rfc3339(datetime.now(UTC))}
        await api.merge_patch(path, {"metadata": {"annotations": forced_at}})
        forced += 1
        await asyncio.sleep(min(settings.hammer_force_every, settings.hammer_seconds - elapsed))
    window = time.monotonic() - started
    requests = len(emulator.requests(tenant.client_id))
    floor = request_floor(timedelta(seconds=HAMMER_LIFETIME)).total_seconds()
    return {
        "window_seconds": window,
        "forced_refreshes": forced,
        "token_requests": requests,
        "requests_per_minute": requests / window * 60,
        "floor_seconds": floor,
        # The first request, then one per floor; and the budget's, per minute begun.
        "floor_allows": 1 + int(window // floor),
        "budget_allows": settings.hammer_budget * math.ceil(window / 60),
    }
