"""The rows of the benchmark. Each measures one thing on a namespace and an operator of its own.

Times are Unix times (`time.time()`) wherever they are compared with the
audit log, the emulator's request log or watch events; durations of the
benchmark's own calls use `time.perf_counter()`.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import secrets
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from benchmark.kube import Api, AuditLog, by_kind, operator_kubeconfig, secrets_path, tokens_path
from benchmark.process import Operator
from benchmark.watch import TokenWatch
from egain_token_operator.controller.workers import FIRST_LOOKS_DONE
from testground.controlplane import ControlPlane
from testground.emulator import EgainEmulator, FaultKind

TENANT = "TMPRODB88619984"
SCOPE = "knowledge.portalmgr.manage"
CREDENTIALS = "egain-client"
CREATE_CONCURRENCY = 32  # how many objects the benchmark creates at a time
REFRESH_JITTER = 0.1  # the operator's default --refresh-jitter
ROW_LABEL = "bench.egain.cloud/row"  # which row an EgainToken is of, for --selector
SHARD_LABEL = "bench.egain.cloud/shard"


@dataclass(frozen=True)
class Settings:
    """What one run measures, and at what size."""

    tokens: int = 5000
    trials: int = 50
    idle_seconds: float = 60.0
    settle_seconds: float = 10.0
    max_concurrent_requests: int = 16
    unrelated_kib: int = 64
    storm_tokens: int = 1000
    storm_lead: float = 20.0
    storm_latency: float = 0.05
    short_tokens: int = 100
    short_lifetime: int = 30
    short_seconds: float = 120.0
    timeout: float = 900.0
    # i) the synthetic per-event row: fleet sizes, in EgainTokens.
    event_sizes: tuple[int, ...] = (1000, 5000, 10000)
    # j) one burst spread over namespaces: watched cluster-wide, and listed.
    spread_tokens: int = 1000
    spread_namespaces: int = 100
    spread_listed: int = 10
    # k) EgainTokens in groups of identical requests, and the tokens' lifetime.
    shared_tokens: int = 1000
    shared_groups: int = 10
    shared_lifetime: int = 60
    # l) short-lived tokens refreshed faster than a replica can: its capacity.
    capacity_tokens: int = 1000
    capacity_lifetime: int = 12
    capacity_seconds: float = 60.0

    @property
    def burst_sizes(self) -> list[int]:
        """1,000, 5,000 and `tokens`, those up to `tokens`."""
        return sorted({min(size, self.tokens) for size in (1000, 5000, self.tokens)})

    @property
    def storm_sizes(self) -> list[int]:
        """EgainTokens in the storms: `storm_tokens` and `tokens`."""
        return sorted({min(self.storm_tokens, self.tokens), self.tokens})

    @property
    def spread_size(self) -> int:
        """EgainTokens in each spread burst."""
        return min(self.spread_tokens, self.tokens)

    @property
    def shared_size(self) -> int:
        """EgainTokens in the shared row."""
        return min(self.shared_tokens, self.tokens)

    @property
    def capacity_size(self) -> int:
        """EgainTokens in the capacity row."""
        return min(self.capacity_tokens, self.tokens)

    @property
    def short_size(self) -> int:
        """EgainTokens in the short-lifetime run."""
        return min(self.short_tokens, self.tokens)


def percentile(values: Iterable[float], percent: int) -> float:
    """The `percent`th percentile (inclusive method; the value itself for one value)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[percent - 1]


