"""kopf wiring: start-up and shutdown. No decisions here.

kopf runs the process (login, signals, the liveness endpoint); the watches
are the operator's own (`watch.py`), so that Secrets can be watched by label
and as metadata only, and EgainTokens by the `--selector` of a shard, on the
API server's side. kopf itself watches nothing.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from datetime import timedelta
from typing import Any

import kopf
from prometheus_client import start_http_server

from egain_token_operator import metrics
from egain_token_operator.addresses import AddressGuard
from egain_token_operator.egain import EgainClient
from egain_token_operator.events import EventRecorder
from egain_token_operator.kube import Collection, Kube, load_api_client
from egain_token_operator.leader import LeaderElector
from egain_token_operator.reconcile import Reconciler
from egain_token_operator.restarts import RolloutRestarter
from egain_token_operator.secretcache import SecretCache
from egain_token_operator.settings import Settings, retry_policy
from egain_token_operator.watch import Watch
from egain_token_operator.workers import WorkerRegistry

registry = kopf.OperatorRegistry()


@kopf.on.login(registry=registry)
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Credentials found the usual way: in-cluster, else KUBECONFIG, else ~/.kube/config."""
    return kopf.login_via_client(**kwargs)


@kopf.on.startup(registry=registry)
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Configure kopf and build the worker registry with its clients."""
    config: Settings = memo.config
    # Resources and namespaces are fixed at start-up: no CRD or namespace
    # watching, hence no RBAC for them.
    settings.scanning.disabled = True
    # Events are posted by the operator itself (events.py); kopf's log lines stay logs.
    settings.posting.level = logging.WARNING
    settings.networking.request_timeout = 60
    kube = Kube(await load_api_client())
    egain = EgainClient(
        allowed_hosts=config.allowed_token_hosts,
        ca_bundle=config.ca_bundle,
        timeout=config.http_timeout,
        max_concurrent_requests=config.max_concurrent_requests,
        default_lifetime=config.default_token_lifetime,
        # Token requests never go to the API server (nor to link-local addresses).
        guard=AddressGuard(api_server=kube.server),
    )
    restarter = RolloutRestarter(
        kube,
        timedelta(seconds=config.rollout_restart_min_interval),
        enabled=config.rollout_restarts,
    )
    memo.kube, memo.egain, memo.restarter = kube, egain, restarter
    memo.events = EventRecorder(kube)
    # Secret changes wake the EgainTokens that read or write them (set once the
    # registry exists, below; no watch runs before then).
    secrets_cache = SecretCache(
        kube, config.namespaces, lambda change, body: memo.workers.observe_secret(change, body)
    )
    reconciler = Reconciler(
        kube=kube,
        secrets=secrets_cache,
        egain=egain,
        policy=retry_policy(config),
        restarter=restarter,
        post_event=memo.events,
    )
    memo.workers = WorkerRegistry(
        reconciler,
        # With leader election, workers run only while this replica leads.
        active=config.leader_election_lease is None,
    )
    memo.elector, memo.election = None, None
    if config.leader_election_lease is not None:
        memo.elector = LeaderElector(
            kube,
            config.leader_election_lease,
            f"{socket.gethostname()}-{secrets.token_hex(4)}",
            on_started=memo.workers.activate,
            on_stopped=memo.workers.deactivate,
        )
        memo.election = asyncio.create_task(memo.elector.run(), name="leader election")
    else:
        metrics.LEADER.set(1)
    token_watches = [
        Watch(
            kube,
            Collection("egaintokens", namespace, config.selector or None),
            memo.workers.observe_token,
        )
        for namespace in config.namespaces or (None,)
    ]
    memo.watches = [
        asyncio.create_task(watch.run(), name=f"watch {watch.collection}")
        for watch in secrets_cache.watches + token_watches
    ]
    start_http_server(config.metrics_address.port, config.metrics_address.host)


@kopf.on.cleanup(registry=registry)
async def stop(memo: kopf.Memo, **_: Any) -> None:
    """Stop the watches and every worker, hand the Lease over, and close the clients."""
    for task in memo.watches:
        task.cancel()
    await asyncio.gather(*memo.watches, return_exceptions=True)
    if memo.election is not None:
        memo.election.cancel()
        await asyncio.gather(memo.election, return_exceptions=True)
        await memo.elector.release()
    await memo.workers.stop()
    await memo.restarter.stop()
    await memo.events.stop()
    await memo.egain.aclose()
    await memo.kube.close()
