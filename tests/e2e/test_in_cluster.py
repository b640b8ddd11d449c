"""The operator as users run it: a Pod from its own image under `helm install`,
feeding Pods that mount its Secrets or read them from environment variables.

The operator Pod talks to the API server through the `kubernetes` Service and
to the Pod-facing eGain emulator on the node's gateway address, under the
chart's restricted security context in a namespace that enforces the
`restricted` Pod Security Standard.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from testground import incluster
from testground.emulator import EgainEmulator
from tests.e2e.chart_support import ChartRelease
from tests.e2e.conftest import FORCEABLE, MakeClient
from tests.e2e.pod_support import (
    in_cluster_operator,
    lease_holder,
    operator_pods,
    release_lease,
    token_spec,
)
from tests.e2e.support import Cluster, egain_token, wait_until

__all__ = ["in_cluster_operator"]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

# Refreshes the Pod that mounts the token reads before it is judged.
REFRESHES = 3
# The chart's `rolloutRestarts.minInterval` in the rollout test (seconds).
MIN_INTERVAL = 5

# Prints the fingerprints of the tokens it was started with, then waits.
ENV_READER = """
one=$(printf %s "$TOKEN_ONE" | sha256sum | cut -c1-16)
two=$(printf %s "$TOKEN_TWO" | sha256sum | cut -c1-16)
echo "started sha256:$one sha256:$two"
exec sleep infinity
"""


def fingerprint(token: str) -> str:
    """The emulator's name for a token (`testground.emulator.token_fingerprint`)."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:16]


def env_reader(cluster: Cluster, namespace: str) -> dict[str, Any]:
    def from_secret(secret: str) -> dict[str, Any]:
        return {"secretKeyRef": {"name": secret, "key": "access_token"}}

    env = [
        {"name": "TOKEN_ONE", "valueFrom": from_secret("one")},
        {"name": "TOKEN_TWO", "valueFrom": from_secret("two")},
    ]
    labels = {"app": "reader"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "reader", "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": incluster.consumer_pod_spec(cluster.control_plane, ENV_READER, env=env),
            },
        },
    }


def secret_fingerprint(cluster: Cluster, namespace: str, secret: str) -> str | None:
    data = cluster.secret_data(namespace, secret)
    return fingerprint(data["access_token"].reveal()) if data else None


def test_helm_installed_operator_feeds_a_pod_that_mounts_the_token(
    cluster: Cluster,
    namespace: str,
    pod_emulator: EgainEmulator,
    make_pod_client: MakeClient,
    in_cluster_operator: Callable[..., ChartRelease],
) -> None:
    release = in_cluster_operator()  # all namespaces, one replica
    (pod,) = operator_pods(cluster, release)
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    statuses = pod["status"]["containerStatuses"]
    assert all(s["ready"] and s["restartCount"] == 0 for s in statuses)

    lifetime = 40
    client = make_pod_client(lifetime=lifetime)
    cluster.apply(egain_token(namespace, "portal", token_spec(pod_emulator, client)))
    cluster.wait_ready(namespace, "portal", timeout=60)
    data = cluster.secret_data(namespace, "portal")
    assert data is not None
    assert pod_emulator.is_issued_token(data["access_token"].reveal(), client_id=client.client_id)

    plane = cluster.control_plane
    sampler = incluster.SAMPLER_SCRIPT
    cluster.apply(incluster.consumer_pod(plane, "sampler", namespace, sampler, "portal"))
    cluster.kubectl(
        "wait", "--for=condition=Ready", "pod/sampler", "-n", namespace, "--timeout=60s"
    )

    # Several refreshes: at this lifetime and allowance, one every 20 s or so.
    def read_after_refreshes() -> list[incluster.Sample] | None:
        logs = cluster.kubectl("logs", "sampler", "-n", namespace).stdout
        read = incluster.samples(logs)
        return read if len(incluster.first_seen(read)) > REFRESHES else None

    read = wait_until(read_after_refreshes, f"the Pod to read {REFRESHES} refreshes", 5 * lifetime)
    expired = [sample.at for sample in read if sample.at >= sample.expires_at]
    assert not expired, f"the Pod read an expired token at {expired}"
    seen = incluster.first_seen(read)
    assert len(seen) >= 3, f"expected several refreshes, the Pod saw {len(seen)} tokens"

    # From each refresh (the emulator's issue time) to the Pod's file changing.
    issued = {t.fingerprint: t for t in pod_emulator.issued_tokens(client.client_id)}
    assert all(token in issued for token in seen), "the Pod read a token eGain never issued"
    # Each token reached the file before the one it replaced expired.
    order = sorted(seen, key=seen.__getitem__)
    late = [
        (seen[new], issued[old].expires_at.timestamp())
        for old, new in itertools.pairwise(order)
        if seen[new] >= issued[old].expires_at.timestamp()
    ]
    assert not late, f"the Pod first read a new token (at, old token's expiry) {late}"
    delays = [seen[token] - issued[token].issued_at.timestamp() for token in order[1:]]
    print(
        f"propagation to the mounted file: {len(delays)} refreshes, "
        f"median {statistics.median(delays):.1f} s, max {max(delays):.1f} s"
    )