def rfc3339(moment: datetime) -> str:
    """`moment` as status times are written: whole seconds, UTC, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Tenant:
    """A namespace with a registered eGain client and its credentials Secret."""

    namespace: str
    client_id: str
    client_secret: str


@dataclass
class Running:
    """An operator serving a namespace, and the watch on its EgainTokens."""

    tenant: Tenant
    operator: Operator
    watch: TokenWatch


class Bench:
    """Runs the rows; remembers every operator and watch it started, to stop them all."""

    def __init__(
        self,
        plane: ControlPlane,
        emulator: EgainEmulator,
        api: Api,
        state_dir: Path,
        settings: Settings,
    ) -> None:
        self.plane, self.emulator, self.api, self.settings = plane, emulator, api, settings
        self.state_dir = state_dir
        self.audit = AuditLog(plane.audit_log)
        self.kubeconfig = operator_kubeconfig(plane, state_dir)
        self.run_id = secrets.token_hex(3)
        self.operators: list[Operator] = []
        self.watches: list[TokenWatch] = []
        self.issue_rate: float | None = None  # tokens/s of the first burst

    async def close(self) -> None:
        """Stop every watch and operator started."""
        for watch in self.watches:
            await watch.stop()
        for operator in self.operators:
            operator.stop()

    # --- set-up helpers -------------------------------------------------------

    async def tenant(
        self, label: str, lifetime: int = 3600, expires_at: float | None = None
    ) -> Tenant:
        """A new namespace, client and credentials Secret."""
        tenant = Tenant(f"bench-{label}-{self.run_id}", f"bench-{label}", secrets.token_urlsafe(32))
        self.emulator.register_client(
            tenant.client_id, tenant.client_secret, TENANT, [SCOPE], lifetime, expires_at=expires_at
        )
        await self.namespace(tenant.namespace)
        await self.credentials(tenant.namespace, tenant)
        return tenant

    async def namespace(self, name: str) -> None:
        """Create the namespace `name`."""
        await self.api.create(
            "/api/v1/namespaces", {"metadata": {"name": name}, "apiVersion": "v1"}
        )

    async def credentials(self, namespace: str, client: Tenant, name: str = CREDENTIALS) -> None:
        """A Secret `name` in `namespace` holding `client`'s id and secret."""
        await self.api.create(
            secrets_path(namespace),
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name},
                "stringData": {
                    "client_id": client.client_id,
                    "client_secret": client.client_secret,
                },
            },
        )

    def token_body(
        self, name: str, labels: dict[str, str] | None = None, **spec: Any
    ) -> dict[str, Any]:
        """An EgainToken of the ClientApp flow, with `spec` on top."""
        return {
            "apiVersion": "egain.cloud/v1alpha1",
            "kind": "EgainToken",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {
                "tokenUrl": self.emulator.client_app_token_url(TENANT),
                "scopes": [SCOPE],
                "credentialsSecretRef": {"name": CREDENTIALS},
                # Every token of a row makes the same request: shared, they would
                # cost one request for all, and the rows measure each one's own.
                "tokenSharing": "Disabled",
                **spec,
            },
        }

    async def create_tokens(
        self,
        tenant: Tenant,
        names: Iterable[str],
        labels: Callable[[int], dict[str, str]] | None = None,
        **spec: Any,
    ) -> None:
        """Create EgainTokens, `CREATE_CONCURRENCY` at a time; the `i`th has `labels(i)`."""
        bodies = (
            self.token_body(name, labels(i) if labels else None, **spec)
            for i, name in enumerate(names)
        )
        await self.api.create_all(tokens_path(tenant.namespace), bodies, CREATE_CONCURRENCY)

    def operator(self, namespaces: Iterable[str], *flags: str) -> Operator:
        """An operator (not started) serving `namespaces` (every namespace if none)."""
        operator = Operator(
            self.plane,
            self.kubeconfig,
            self.state_dir / f"operator-{len(self.operators)}.log",
            [
                *(flag for namespace in namespaces for flag in ("--namespace", namespace)),
                "--allowed-token-hosts", f"localhost:{self.emulator.port}",
                "--ca-bundle", str(self.emulator.ca_file),
                "--max-concurrent-requests", str(self.settings.max_concurrent_requests),
                *flags,
            ],
        )  # fmt: skip
        self.operators.append(operator)
        return operator

    async def serve(self, tenant: Tenant, *flags: str) -> Running:
        """Start an operator for `tenant` and a watch on its EgainTokens."""
        operator = self.operator([tenant.namespace], *flags)
        operator.start()
        await operator.wait_healthy()
        watch = TokenWatch(self.api, tenant.namespace)
        self.watches.append(watch)
        await watch.start()
        return Running(tenant, operator, watch)

    async def stop(self, running: Running) -> None:
        """Stop `running`'s operator and watch."""
        running.operator.stop()
        await running.watch.stop()

    def token_requests(self, tenant: Tenant) -> int:
        """Token requests of `tenant`'s client since the emulator's last reset."""
        return len(self.emulator.requests(tenant.client_id))

    # --- a) the floor ---------------------------------------------------------

    async def floor(self) -> dict[str, Any]:
        """What one issue costs a plain async client: token POST, Secret create, status patch."""
        settings = self.settings
        tenant = await self.tenant("floor")  # no operator serves it
        names = [f"floor-{i}" for i in range(settings.trials + settings.tokens + 1)]
        await self.create_tokens(tenant, names)
        form = {
            "grant_type": "client_credentials",
            "client_id": tenant.client_id,
            "client_secret": tenant.client_secret,
            "scope": SCOPE,
        }
        limits = httpx.Limits(max_connections=settings.max_concurrent_requests)
        verify = self.emulator.client_ssl_context()
        async with httpx.AsyncClient(verify=verify, timeout=30.0, limits=limits) as egain:

            async def issue(name: str) -> tuple[float, float, float]:
                """The durations of the token POST, the Secret create and the status patch."""
                started = time.perf_counter()
                sent = datetime.now(UTC)
                response = await egain.post(self.emulator.client_app_token_url(TENANT), data=form)
                response.raise_for_status()
                answer = response.json()
                expires = rfc3339(sent + timedelta(seconds=int(answer["expires_in"])))
                posted = time.perf_counter()
                await self.api.create(
                    secrets_path(tenant.namespace), floor_secret(name, answer, expires)
                )
                created = time.perf_counter()
                await self.api.merge_patch(
                    f"{tokens_path(tenant.namespace)}/{name}/status",
                    {"status": floor_status(name, rfc3339(sent), expires)},
                )
                return posted - started, created - posted, time.perf_counter() - created

            await issue(names[-1])  # opens the connections
            parts = [await issue(name) for name in names[: settings.trials]]
            limit = asyncio.Semaphore(settings.max_concurrent_requests)

            async def limited(name: str) -> None:
                async with limit:
                    await issue(name)

            started = time.perf_counter()
            await asyncio.gather(*(limited(name) for name in names[settings.trials : -1]))
            elapsed = time.perf_counter() - started
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
            "throughput_seconds": elapsed,
            "tokens_per_second": settings.tokens / elapsed,
            "concurrency": settings.max_concurrent_requests,
        }

    # --- b) time to Ready -----------------------------------------------------

    async def time_to_ready(self) -> dict[str, Any]:
        """One new EgainToken at a time, from its create request to the watch seeing it Ready."""
        tenant = await self.tenant("ttr")
        running = await self.serve(tenant)
        durations = []
        for trial in range(-1, self.settings.trials):  # -1: a warm-up, not counted
            name = f"ttr-{trial + 1}"
            started = time.time()
            await self.create_tokens(tenant, [name])
            await running.watch.until(ready(running.watch, name), f"{name} Ready", 60, poll=0.002)
            ready_at = running.watch.tokens[name].ready_at
            assert ready_at is not None
            if trial >= 0:
                durations.append(ready_at - started)
        await self.stop(running)
        return {
            "trials": len(durations),
            "p50_ms": percentile(durations, 50) * 1000,
            "p95_ms": percentile(durations, 95) * 1000,
            "max_ms": max(durations) * 1000,
        }

    # --- c) bursts ------------------------------------------------------------

    async def burst(self, size: int) -> tuple[dict[str, Any], Running]:
        """`size` EgainTokens created at once, until all are Ready. The operator keeps running."""
        tenant = await self.tenant(f"burst-{size}")
        running = await self.serve(tenant)
        self.emulator.reset()
        operator = running.operator
        rss_before, cpu_before = operator.rss_mib(), operator.cpu_seconds()
        started = time.time()
        await self.create_tokens(tenant, (f"token-{i}" for i in range(size)))
        created = time.time() - started
        watch = running.watch
        done = await watch.all_ready(size, self.settings.timeout)
        await asyncio.sleep(2.0)  # Events are posted in the background
        cpu = operator.cpu_seconds() - cpu_before
        rss_after = operator.rss_mib()
        requests = self.audit.between(started)
        all_ready = done - started
        if self.issue_rate is None:
            self.issue_rate = size / all_ready
        return {
            "tokens": size,
            "created_seconds": created,
            "all_ready_seconds": all_ready,
            "tokens_per_second": size / all_ready,
            "token_requests": self.token_requests(tenant),
            "peak_concurrent_token_requests": self.emulator.concurrency().peak,
            "api_requests": len(requests),
            "api_requests_per_token": len(requests) / size,
            "api_requests_by_kind": by_kind(requests),
            "cpu_seconds": cpu,
            "cpu_ms_per_token": cpu / size * 1000,
            "rss_before_mib": rss_before,
            "rss_after_mib": rss_after,
            "rss_per_token_kib": (rss_after - rss_before) * 1024 / size,
        }, running

    # --- d) steady state ------------------------------------------------------

    async def idle(self, running: Running) -> dict[str, Any]:
        """The operator left alone with valid tokens for the idle window."""
        self.emulator.reset()
        operator = running.operator
        cpu, started = operator.cpu_seconds(), time.time()
        await asyncio.sleep(self.settings.idle_seconds)
        elapsed = time.time() - started
        requests = self.audit.between(started, started + elapsed)
        return {
            "tokens": len(running.watch.tokens),
            "idle_seconds": elapsed,
            "rss_mib": operator.rss_mib(),
            "cpu_percent": (operator.cpu_seconds() - cpu) / elapsed * 100,
            "api_requests": len(requests),
            "api_requests_by_kind": by_kind(requests),
            "token_requests": self.token_requests(running.tenant),
        }

    # --- e) restart -----------------------------------------------------------

    async def restart(self, running: Running) -> tuple[dict[str, Any], Running]:
        """Stop the operator and start another: until it says every EgainToken had its
        first look (a status that is current is not written again, so no write can tell)."""
        running.operator.stop()
        tenant, watch = running.tenant, running.watch
        self.emulator.reset()
        names = set(watch.tokens)
        operator = self.operator([tenant.namespace])
        started = operator.start()
        await operator.wait_healthy()
        healthy = time.time() - started
        line = await operator.wait_for_line(FIRST_LOOKS_DONE, self.settings.timeout)
        end = time.time()
        looked = re.search(r"\((\d+) looked at", line) if line is not None else None
        requests = self.audit.between(started, end)
        status_writes = [
            r
            for r in requests
            if r.resource == "egaintokens/status" and r.verb in ("patch", "update")
        ]
        await asyncio.sleep(self.settings.settle_seconds)
        return {
            "tokens": len(names),
            "looked_at": int(looked.group(1)) if looked else None,
            "healthy_seconds": healthy,
            "all_looked_at_seconds": end - started if line is not None else None,
            "status_writes": len(status_writes),
            "token_requests": self.token_requests(tenant),
            "api_requests": len(requests),
            "api_requests_by_kind": by_kind(requests),
            "rss_mib": operator.rss_mib(),
            "peak_rss_mib": operator.peak_rss_mib(),
        }, Running(tenant, operator, watch)

    # --- g) unrelated Secrets -------------------------------------------------

    async def unrelated_secrets(self, running: Running) -> tuple[dict[str, Any], Running]:
        """`tokens` unrelated Secrets in the watched namespace, then e) and d) again."""
        settings = self.settings
        blob = base64.b64encode(os.urandom(settings.unrelated_kib * 1024)).decode()
        started = time.time()
        await self.api.create_all(
            secrets_path(running.tenant.namespace),
            (unrelated_secret(f"unrelated-{i}", blob) for i in range(settings.tokens)),
            CREATE_CONCURRENCY // 2,
        )
        created = time.time() - started
        await asyncio.sleep(settings.settle_seconds)
        restarted, running = await self.restart(running)
        idle = await self.idle(running)
        return {
            "secrets": settings.tokens,
            "secret_kib": settings.unrelated_kib,
            "created_seconds": created,
            "restart": restarted,
            "idle": idle,
        }, running

    # --- f) storm -------------------------------------------------------------

    async def storm(self, size: int) -> dict[str, Any]:
        """`size` tokens that all expire at one instant, refreshed `storm_lead` before it."""
        settings = self.settings
        lead = settings.storm_lead
        budget = 3 + 1.5 * size / (self.issue_rate or 20.0)  # time to issue them all
        expires_at = time.time() + budget + lead * (1 + REFRESH_JITTER) + 2
        tenant = await self.tenant(f"storm-{size}", expires_at=expires_at)
        # Without the allowance the refresh is at expiry - refreshBefore - jitter:
        # the same instant (within the jitter) for every token.
        running = await self.serve(tenant, "--propagation-allowance", "0")
        watch = running.watch
        await self.create_tokens(
            tenant, (f"token-{i}" for i in range(size)), refreshBefore=f"{lead:.0f}s"
        )
        await watch.all_ready(size, settings.timeout)
        issued_in_time = time.time() < expires_at - lead * (1 + REFRESH_JITTER)
        self.emulator.update_client(tenant.client_id, expires_at=None)  # new ones live 1 h
        self.emulator.reset()
        if settings.storm_latency > 0:
            self.emulator.set_fault(
                FaultKind.LATENCY,
                count=None,
                client_id=tenant.client_id,
                delay=settings.storm_latency,
            )
        await watch.until(
            lambda: all(len(s.issues) >= 2 for s in watch.tokens.values()),
            f"{size} EgainTokens refreshed",
            expires_at - time.time() + settings.timeout,
            poll=0.25,
        )
        refreshed = max(s.issues[1].seen_at for s in watch.tokens.values())
        instants = sorted(r.wall_time.timestamp() for r in self.emulator.requests(tenant.client_id))
        peak = self.emulator.concurrency().peak
        self.emulator.reset()
        await self.stop(running)
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

    # --- h) requests per token-hour -------------------------------------------

    async def token_hour(self) -> dict[str, Any]:
        """Short-lived tokens refreshed over a run, against a fixed-interval refresher."""
        settings, size = self.settings, self.settings.short_size
        lifetime = settings.short_lifetime
        tenant = await self.tenant("short", lifetime=lifetime)
        running = await self.serve(tenant)  # the operator's defaults
        watch = running.watch
        await self.create_tokens(tenant, (f"token-{i}" for i in range(size)))
        await watch.all_ready(size, settings.timeout)
        self.emulator.reset()
        started = time.time()
        await asyncio.sleep(settings.short_seconds)
        elapsed = time.time() - started
        requests = self.audit.between(started, started + elapsed)
        token_requests = self.token_requests(tenant)
        await self.stop(running)
        # What was left of each replaced token when its successor was requested.
        remaining = [
            (parse(old.expires_at) - parse(new.issued_at)).total_seconds()
            for state in watch.tokens.values()
            for old, new in zip(state.issues, state.issues[1:], strict=False)
        ]
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

    # --- j) spread over namespaces --------------------------------------------

    async def spread(self, listed: bool) -> dict[str, Any]:
        """A burst of `spread_tokens` over namespaces: `spread_namespaces` served by an
        operator watching every namespace, or `spread_listed` named by `--namespace`."""
        settings, size = self.settings, self.settings.spread_size
        count = min(settings.spread_listed if listed else settings.spread_namespaces, size)
        label = "spread-listed" if listed else "spread-wide"
        client = Tenant("", f"bench-{label}", secrets.token_urlsafe(32))
        self.emulator.register_client(client.client_id, client.client_secret, TENANT, [SCOPE])
        namespaces = [f"bench-{label}-{i}-{self.run_id}" for i in range(count)]
        for namespace in namespaces:
            await self.namespace(namespace)
            await self.credentials(namespace, client)
        # The selector keeps the cluster-wide one to this row's EgainTokens.
        selector = f"{ROW_LABEL}={label}"
        operator = self.operator(namespaces if listed else [], "--selector", selector)
        started = operator.start()
        await operator.wait_healthy()
        if await operator.wait_for_line(FIRST_LOOKS_DONE, settings.timeout) is None:
            raise TimeoutError(f"{label}: the operator's first lists not done")
        listed_after = time.time() - started
        watch = TokenWatch(self.api, None, selector)
        self.watches.append(watch)
        await watch.start()
        self.emulator.reset()
        cpu_before = operator.cpu_seconds()
        started = time.time()
        await self.api.create_each(
            (
                (
                    tokens_path(namespaces[i % count]),
                    self.token_body(f"{label}-{i}", {ROW_LABEL: label}),
                )
                for i in range(size)
            ),
            CREATE_CONCURRENCY,
        )
        done = await watch.all_ready(size, settings.timeout)
        await asyncio.sleep(2.0)  # Events are posted in the background
        cpu = operator.cpu_seconds() - cpu_before
        rss = operator.rss_mib()
        requests = self.audit.between(started)
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
            "token_requests": self.token_requests(client),
            "api_requests": len(requests),
            "api_requests_by_kind": by_kind(requests),
            "rss_mib": rss,
        }

    # --- k) shared tokens -----------------------------------------------------

    async def shared(self) -> dict[str, Any]:
        """`shared_tokens` EgainTokens in `shared_groups` groups of identical requests:
        the token requests of the burst and of one refresh round."""
        settings, size = self.settings, self.settings.shared_size
        groups = min(settings.shared_groups, size)
        lifetime = settings.shared_lifetime
        tenant = await self.tenant("shared", lifetime=lifetime)
        clients = [tenant]
        for group in range(1, groups):
            client = Tenant(tenant.namespace, f"bench-shared-{group}", secrets.token_urlsafe(32))
            self.emulator.register_client(
                client.client_id, client.client_secret, TENANT, [SCOPE], lifetime
            )
            await self.credentials(tenant.namespace, client, f"{CREDENTIALS}-{group}")
            clients.append(client)

        def requests() -> int:
            return sum(self.token_requests(client) for client in clients)

        running = await self.serve(tenant)
        watch = running.watch
        self.emulator.reset()
        started = time.time()
        await self.api.create_all(
            tokens_path(tenant.namespace),
            (
                self.token_body(
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
        await watch.until(
            lambda: all(len(s.issues) >= 2 for s in watch.tokens.values()),
            f"{size} EgainTokens refreshed",
            lifetime + settings.timeout,
            poll=0.25,
        )
        round_requests = requests() - burst_requests
        taken = [s.issues[1].seen_at for s in watch.tokens.values()]
        await self.stop(running)
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

    # --- l) capacity ----------------------------------------------------------

    async def capacity(self, shards: int) -> dict[str, Any]:
        """Tokens refreshed more often than one replica can: the refreshes per second
        it sustains, split over `shards` operators by `--selector`."""
        settings, size = self.settings, self.settings.capacity_size
        lifetime = settings.capacity_lifetime
        tenant = await self.tenant(f"capacity-{shards}", lifetime=lifetime)
        letters = "abcdefghijklmnopqrstuvwxyz"[:shards]
        # Without the allowance a token is refreshed a third of its lifetime
        # (less the jitter) before it expires.
        flags = ("--propagation-allowance", "0", "--selector")
        operators = [
            self.operator([tenant.namespace], *flags, f"{SHARD_LABEL}={x}") for x in letters
        ]
        for operator in operators:
            operator.start()
        for operator in operators:
            await operator.wait_healthy()
        watch = TokenWatch(self.api, tenant.namespace)
        self.watches.append(watch)
        await watch.start()
        self.emulator.reset()
        await self.create_tokens(
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
            for r in self.emulator.requests(tenant.client_id)
            if started <= r.wall_time.timestamp() < ended
        ]
        # What was left of each replaced token when the watch saw its successor.
        left = [
            (parse(old.expires_at) - parse(new.issued_at)).total_seconds()
            for state in watch.tokens.values()
            for old, new in zip(state.issues, state.issues[1:], strict=False)
            if started <= new.seen_at < ended
        ]
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


def ready(watch: TokenWatch, name: str) -> Callable[[], bool]:
    """Whether the watch has seen `name` Ready."""

    def check() -> bool:
        state = watch.tokens.get(name)
        return state is not None and state.ready_at is not None

    return check


def parse(text: str) -> datetime:
    """A status time."""
    return datetime.fromisoformat(text)


def floor_secret(name: str, answer: dict[str, Any], expires: str) -> dict[str, Any]:
    """A Secret like the operator's, for the floor."""
    token_type = str(answer.get("token_type", "Bearer"))
    values = {
        "access_token": answer["access_token"],
        "token_type": token_type,
        "authorization": f"{token_type} {answer['access_token']}",
        "expires_at": expires,
        "scope": answer.get("scope", SCOPE),
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"{name}-token", "labels": {"egain.cloud/token": name}},
        "type": "Opaque",
        "data": {k: base64.b64encode(str(v).encode()).decode() for k, v in values.items()},
    }


def floor_status(name: str, issued: str, expires: str) -> dict[str, Any]:
    """A status like the operator's, for the floor."""
    return {
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "TokenIssued",
                "message": f"token valid until {expires}",
                "lastTransitionTime": issued,
                "observedGeneration": 1,
            }
        ],
        "secretName": f"{name}-token",
        "tokenType": "Bearer",
        "scopes": [SCOPE],
        "issuedAt": issued,
        "expiresAt": expires,
        "consecutiveFailures": 0,
    }


def unrelated_secret(name: str, blob: str) -> dict[str, Any]:
    """A Secret the operator has nothing to do with, shaped like a Helm release's."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {"owner": "helm", "name": name, "status": "deployed"}},
        "type": "helm.sh/release.v1",
        "data": {"release": blob},
    }
