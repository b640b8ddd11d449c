"""Rows a), b), c), j) and k): how fast new EgainTokens get their tokens."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import os
import sys
import time
from typing import Any

from benchmark import floorclient
from benchmark.figures import percentile
from benchmark.ground import (
    CREATE_CONCURRENCY,
    CREDENTIALS,
    SCOPE,
    TENANT,
    Ground,
    Running,
    Tenant,
)
from benchmark.kube import by_kind, tokens_path
from benchmark.profile import Profiler
from egain_token_operator.controller.workers import FIRST_LOOKS_DONE
from testground.controlplane import REPO

ROW_LABEL = "bench.egain.cloud/row"  # which row an EgainToken is of, for --selector
PYTHONPATH = (REPO / "hack", REPO / "operator")  # the floor's client's


async def floor(ground: Ground) -> dict[str, Any]:
    """a) What one issue costs a plain async client: token POST, Secret create, status
    patch; run in a process of its own (`benchmark.floorclient`), whose CPU is counted."""
    settings, emulator, plane = ground.settings, ground.emulator, ground.plane
    tenant = await ground.tenant("floor")  # no operator serves it
    names = [f"floor-{i}" for i in range(settings.trials + settings.tokens + 1)]
    await ground.create_tokens(tenant, names)
    admin = json.loads(plane.kubeconfig.read_text())["users"][0]["user"]
    job = floorclient.Job(
        server=plane.server,
        ca_file=str(plane.ca_file),
        client_cert=admin["client-certificate"],
        client_key=admin["client-key"],
        token_url=emulator.client_app_token_url(TENANT),
        egain_ca_file=str(emulator.ca_file),
        namespace=tenant.namespace,
        client_id=tenant.client_id,
        client_secret=tenant.client_secret,
        scope=SCOPE,
        warm_up=names[-1],
        trials=names[: settings.trials],
        names=names[settings.trials : -1],
        concurrency=settings.max_concurrent_requests,
    )
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        floorclient.__name__,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(map(str, PYTHONPATH))},
    )
    out, _ = await client.communicate(json.dumps(dataclasses.asdict(job)).encode())
    if client.returncode != 0:
        raise RuntimeError(f"the floor's client exited with {client.returncode}")
    figures = json.loads(out)
    parts: list[tuple[float, float, float]] = figures["parts"]
    trials = [sum(part) for part in parts]
    post, create, patch = zip(*parts, strict=True)
    return {
        "trials": len(trials),
        "p50_ms": percentile(trials, 50) * 1000,
        "p95_ms": percentile(trials, 95) * 1000,
        "token_post_p50_ms": percentile(post, 50) * 1000,
        "secret_create_p50_ms": percentile(create, 50) * 1000,
        "status_patch_p50_ms": percentile(patch, 50) * 1000,
        "throughput_tokens": settings.tokens,
        "throughput_seconds": figures["seconds"],
        "tokens_per_second": settings.tokens / figures["seconds"],
        "cpu_ms_per_issue": figures["cpu_seconds"] / settings.tokens * 1000,
        "concurrency": settings.max_concurrent_requests,
    }


async def time_to_ready(ground: Ground) -> dict[str, Any]:
    """b) One new EgainToken at a time, from its create request to the watch seeing it Ready."""
    tenant = await ground.tenant("ttr")
    running = await ground.serve(tenant)
    watch = running.watch
    durations, creates = [], []
    for trial in range(-1, ground.settings.trials):  # -1: a warm-up, not counted
        name = f"ttr-{trial + 1}"
        started = time.time()
        await ground.create_tokens(tenant, [name])
        created = time.time()
        await watch.until(functools.partial(watch.is_ready, name), f"{name} Ready", 60, poll=0.002)
        ready_at = watch.tokens[name].ready_at
        assert ready_at is not None
        if trial >= 0:
            durations.append(ready_at - started)
            creates.append(created - started)
    await ground.stop(running)
    return {
        "trials": len(durations),
        "p50_ms": percentile(durations, 50) * 1000,
        "p95_ms": percentile(durations, 95) * 1000,
        "max_ms": max(durations) * 1000,
        # The EgainToken's create request, which the floor's issue does not make,
        # and what follows it: the operator's whole part.
        "create_p50_ms": percentile(creates, 50) * 1000,
        "after_create_p50_ms": percentile(
            [d - c for d, c in zip(durations, creates, strict=True)], 50
        )
        * 1000,
    }


async def burst(ground: Ground, size: int) -> tuple[dict[str, Any], Running]:
    """c) `size` EgainTokens created at once, until all are Ready. The operator keeps running."""
    tenant = await ground.tenant(f"burst-{size}")
    running = await ground.serve(tenant)
    ground.emulator.reset()
    operator = running.operator
    assert operator.process is not None
    profiler = None
    if ground.settings.profile:
        path = ground.state_dir / f"profile-burst-{size}-{ground.run_id}.txt"
        profiler = Profiler(operator.process.pid, path)
    rss_before, cpu_before = operator.rss_mib(), operator.cpu_seconds()
    started = time.time()
    await ground.create_tokens(tenant, (f"token-{i}" for i in range(size)))
    created = time.time() - started
    done = await running.watch.all_ready(size, ground.settings.timeout)
    # Events are posted in the background, in a lane that gives way to the
    # writes: in a large burst the last are posted after the last Ready.
    posted = await operator.events_posted(ground.settings.timeout)
    cpu = operator.cpu_seconds() - cpu_before
    profile = {} if profiler is None else {"profile": await asyncio.to_thread(profiler.stop)}
    rss_after = operator.rss_mib()
    requests = ground.audit.between(started)
    all_ready = done - started
    return {
        "tokens": size,
        "created_seconds": created,
        "all_ready_seconds": all_ready,
        "tokens_per_second": size / all_ready,
        "events_posted_seconds": posted - started,
        "token_requests": ground.token_requests(tenant),
        "peak_concurrent_token_requests": ground.emulator.concurrency().peak,
        "api_requests": len(requests),
        "api_requests_per_token": len(requests) / size,
        "api_requests_by_kind": by_kind(requests),
        "cpu_seconds": cpu,
        "cpu_ms_per_token": cpu / size * 1000,
        "rss_before_mib": rss_before,
        "rss_after_mib": rss_after,
        "rss_per_token_kib": (rss_after - rss_before) * 1024 / size,
        **profile,
    }, running


async def spread(ground: Ground, listed: bool) -> dict[str, Any]:
    """j) A burst of `spread_tokens` over namespaces: `spread_namespaces` served by an
    operator watching every namespace, or `spread_listed` named by `--namespace`."""
    settings, size = ground.settings, ground.settings.spread_size
    count = min(settings.spread_listed if listed else settings.spread_namespaces, size)
    label = "spread-listed" if listed else "spread-wide"
    client = ground.client("", f"bench-{label}")
    namespaces = [f"bench-{label}-{i}-{ground.run_id}" for i in range(count)]
    for namespace in namespaces:
        await ground.namespace(namespace)
        await ground.credentials(namespace, client)
    # The selector keeps the cluster-wide one to this row's EgainTokens.
    selector = f"{ROW_LABEL}={label}"
    operator = ground.operator(namespaces if listed else [], "--selector", selector)
    started = operator.launch()
    await operator.wait_healthy()
    if await operator.wait_for_line(FIRST_LOOKS_DONE, settings.timeout) is None:
        raise TimeoutError(f"{label}: the operator's first lists not done")
    listed_after = time.time() - started
    watch = await ground.watch(None, selector)
    ground.emulator.reset()
    cpu_before = operator.cpu_seconds()
    started = time.time()
    await ground.api.create_each(
        (
            (
                tokens_path(namespaces[i % count]),
                ground.token_body(f"{label}-{i}", {ROW_LABEL: label}),
            )
            for i in range(size)
        ),
        CREATE_CONCURRENCY,
    )
    done = await watch.all_ready(size, settings.timeout)
    await operator.events_posted(settings.timeout)
    cpu = operator.cpu_seconds() - cpu_before
    rss = operator.rss_mib()
    requests = ground.audit.between(started)
    operator.stop()
    await watch.stop()
    return {
        "tokens": size,
        "namespaces": count,
        "watched": "listed" if listed else "cluster-wide",
        "first_looks_seconds": listed_after,
        "all_ready_seconds": done - started,
        "tokens_per_second": size / (done - started),
        "cpu_ms_per_token": cpu / size * 1000,
        "token_requests": ground.token_requests(client),
        "api_requests": len(requests),
        "api_requests_by_kind": by_kind(requests),
        "rss_mib": rss,
    }


async def shared(ground: Ground) -> dict[str, Any]:
    """k) `shared_tokens` EgainTokens in `shared_groups` groups of identical requests:
    the token requests of the burst and of one refresh round."""
    settings, size = ground.settings, ground.settings.shared_size
    groups = min(settings.shared_groups, size)
    lifetime = settings.shared_lifetime
    tenant = await ground.tenant("shared", lifetime=lifetime)
    clients: list[Tenant] = [tenant]
    for group in range(1, groups):
        client = ground.client(tenant.namespace, f"bench-shared-{group}", lifetime)
        await ground.credentials(tenant.namespace, client, f"{CREDENTIALS}-{group}")
        clients.append(client)

    def requests() -> int:
        return sum(ground.token_requests(client) for client in clients)

    running = await ground.serve(tenant)
    watch = running.watch
    ground.emulator.reset()
    started = time.time()
    await ground.api.create_all(
        tokens_path(tenant.namespace),
        (
            ground.token_body(
                f"token-{i}",
                tokenSharing="Shared",
                credentialsSecretRef={
                    "name": CREDENTIALS if i % groups == 0 else f"{CREDENTIALS}-{i % groups}"
                },
            )
            for i in range(size)
        ),
        CREATE_CONCURRENCY,
    )
    done = await watch.all_ready(size, settings.timeout)
    burst_requests = requests()
    await watch.all_refreshed(lifetime + settings.timeout)
    round_requests = requests() - burst_requests
    taken = [s.issues[1].seen_at for s in watch.tokens.values()]
    await ground.stop(running)
    return {
        "tokens": size,
        "groups": groups,
        "lifetime_seconds": lifetime,
        "all_ready_seconds": done - started,
        "tokens_per_second": size / (done - started),
        "burst_token_requests": burst_requests,
        "round_token_requests": round_requests,
        "round_spread_seconds": max(taken) - min(taken),
    }
