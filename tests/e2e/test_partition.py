"""The leader cut off from the API server, not from eGain: it stops before the other takes over.

Two replicas from the chart (leader election, PDB) keep short-lived tokens.
A rule in the leader Pod's network namespace (which the node made for it)
drops everything it sends to the API server, port 443 of the gateway; the
Pod-facing emulator listens on another port of that address, so eGain stays
reachable. The rule is removed after `PARTITION` seconds (and in any case
at the end; the namespace goes with the Pod).

Required: the standby takes the Lease within the Lease's duration plus a
few seconds; the partitioned replica makes no token request once the other
holds the Lease, nor after the partition heals (it rejoins as a follower);
no Secret goes back to an older token (its `issued-at` never decreases); no
Secret holds an expired token. The emulator tells the replicas apart by
their Pod addresses. Printed: the takeover time, the window in which both
replicas requested tokens, the requests on each side.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest

from testground.controlplane import ControlPlane
from testground.emulator import EgainEmulator
from tests.e2e.chart_support import ChartRelease, deployment_env
from tests.e2e.conftest import MakeClient
from tests.e2e.pod_support import (
    Sampler,
    container_processes,
    in_cluster_operator,
    lease_holder,
    operator_pods,
    token_spec,
)
from tests.e2e.support import Cluster, egain_token, wait_until

__all__ = ["in_cluster_operator"]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

TOKENS = 10
LIFETIME = 60
PARTITION = 45  # seconds: the Lease (15 s) runs out well within it
LEASE_DURATION = 15


@contextlib.contextmanager
def cut_off_from_api_server(plane: ControlPlane, pid: int) -> Iterator[Callable[[], None]]:
    """Drop what the network namespace of `pid` sends to the API server; yields `heal`."""
    rule = ["OUTPUT", "-d", plane.gateway, "-p", "tcp", "--dport", "443", "-j", "DROP"]
    enter = ["nsenter", f"--net=/proc/{pid}/ns/net", "iptables", "-w", "5"]
    subprocess.run([*enter, "-I", *rule], check=True, capture_output=True, timeout=30)
    healed = False

    def heal() -> None:
        nonlocal healed
        if not healed:
            subprocess.run([*enter, "-D", *rule], check=False, capture_output=True, timeout=30)
            healed = True

    try:
        yield heal
    finally:
        heal()


def test_a_leader_cut_off_from_the_api_server_stops_before_the_standby_takes_over(
    cluster: Cluster,
    namespace: str,
    pod_emulator: EgainEmulator,
    make_pod_client: MakeClient,
    in_cluster_operator: Callable[..., ChartRelease],
) -> None:
    plane = cluster.control_plane
    release = in_cluster_operator(replicaCount=2, propagationAllowance=20)
    lease_name = deployment_env(cluster, release)["EGAIN_OPERATOR_LEADER_ELECTION_LEASE"]
    lease = (release.namespace, lease_name.rpartition("/")[2])
    clients = {}
    for index in range(TOKENS):
        client = make_pod_client(lifetime=LIFETIME, secret_name=f"client-{index}")
        cluster.apply(egain_token(namespace, f"token-{index}", token_spec(pod_emulator, client)))
        clients[f"token-{index}"] = client.client_id
    for name in clients:
        cluster.wait_ready(namespace, name, timeout=120)

    holder = wait_until(lambda: lease_holder(cluster, lease), "a leader", timeout=60)
    pods = {pod["metadata"]["name"]: pod for pod in operator_pods(cluster, release)}
    leader_name = holder.rpartition("-")[0]
    (standby_name,) = set(pods) - {leader_name}
    leader_ip, standby_ip = (pods[n]["status"]["podIP"] for n in (leader_name, standby_name))
    (status,) = pods[leader_name]["status"]["containerStatuses"]
    leader_pid = container_processes(plane, status["containerID"].rpartition("/")[2])[0].pid

    def requests_from(peer: str, after: float) -> list[float]:
        return sorted(
            r.wall_time.timestamp()
            for r in pod_emulator.requests()
            if r.peer == peer
            and r.client_id in clients.values()
            and r.wall_time.timestamp() > after
        )

    with Sampler(cluster, pod_emulator, namespace, lease) as sampler:
        time.sleep(5)
        with cut_off_from_api_server(plane, leader_pid) as heal:
            cut_at = time.time()
            new_holder = wait_until(
                lambda: (h := lease_holder(cluster, lease)).startswith(standby_name) and h,
                "the standby to take the Lease",
                timeout=LEASE_DURATION + 45,
            )
            took_over = time.time() - cut_at
            found = cluster.get("lease", lease[1], lease[0]) or {}
            acquired = datetime.fromisoformat(
                found["spec"]["acquireTime"].replace("Z", "+00:00")
            ).timestamp()
            time.sleep(max(0.0, cut_at + PARTITION - time.time()))
            heal()
            healed_at = time.time()
        time.sleep(LIFETIME)  # a refresh round of every token after the partition
        ended = time.time()
    seen = sampler.seen

    old_side = requests_from(leader_ip, cut_at)
    new_side = requests_from(standby_ip, cut_at)
    after_loss = [t for t in old_side if t > acquired]
    after_heal = [t for t in old_side if t > healed_at]
    both = max(0.0, (old_side[-1] - new_side[0])) if old_side and new_side else 0.0
    still_leading = lease_holder(cluster, lease)
    print(
        f"partition of the leader for {PARTITION} s: the standby held the Lease after "
        f"{took_over:.1f} s (acquired {acquired - cut_at:.1f} s after the cut); requests after "
        f"the cut: {len(old_side)} by the partitioned replica ({len(after_loss)} after it lost "
        f"the Lease, {len(after_heal)} after healing), {len(new_side)} by the new leader; "
        f"both acting for {both:.1f} s; {seen.secret_samples} Secret samples, "
        f"{len(seen.expired)} expired, {len(seen.regressions)} went back, "
        f"{len(seen.errors)} of {seen.attempts} samples failed"
    )
    assert new_holder and acquired - cut_at < LEASE_DURATION + 10
    assert not after_loss, (
        f"the partitioned replica asked eGain after losing the Lease: {after_loss}"
    )
    assert not after_heal, "the healed replica asked eGain as a follower"
    assert both == 0.0, f"both replicas requested tokens for {both:.1f} s"
    # The verdicts below stand on samples from before, during and after the partition.
    seen.check_sampled(
        TOKENS,
        {
            "before the cut": (cut_at - 5, cut_at),
            "while the standby held the Lease": (acquired, healed_at),
            "after healing": (healed_at, ended),
        },
    )
    assert not seen.regressions, f"Secrets went back to older tokens: {seen.regressions}"
    assert not seen.expired, f"Secrets held expired tokens: {seen.expired[:10]}"
    assert new_side, "the new leader refreshed nothing"
    assert still_leading.startswith(standby_name), "the healed replica took the Lease back"
