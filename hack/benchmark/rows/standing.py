"""Rows d), e) and g): what an operator holding valid tokens costs, left alone and restarted.

Each goes on from the operator of a burst (`issue.burst`), with its tokens.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import time
from typing import Any

from benchmark.ground import CREATE_CONCURRENCY, Ground, Running
from benchmark.kube import by_kind, secrets_path
from egain_token_operator.controller.workers import FIRST_LOOKS_DONE


async def idle(ground: Ground, running: Running) -> dict[str, Any]:
    """d) The operator left alone with valid tokens for the idle window."""
    ground.emulator.reset()
    operator = running.operator
    cpu, started = operator.cpu_seconds(), time.time()
    await asyncio.sleep(ground.settings.idle_seconds)
    elapsed = time.time() - started
    requests = ground.audit.between(started, started + elapsed)
    return {
        "tokens": len(running.watch.tokens),
        "idle_seconds": elapsed,
        "rss_mib": operator.rss_mib(),
        "cpu_percent": (operator.cpu_seconds() - cpu) / elapsed * 100,
        "api_requests": len(requests),
        "api_requests_by_kind": by_kind(requests),
        "token_requests": ground.token_requests(running.tenant),
    }


async def restart(ground: Ground, running: Running) -> tuple[dict[str, Any], Running]:
    """e) Stop the operator and start another: until it says every EgainToken had its
    first look (a status that is current is not written again, so no write can tell)."""
    running.operator.stop()
    tenant, watch = running.tenant, running.watch
    ground.emulator.reset()
    names = set(watch.tokens)
    operator = ground.operator([tenant.namespace])
    started = operator.launch()
    await operator.wait_healthy()
    healthy = time.time() - started
    line = await operator.wait_for_line(FIRST_LOOKS_DONE, ground.settings.timeout)
    end = time.time()
    looked = re.search(r"\((\d+) looked at", line) if line is not None else None
    requests = ground.audit.between(started, end)
    status_writes = [
        r for r in requests if r.resource == "egaintokens/status" and r.verb in ("patch", "update")
    ]
    await asyncio.sleep(ground.settings.settle_seconds)
    return {
        "tokens": len(names),
        "looked_at": int(looked.group(1)) if looked else None,
        "healthy_seconds": healthy,
        "all_looked_at_seconds": end - started if line is not None else None,
        "status_writes": len(status_writes),
        "token_requests": ground.token_requests(tenant),
        "api_requests": len(requests),
        "api_requests_by_kind": by_kind(requests),
        "rss_mib": operator.rss_mib(),
        "peak_rss_mib": operator.peak_rss_mib(),
    }, Running(tenant, operator, watch)


async def unrelated_secrets(ground: Ground, running: Running) -> tuple[dict[str, Any], Running]:
    """g) `tokens` unrelated Secrets in the watched namespace, then e) and d) again."""
    settings = ground.settings
    blob = base64.b64encode(os.urandom(settings.unrelated_kib * 1024)).decode()
    started = time.time()
    await ground.api.create_all(
        secrets_path(running.tenant.namespace),
        (unrelated_secret(f"unrelated-{i}", blob) for i in range(settings.tokens)),
        CREATE_CONCURRENCY // 2,
    )
    created = time.time() - started
    await asyncio.sleep(settings.settle_seconds)
    restarted, running = await restart(ground, running)
    idled = await idle(ground, running)
    return {
        "secrets": settings.tokens,
        "secret_kib": settings.unrelated_kib,
        "created_seconds": created,
        "restart": restarted,
        "idle": idled,
    }, running


def unrelated_secret(name: str, blob: str) -> dict[str, Any]:
    """A Secret the operator has nothing to do with, shaped like a Helm release's."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {"owner": "helm", "name": name, "status": "deployed"}},
        "type": "helm.sh/release.v1",
        "data": {"release": blob},
    }