def test_env_consumers_roll_once_for_tokens_rotating_together(
    cluster: Cluster,
    namespace: str,
    pod_emulator: EgainEmulator,
    make_pod_client: MakeClient,
    in_cluster_operator: Callable[..., ChartRelease],
) -> None:
    in_cluster_operator(
        watchNamespaces=[namespace],
        rolloutRestarts={"enabled": True, "minInterval": MIN_INTERVAL},
    )
    client = make_pod_client(lifetime=FORCEABLE)
    # Its Pods wait for the Secrets; their first writes restart it once.
    cluster.apply(env_reader(cluster, namespace))
    targets = [{"kind": "Deployment", "name": "reader"}]
    for name in ("one", "two"):
        spec = token_spec(pod_emulator, client, rolloutRestartTargets=targets)
        cluster.apply(egain_token(namespace, name, spec))
    cluster.wait_ready(namespace, "one", timeout=60)
    cluster.wait_ready(namespace, "two", timeout=60)
    rollout = ("rollout", "status", "deployment/reader", "-n", namespace, "--timeout=120s")
    wait_until(lambda: cluster.restarted_at(namespace, "reader"), "the first restart", 30)
    cluster.kubectl(*rollout)
    first = cluster.wait_past_min_interval(namespace, "reader", MIN_INTERVAL)
    before = cluster.get("deployment", "reader", namespace)
    assert before is not None
    old = {name: secret_fingerprint(cluster, namespace, name) for name in ("one", "two")}

    # Both tokens rotate together: one roll, and the new Pods carry both new tokens.
    cluster.kubectl(
        "annotate",
        "egt",
        "one",
        "two",
        "-n",
        namespace,
        f"egain.cloud/refresh-requested-at={time.time():.0f}",
        "--overwrite",
    )

    def rotated() -> dict[str, str | None] | None:
        new = {name: secret_fingerprint(cluster, namespace, name) for name in ("one", "two")}
        return new if all(new[name] != old[name] for name in new) else None

    new = wait_until(rotated, "both tokens to rotate", 30)
    wait_until(
        lambda: cluster.restarted_at(namespace, "reader") != first,
        "the restart for the rotation",
        30,
    )
    cluster.kubectl(*rollout)
    # A second restart would be written by then if the requests were not coalesced.
    cluster.wait_past_min_interval(namespace, "reader", MIN_INTERVAL)
    after = cluster.get("deployment", "reader", namespace)
    assert after is not None
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    pods = json.loads(
        cluster.kubectl("get", "pods", "-n", namespace, "-l", "app=reader", "-o", "json").stdout
    )["items"]
    running = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    assert running
    for pod in running:
        logs = cluster.kubectl("logs", pod["metadata"]["name"], "-n", namespace).stdout
        assert logs.split() == ["started", new["one"], new["two"]]


def test_two_replicas_in_namespaced_mode_fail_over_when_the_leader_pod_goes(
    cluster: Cluster,
    namespace: str,
    pod_emulator: EgainEmulator,
    make_pod_client: MakeClient,
    in_cluster_operator: Callable[..., ChartRelease],
) -> None:
    release = in_cluster_operator(replicaCount=2, watchNamespaces=[namespace])
    lease = release_lease(release)
    pods = {p["metadata"]["name"] for p in operator_pods(cluster, release)}
    assert len(pods) == 2
    holder = wait_until(lambda: lease_holder(cluster, lease), "a leader", 30)
    (leader,) = [name for name in pods if holder.startswith(f"{name}-")]

    client = make_pod_client(lifetime=FORCEABLE)
    cluster.apply(egain_token(namespace, "shared", token_spec(pod_emulator, client)))
    cluster.wait_ready(namespace, "shared", timeout=60)
    time.sleep(3)
    issued = sum(r.token_issued for r in pod_emulator.requests(client.client_id))
    assert issued == 1, "more than one replica requested a token"

    started = datetime.now(UTC)
    cluster.kubectl("delete", "pod", leader, "-n", release.namespace, "--wait=false")
    # The Lease is released on the way out; the standby or the leader's
    # replacement, whichever asks first, takes it.
    wait_until(
        lambda: (holder := lease_holder(cluster, lease)) and not holder.startswith(f"{leader}-"),
        "another replica to take the Lease",
        60,
    )
    print(f"fail-over took {(datetime.now(UTC) - started).total_seconds():.1f} s")
    cluster.kubectl(
        "annotate", "egt", "shared", "-n", namespace, "egain.cloud/refresh-requested-at=1"
    )
    wait_until(
        lambda: sum(r.token_issued for r in pod_emulator.requests(client.client_id)) == 2,
        "the new leader to refresh",
        30,
    )
    # ...and to write what it got: the Secret holds the newest token, and its Event is posted.
    newest = max(pod_emulator.issued_tokens(client.client_id), key=lambda t: t.issued_at)
    wait_until(
        lambda: secret_fingerprint(cluster, namespace, "shared") == newest.fingerprint,
        "the new leader's token in the Secret",
        15,
    )
    cluster.wait_events(namespace, "TokenIssued", count=2, timeout=15)
    time.sleep(3)
    assert sum(r.token_issued for r in pod_emulator.requests(client.client_id)) == 2
    assert len([e for e in cluster.events(namespace) if e["reason"] == "TokenIssued"]) == 2
