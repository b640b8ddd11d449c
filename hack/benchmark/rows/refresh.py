"""Rows f), h) and l): keeping tokens fresh, all at once, over time, and at capacity."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from benchmark.figures import percentile
from benchmark.ground import Ground
from benchmark.kube import by_kind
from testground.emulator import FaultKind

REFRESH_JITTER = 0.1  # the operator's default --refresh-jitter
SHARD_LABEL = "bench.egain.cloud/shard"
_FIRST_ISSUE_RATE = 20.0  # tokens/s assumed when no burst measured it


async def storm(ground: Ground, size: int, issue_rate: float | None) -> dict[str, Any]:
    """f) `size` tokens that all expire at one instant, refreshed `storm_lead` before it.

    `issue_rate` (tokens/s, of the first burst) sets how long issuing them all may take.
    """
    settings, emulator = ground.settings, ground.emulator
    lead = settings.storm_lead
    budget = 3 + 1.5 * size / (issue_rate or _FIRST_ISSUE_RATE)  # time to issue them all
    expires_at = time.time() + budget + lead * (1 + REFRESH_JITTER) + 2
    tenant = await ground.tenant(f"storm-{size}", expires_at=expires_at)
    # Without the allowance the refresh is at expiry - refreshBefore - jitter:
    # the same instant (within the jitter) for every token.
    running = await ground.serve(tenant, "--propagation-allowance", "0")
    watch = running.watch
    await ground.create_tokens(
        tenant, (f"token-{i}" for i in range(size)), refreshBefore=f"{lead:.0f}s"
    )
    await watch.all_ready(size, settings.timeout)
    issued_in_time = time.time() < expires_at - lead * (1 + REFRESH_JITTER)
    emulator.update_client(tenant.client_id, expires_at=None)  # new ones live 1 h
    emulator.reset()
    if settings.storm_latency > 0:
        emulator.set_fault(
            FaultKind.LATENCY,
            count=None,
            client_id=tenant.client_id,
            delay=settings.storm_latency,
        )
    await watch.all_refreshed(expires_at - time.time() + settings.timeout)
    refreshed = max(s.issues[1].seen_at for s in watch.tokens.values())
    instants = sorted(r.wall_time.timestamp() for r in emulator.requests(tenant.client_id))
    peak = emulator.concurrency().peak
    emulator.reset()
    await ground.stop(running)
    return {
        "tokens": size,
        "issued_before_the_storm": issued_in_time,
        "token_requests": len(instants),
        "peak_concurrent_token_requests": peak,
        "max_concurrent_requests": settings.max_concurrent_requests,
        "latency_ms": settings.storm_latency * 1000,
        "due_window_seconds": lead * REFRESH_JITTER,
        "refresh_spread_seconds": instants[-1] - instants[0],
        "refresh_p5_p95_seconds": percentile(instants, 95) - percentile(instants, 5),
        "all_refreshed_seconds": refreshed - instants[0],
        # No refresh can end sooner: the due instants spread over the jitter, and
        # the limit lets `max_concurrent_requests` answers wait out the latency at a time.
        "bound_seconds": max(
            lead * REFRESH_JITTER,
            size * settings.storm_latency / settings.max_concurrent_requests,
        ),
    }


async def token_hour(ground: Ground) -> dict[str, Any]:
    """h) Short-lived tokens refreshed over a run, against a fixed-interval refresher."""
    settings, size = ground.settings, ground.settings.short_size
    lifetime = settings.short_lifetime
    tenant = await ground.tenant("short", lifetime=lifetime)
    running = await ground.serve(tenant)  # the operator's defaults
    watch = running.watch
    await ground.create_tokens(tenant, (f"token-{i}" for i in range(size)))
    await watch.all_ready(size, settings.timeout)
    await running.operator.events_posted(settings.timeout)  # the first tokens' Events
    ground.emulator.reset()
    started = time.time()
    await asyncio.sleep(settings.short_seconds)
    elapsed = time.time() - started
    requests = ground.audit.between(started, started + elapsed)
    token_requests = ground.token_requests(tenant)
    await ground.stop(running)
    remaining = [replaced.left_seconds for replaced in watch.replacements()]
    token_hours = size * elapsed / 3600
    rate = token_requests / token_hours
    least = min(remaining, default=0.0)
    interval = lifetime - least  # a fixed interval leaving at least as much
    fixed_rate = 3600 / interval if interval > 0 else float("inf")
    return {
        "tokens": size,
        "lifetime_seconds": lifetime,
        "run_seconds": elapsed,
        "token_requests": token_requests,
        "requests_per_token_hour": rate,
        "refreshes_seen": len(remaining),
        "min_remaining_seconds": least,
        "mean_remaining_seconds": statistics.fmean(remaining) if remaining else None,
        "fixed_interval_seconds": interval,
        "fixed_interval_requests_per_token_hour": fixed_rate,
        "api_requests": len(requests),
        "api_requests_per_refresh": len(requests) / token_requests if token_requests else None,
        "api_requests_by_kind": by_kind(requests),
    }


async def capacity(ground: Ground, shards: int) -> dict[str, Any]:
    """l) Tokens refreshed more often than one replica can: the refreshes per second
    it sustains, split over `shards` operators by `--selector`."""
    settings, size = ground.settings, ground.settings.capacity_size
    lifetime = settings.capacity_lifetime
    tenant = await ground.tenant(f"capacity-{shards}", lifetime=lifetime)
    letters = "abcdefghijklmnopqrstuvwxyz"[:shards]
    # Without the allowance a token is refreshed a third of its lifetime
    # (less the jitter) before it expires.
    flags = ("--propagation-allowance", "0", "--selector")
    operators = [ground.operator([tenant.namespace], *flags, f"{SHARD_LABEL}={x}") for x in letters]
    for operator in operators:
        operator.launch()
    for operator in operators:
        await operator.wait_healthy()
    watch = await ground.watch(tenant.namespace)
    ground.emulator.reset()
    await ground.create_tokens(
        tenant,
        (f"token-{i}" for i in range(size)),
        labels=lambda i: {SHARD_LABEL: letters[i % shards]},
    )
    await watch.all_ready(size, settings.timeout)
    await asyncio.sleep(lifetime)  # every token on its refresh schedule
    cpu_before = sum(operator.cpu_seconds() for operator in operators)
    started = time.time()
    await asyncio.sleep(settings.capacity_seconds)
    ended = time.time()
    cpu = sum(operator.cpu_seconds() for operator in operators) - cpu_before
    for operator in operators:
        operator.stop()
    await watch.stop()
    refreshes = [
        r
        for r in ground.emulator.requests(tenant.client_id)
        if started <= r.wall_time.timestamp() < ended
    ]
    # What was left of each replaced token when the watch saw its successor.
    left = [r.left_seconds for r in watch.replacements() if started <= r.seen_at < ended]
    window = ended - started
    # A token is due every 2/3 of its lifetime less half the jitter on average.
    interval = lifetime * (2 / 3 - REFRESH_JITTER / 3 / 2)
    return {
        "tokens": size,
        "shards": shards,
        "lifetime_seconds": lifetime,
        "window_seconds": window,
        "demand_per_second": size / interval,
        "refreshes_per_second": len(refreshes) / window,
        "cpu_cores": cpu / window,
        "refreshes_seen": len(left),
        "min_left_seconds": min(left, default=0.0),
        "median_left_seconds": statistics.median(left) if left else None,
        "refreshed_after_expiry": sum(value <= 0 for value in left),
    }
