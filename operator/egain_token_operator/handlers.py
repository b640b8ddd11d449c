"""kopf wiring: start-up, shutdown and the two watches. No decisions here."""

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
from egain_token_operator.kube import Kube, load_api_client
from egain_token_operator.leader import LeaderElector
from egain_token_operator.reconcile import Reconciler
from egain_token_operator.restarts import RolloutRestarter
from egain_token_operator.settings import Settings, retry_policy
from egain_token_operator.spec import GROUP, PLURAL, VERSION
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
    # Re-establish watches now and then, so a silently broken one cannot last.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
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
    reconciler = Reconciler(
        kube=kube,
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
    start_http_server(config.metrics_address.port, config.metrics_address.host)


@kopf.on.cleanup(registry=registry)
async def stop(memo: kopf.Memo, **_: Any) -> None:
    """Stop every worker, hand the Lease over, and close the clients."""
    if memo.election is not None:
        memo.election.cancel()
        await asyncio.gather(memo.election, return_exceptions=True)
        await memo.elector.release()
    await memo.workers.stop()
    await memo.restarter.stop()
    await memo.events.stop()
    await memo.egain.aclose()
    await memo.kube.close()


@kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
async def egaintoken_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    """Every EgainToken change goes to the worker registry."""
    memo.workers.observe_token(event.get("type"), event["object"])


@kopf.on.event("v1", "secrets", registry=registry)
async def secret_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    """Secret changes wake the EgainTokens that read or write them."""
    memo.workers.observe_secret(event.get("type"), event["object"])
