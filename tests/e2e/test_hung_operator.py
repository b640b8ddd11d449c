"""A hung operator: the leader's process frozen (SIGSTOP) inside its Pod.

The chart with two replicas (leader election, a PodDisruptionBudget) on the
test ground's node. Freezing every process of the leader's container stops
its event loop, so kopf's `/healthz` (served on that loop) stops answering:
the kubelet's liveness probe fails and restarts the container, the standby
takes the Lease once it runs out, and tokens of 45 s keep being refreshed
throughout. The frozen processes are let go (SIGCONT) in the end whatever
happens, unless the kubelet has killed them by then.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from testground.emulator import EgainEmulator
from testground.supervision import thread_states
from tests.e2e.chart_support import ChartRelease
from tests.e2e.conftest import MakeClient, successes
from tests.e2e.pod_support import (
    Process,
    container_processes,
    in_cluster_operator,
    lease_holder,
    operator_pods,
    release_lease,
    token_spec,
)
from tests.e2e.support import Cluster, egain_token, wait_until

__all__ = ["in_cluster_operator"]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

LIFETIME = 45


@contextlib.contextmanager
def frozen(processes: list[Process]) -> Iterator[None]:
    """SIGSTOP every one of `processes` (the body starts once each thread is
    stopped); SIGCONT those still there (the same pid and start time) afterwards."""
    try:
        for process in processes:
            os.kill(process.pid, signal.SIGSTOP)
        wait_until(
            lambda: all(set(thread_states(p.pid)) == {"T"} for p in processes),
            "every thread of the container to stop",
            10,
        )
        yield
    finally:
        for process in processes:
            if process.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGCONT)


def pod(cluster: Cluster, release: ChartRelease, name: str) -> dict[str, Any]:
    found = cluster.get("pod", name, release.namespace)
    assert found is not None, f"operator Pod {name} gone"
    return found


def container_status(found: dict[str, Any]) -> dict[str, Any]:
    (status,) = found["status"]["containerStatuses"]
    return dict(status)


def test_a_frozen_leader_is_restarted_and_replaced_while_tokens_stay_fresh(
    cluster: Cluster,
    namespace: str,
    pod_emulator: EgainEmulator,
    make_pod_client: MakeClient,
    in_cluster_operator: Callable[..., ChartRelease],
) -> None:
    release = in_cluster_operator(replicaCount=2, watchNamespaces=[namespace])
    lease = release_lease(release)
    assert cluster.get("poddisruptionbudget", release.fullname, release.namespace) is not None
    pods = {p["metadata"]["name"] for p in operator_pods(cluster, release)}
    assert len(pods) == 2
    holder = wait_until(lambda: lease_holder(cluster, lease), "a leader", 30)
    (leader,) = [name for name in pods if holder.startswith(f"{name}-")]
    (standby,) = pods - {leader}

    client = make_pod_client(lifetime=LIFETIME)
    spec = token_spec(pod_emulator, client)
    cluster.apply(egain_token(namespace, "portal", spec))
    cluster.wait_ready(namespace, "portal", timeout=60)

    before = container_status(pod(cluster, release, leader))
    assert before["ready"] and before["restartCount"] == 0
    container_id = before["containerID"].removeprefix("containerd://")
    processes = container_processes(cluster.control_plane, container_id)
    issued_before = successes(pod_emulator, client)

    new_holder_after = restarted_ready_after = None
    not_ready: list[str] = []
    with frozen(processes):
        stopped = time.monotonic()
        # One pass a second: who holds the Lease, the frozen Pod's container,
        # and whether the token stayed Ready (served by whoever leads), until
        # both happened and the token was refreshed twice since the freeze.
        while (
            restarted_ready_after is None
            or new_holder_after is None
            or successes(pod_emulator, client) < issued_before + 2
        ):
            elapsed = time.monotonic() - stopped
            assert elapsed < 240, (
                f"after {elapsed:.0f} s: Lease holder {lease_holder(cluster, lease)}, "
                f"container {container_status(pod(cluster, release, leader))}"
            )
            if new_holder_after is None and lease_holder(cluster, lease).startswith(f"{standby}-"):
                new_holder_after = elapsed
            status = container_status(pod(cluster, release, leader))
            if restarted_ready_after is None and status["restartCount"] > 0 and status["ready"]:
                restarted_ready_after = elapsed
            ready = cluster.ready(namespace, "portal") or {}
            if ready.get("status") != "True":
                not_ready.append(f"{elapsed:.0f} s: {ready.get('reason')}")
            time.sleep(1)
        # The kubelet killed what it restarted: nothing of the frozen container is left.
        assert not any(process.alive() for process in processes)

    print(
        f"SIGSTOP of the leader -> the standby holds the Lease: {new_holder_after:.1f} s; "
        f"-> the restarted container is Ready: {restarted_ready_after:.1f} s"
    )
    events = cluster.events(release.namespace)
    unhealthy = [
        e
        for e in events
        if e["reason"] == "Unhealthy"
        and e["involvedObject"]["name"] == leader
        and "Liveness probe failed" in e["message"]
    ]
    assert unhealthy, "the restart was not the liveness probe's"
    assert not not_ready, f"the token was not Ready at {not_ready}"

    # Tokens kept being refreshed: each replaced before it expired, by either replica.
    tokens = sorted(pod_emulator.issued_tokens(client.client_id), key=lambda t: t.issued_at)
    unserved = [
        (old.fingerprint, old.expires_at, new.issued_at)
        for old, new in itertools.pairwise(tokens)
        if new.issued_at >= old.expires_at
    ]
    assert not unserved, f"tokens expired before the next was issued: {unserved}"
    assert not tokens[-1].expired
    data = cluster.secret_data(namespace, "portal")
    assert data is not None
    assert pod_emulator.is_issued_token(data["access_token"].reveal(), client_id=client.client_id)
    assert lease_holder(cluster, lease).startswith(f"{standby}-")
