"""i) Per-event work: the worker registry's watch-event path, synthetic, at several fleet sizes.

No cluster and no eGain: a `workers.WorkerRegistry` standing by (no worker
tasks), fed the events a fleet of `size` EgainTokens causes, timed per kind:
an EgainToken added, a look's metrics set, changed (a new generation: its worker is woken),
its managed Secret changed (the worker is woken), its credentials Secret
changed (shared by `TOKENS_PER_CREDENTIALS` tokens: each of them is woken),
an unrelated Secret changed (no worker concerned), and the EgainToken
deleted (its worker forgotten). Events per second that stay flat from 1,000
to 10,000 tokens show work per event independent of the fleet's size.

What it takes of the operator: what it measures, `WorkerRegistry`'s
`observe_token`/`observe_secret` and `metrics.set_ready`; and what the
registry needs to stand by without a cluster: a stand-in typed as the
`Reconciler` it is given, with the real `SharedTokens` (a deleted token
leaves its sharing group, part of that event's cost), `ClientBudgets` (it
leaves any line for a client's budget) and `SecretCache` (it forgets the
data of the Secrets a deleted token needed), and each worker's
spec as its first look would have parsed it (`parse_spec`: a worker wakes
for a Secret only once it has one, and only a look, which needs a cluster,
sets it). The managed Secret's labels are written as docs/api.md promises.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, cast

from egain_token_operator import metrics
from egain_token_operator.controller.budgets import ClientBudgets
from egain_token_operator.controller.reconcile import Reconciler
from egain_token_operator.controller.workers import WorkerRegistry
from egain_token_operator.decisions.tokenspec import parse_spec
from egain_token_operator.egain.sharing import SharedTokens
from egain_token_operator.kube.api import KubeApi
from egain_token_operator.kube.secretcache import SecretCache

NAMESPACE = "bench-events"
TOKENS_PER_CREDENTIALS = 10
KINDS = (
    "token_added",
    "look_metrics",
    "token_changed",
    "managed_secret_changed",
    "credentials_changed",
    "unrelated_secret_changed",
    "token_deleted",
)


class _Clients:
    cluster_namespace = "egain-system"


class _Reconciler:
    """What the registry reads of a reconciler while standing by."""

    clients = _Clients()
    sharing = SharedTokens()
    budgets = ClientBudgets()
    secrets: SecretCache  # set once the registry exists: the cache asks it what is needed


def _spec(index: int) -> dict[str, Any]:
    return {
        "tokenUrl": "https://ai.egain.cloud/system/auth/T-U/oauth2/token",
        "scopes": ["knowledge.portalmgr.manage"],
        "credentialsSecretRef": {"name": f"creds-{index // TOKENS_PER_CREDENTIALS}"},
    }


def _token(index: int, generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "egain.cloud/v1alpha1",
        "kind": "EgainToken",
        "metadata": {
            "namespace": NAMESPACE,
            "name": f"token-{index}",
            "uid": f"uid-{index}",
            "generation": generation,
        },
        "spec": _spec(index),
    }


def _secret(name: str, version: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    metadata = {"namespace": NAMESPACE, "name": name, "resourceVersion": version}
    return {"metadata": {**metadata, "labels": labels or {}}}


def _managed_labels(token: str) -> dict[str, str]:
    # The labels of a token Secret, as docs/api.md promises them.
    return {"app.kubernetes.io/managed-by": "egain-token-operator", "egain.cloud/token": token}


def _timed(events: Iterable[Any], deliver: Callable[[Any], None]) -> tuple[int, float]:
    batch = list(events)  # built before the clock starts
    started = time.perf_counter()
    for event in batch:
        deliver(event)
    return len(batch), time.perf_counter() - started


def measure_size(size: int) -> dict[str, float]:
    """Events per second of each kind, for a fleet of `size` EgainTokens."""
    reconciler = _Reconciler()
    registry = WorkerRegistry(cast(Reconciler, reconciler), active=False)
    # The real cache, never started: its watches make no call, and the registry
    # only tells it which Secrets' data it may forget.
    reconciler.secrets = SecretCache(
        cast(KubeApi, None), (NAMESPACE,), lambda change, body: None, registry.needs_secret
    )
    rates: dict[str, float] = {}

    def rate(kind: str, events: Iterable[Any], deliver: Callable[[Any], None]) -> None:
        count, seconds = _timed(events, deliver)
        rates[kind] = count / seconds if seconds > 0 else float("inf")

    rate(
        "token_added",
        (_token(i) for i in range(size)),
        lambda b: registry.observe_token("ADDED", b),
    )
    # What a look sets of the metrics (the Ready series of the token).
    rate(
        "look_metrics",
        (f"token-{i}" for i in range(size)),
        lambda name: metrics.set_ready(NAMESPACE, name, "True", "TokenIssued"),
    )
    # A worker wakes for a Secret only once it has a spec (after its first look).
    for index, worker in enumerate(registry._workers.values()):
        worker.spec = parse_spec(worker.key[1], _spec(index), None)
    rate(
        "token_changed",
        (_token(i, generation=2) for i in range(size)),
        lambda b: registry.observe_token("MODIFIED", b),
    )
    rate(
        "managed_secret_changed",
        (_secret(f"token-{i}", "2", _managed_labels(f"token-{i}")) for i in range(size)),
        lambda b: registry.observe_secret("MODIFIED", b),
    )
    rate(
        "credentials_changed",
        (_secret(f"creds-{i}", "2") for i in range(size // TOKENS_PER_CREDENTIALS)),
        lambda b: registry.observe_secret("MODIFIED", b),
    )
    rate(
        "unrelated_secret_changed",
        (_secret(f"unrelated-{i}", "2") for i in range(size)),
        lambda b: registry.observe_secret("MODIFIED", b),
    )
    rate(
        "token_deleted",
        (_token(i) for i in range(size)),
        lambda b: registry.observe_token("DELETED", b),
    )
    return rates


def per_event(sizes: Iterable[int]) -> dict[str, Any]:
    """The row: events per second of each kind at each size."""
    return {"sizes": {str(size): measure_size(size) for size in sizes}}
