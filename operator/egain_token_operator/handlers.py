"""kopf wiring: start-up and shutdown. No decisions here.

kopf runs the process (login, signals, the liveness endpoint); the watches
are the operator's own (`watch.py`), so that Secrets can be watched by label
and as metadata only, and EgainTokens by the `--selector` of a shard, on the
API server's side. kopf itself watches nothing.

The watches of the served namespaces: EgainTokens, Secrets, EgainClients;
across the cluster: ClusterEgainClients and namespaces (metadata only); and
the Secrets of the cluster resource namespace, served or not, where
ClusterEgainClients' credentials are. The managed Secrets' watches start
once the EgainTokens are listed: the Secrets they need are known by then.
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
from egain_token_operator.controller.clientstatus import ClientStatusController
from egain_token_operator.controller.reconcile import Reconciler
from egain_token_operator.controller.restarts import RolloutRestarter
from egain_token_operator.controller.workers import WorkerRegistry
from egain_token_operator.egain.addresses import AddressGuard
from egain_token_operator.egain.transport import EgainClient
from egain_token_operator.kube.adapter import Kube
from egain_token_operator.kube.api import Collection
from egain_token_operator.kube.clientcache import ClientCache
from egain_token_operator.kube.config import load_api_client
from egain_token_operator.kube.events import EventRecorder
from egain_token_operator.kube.leader import LeaderElector
from egain_token_operator.kube.secretcache import SecretCache
from egain_token_operator.kube.watch import Watch
from egain_token_operator.settings import Settings, retry_policy

registry = kopf.OperatorRegistry()


@kopf.on.login(registry=registry)
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Credentials found the usual way: in-cluster, else KUBECONFIG, else ~/.kube/config."""
    return kopf.login_via_client(**kwargs)


@kopf.on.startup(registry=registry)
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Configure kopf and build the worker registry with its clients."""
    config: Settings = memo.config
    # Resources are fixed at start-up: no CRD watching, hence no RBAC for it;
    # kopf's own namespace watching is off too (the operator's is in clientcache.py).
    settings.scanning.disabled = True
    # Events are posted by the operator itself (events.py); kopf's log lines stay logs.
    settings.posting.level = logging.WARNING
    settings.networking.request_timeout = 60
    api_client, own_namespace = await load_api_client()
    kube = Kube(api_client)
    cluster_namespace = config.cluster_resource_namespace or own_namespace
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
    memo.events = EventRecorder(kube, cluster_namespace=cluster_namespace)
    # Secret, client and namespace changes wake the EgainTokens that depend on
    # them (set once the registry exists, below; no watch runs before then).
    # Limited to namespaces (--namespace), the operator serves no
    # ClusterEgainClient: those need cluster-wide reads (the chart grants them
    # only to a cluster-wide release), so no Secret outside the served
    # namespaces is watched either.
    # The Secrets whose data the cache keeps are those the EgainTokens and
    # clients name (the registry's indexes), not those that carry a label.
    secrets_cache = SecretCache(
        kube,
        config.namespaces,
        lambda change, body: memo.workers.observe_secret(change, body),
        needed=lambda key: memo.workers.needs_secret(key),
    )
    clients_cache = ClientCache(
        kube,
        config.namespaces,
        cluster_namespace,
        lambda key, body: memo.workers.observe_client(key, body),
        lambda namespace: memo.workers.observe_namespace(namespace),
    )

    async def lead() -> None:
        memo.client_status.activate()
        await memo.workers.activate()

    async def stand_by() -> None:
        memo.client_status.deactivate()
        await memo.workers.deactivate()

    # With leader election, workers run and statuses are written only while this replica leads.
    memo.elector = None
    if config.leader_election_lease is not None:
        memo.elector = LeaderElector(
            kube,
            config.leader_election_lease,
            f"{socket.gethostname()}-{secrets.token_hex(4)}",
            on_started=lead,
            on_stopped=stand_by,
        )
    leading = memo.elector is None
    reconciler = Reconciler(
        kube=kube,
        secrets=secrets_cache,
        clients=clients_cache,
        egain=egain,
        policy=retry_policy(config),
        restarter=restarter,
        post_event=memo.events,
        holds=(lambda: True) if memo.elector is None else memo.elector.holds,
    )
    memo.workers = WorkerRegistry(
        reconciler,
        active=leading,
        acting=None if memo.elector is None else memo.elector.acting,
        on_client_touched=lambda key: memo.client_status.touch(key),
    )
    token_watches = [
        Watch(
            kube,
            Collection("egaintokens", namespace, config.selector or None),
            memo.workers.observe_token,
        )
        for namespace in config.namespaces or (None,)
    ]

    async def tokens_listed() -> None:
        for watch in token_watches:
            await watch.synced.wait()

    async def managed_secrets_watched(watch: Watch) -> None:
        # Only once the EgainTokens are known: what the managed Secrets' list
        # brings is then kept for those served, which would otherwise each be
        # read again (a GET per EgainToken after a restart).
        await tokens_listed()
        await watch.run()

    async def listed() -> None:
        await secrets_cache.synced()
        await tokens_listed()

    async def first_looks() -> None:
        await tokens_listed()
        memo.workers.tokens_listed()

    memo.client_status = ClientStatusController(
        kube,
        clients_cache,
        secrets_cache,
        memo.workers.token_count,
        memo.events,
        listed=listed,
        active=leading,
    )

    memo.election = None
    if memo.elector is not None:
        memo.election = asyncio.create_task(memo.elector.run(), name="leader election")
    else:
        metrics.LEADER.set(1)
    memo.watches = [
        asyncio.create_task(
            managed_secrets_watched(watch)
            if watch in secrets_cache.managed_watches
            else watch.run(),
            name=f"watch {watch.collection}",
        )
        for watch in secrets_cache.watches + clients_cache.watches + token_watches
    ]
    memo.watches.append(asyncio.create_task(memo.client_status.run(), name="client status"))
    memo.watches.append(asyncio.create_task(first_looks(), name="first looks"))
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
