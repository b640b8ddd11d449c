"""`helm upgrade` to the next version, and `helm rollback`, while tokens are in use.

Version N is what `hack/publish.sh` pushes: the image (installed pinned to the
digest it prints) and the chart, at pyproject's version. Version N+1 is the
same image relabelled under the next tag (`crane mutate` writes a new
configuration, so a new image digest the node has to pull) and the chart
repackaged at N+1. Both run two replicas with their PodDisruptionBudget, from
the test ground's registry with a pull Secret. `TOKENS` EgainTokens with
`LIFETIME`-second tokens refresh throughout; a consumer Pod samples the token
file of one of them every second, and the test samples every Secret and every
EgainToken about once a second.

Required: no sample of an expired token, at the file or in any Secret; no
token requested because of the upgrade or the rollback (a token issued before
its predecessor's `nextRefreshAt` is one, as is a request the status never
showed); the Lease handed to a replica of the new version. Printed: samples,
requests, the Lease hand-overs (from the old holder's last renewal to the new
holder's acquisition) and how long each step took.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from testground import incluster
from testground.emulator import EgainEmulator
from testground.registry import USERNAME
from tests.e2e.chart_support import (
    CHART,
    ChartRelease,
    deployment_env,
    fullname,
    uninstall_chart,
    unique_name,
)
from tests.e2e.conftest import MakeClient, parse_time
from tests.e2e.pod_support import (
    ALLOWANCE,
    Observations,
    Sampler,
    check_no_leaks,
    lease_holder,
    operator_pods,
    token_spec,
)
from tests.e2e.registry_support import (
    PUBLISH,
    RegistrySession,
    ground_values,
    registry_session,
)
from tests.e2e.support import Cluster, egain_token, wait_until

__all__ = ["registry_session"]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

TOKENS = 50
LIFETIME = 90  # seconds: a refresh every minute or so for each token
PULL_SECRET = "egain-registry"


def early_issues(seen: Observations) -> list[tuple[str, datetime, datetime]]:
    """Tokens whose status shows them issued before their predecessor's planned refresh."""
    early = []
    for name, history in seen.statuses.items():
        for (_, planned), (issued, _) in itertools.pairwise(history):
            if (planned - issued).total_seconds() > 2:  # status times are to the second
                early.append((name, issued, planned))
    return early


def unseen_requests(
    seen: Observations, emulator: EgainEmulator, clients: dict[str, str]
) -> dict[str, int]:
    """Per EgainToken, tokens eGain issued while it was sampled that its status never showed.

    Counted from just after the first status sampled (whose token was issued
    before) to shortly before the last sample, so that only what the samples
    must have seen counts.
    """
    unseen = {}
    for name, history in seen.statuses.items():
        start, end = history[0][0].timestamp() + 5, seen.last_sample - 2
        shown = sum(1 for issued, _ in history[1:] if issued.timestamp() < end)
        made = sum(
            1
            for token in emulator.issued_tokens(clients[name])
            if start < token.issued_at.timestamp() < end
        )
        if made != shown:
            unseen[name] = made - shown
    return unseen


def hand_overs(seen: Observations) -> list[tuple[str, str, float]]:
    """(old holder, new holder, seconds from the old one's last renewal to the new acquisition)."""
    found = []
    holder, renewed = "", ""
    for _, new_holder, acquired, new_renewed in seen.leases:
        if new_holder and holder and new_holder != holder and renewed and acquired:
            gap = (parse_time(acquired) - parse_time(renewed)).total_seconds()
            found.append((holder, new_holder, gap))
        if new_holder:
            holder, renewed = new_holder, new_renewed
    return found


def publish_next(session: RegistrySession, version: str, tmp_path: Path) -> str:
    """Version N+1: the image relabelled under tag `next`, and the chart at `next`."""
    current = f"{session.image}:{version}"
    major, minor, patch = version.split(".")
    upcoming = f"{major}.{minor}.{int(patch) + 1}"
    session.crane(
        "mutate",
        current,
        "--label",
        f"org.opencontainers.image.version={upcoming}",
        "--tag",
        f"{session.image}:{upcoming}",
    )
    helm = str(session.plane.bin_dir / "helm")
    session.run(
        helm, "package", str(CHART), "--version", upcoming, "--app-version", upcoming,
        "--destination", str(tmp_path),
    )  # fmt: skip
    session.run(
        helm, "push", str(tmp_path / f"egain-token-operator-{upcoming}.tgz"),
        f"oci://{session.prefix}/charts",
    )  # fmt: skip
    return upcoming


@pytest.fixture
def release_namespace(cluster: Cluster) -> Iterator[str]:
    name = unique_name("egt-system")
    incluster.apply(
        cluster.control_plane,
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": incluster.RESTRICTED},
        },
    )
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def pod_names(pods: list[dict[str, Any]]) -> set[str]:
    """A replica holds the Lease as `<host name, the Pod's>-<random suffix>`."""
    return {pod["metadata"]["name"] for pod in pods}


def images_of(pods: list[dict[str, Any]]) -> set[str]:
    return {status["imageID"] for pod in pods for status in pod["status"]["containerStatuses"]}


def test_upgrade_and_rollback_under_load_expire_nothing_and_request_nothing(
    cluster: Cluster,
    namespace: str,
    pod_emulator: EgainEmulator,
    make_pod_client: MakeClient,
    registry_session: RegistrySession,
    release_namespace: str,
    tmp_path: Path,
) -> None:
    session, plane = registry_session, cluster.control_plane
    digest = session.run(str(PUBLISH), session.prefix).strip().splitlines()[-1]
    current = json.loads(session.crane("config", f"{session.image}@{digest}"))
    version = current["config"]["Labels"]["org.opencontainers.image.version"]
    upcoming = publish_next(session, version, tmp_path)

    registry = plane.registry
    cluster.kubectl(
        "create", "secret", "docker-registry", PULL_SECRET, "--namespace", release_namespace,
        f"--docker-server={registry.host}", f"--docker-username={USERNAME}",
        f"--docker-password={registry.password()}",
    )  # fmt: skip
    values = ground_values(cluster, pod_emulator, release_namespace)
    values.update(
        {
            "image": {"repository": session.image},
            "imagePullSecrets": [{"name": PULL_SECRET}],
            "replicaCount": 2,
            "propagationAllowance": ALLOWANCE,
            "watchNamespaces": [namespace],
        }
    )
    name = unique_name("egt")
    release = ChartRelease(name, release_namespace, fullname(name), fullname(name))
    chart = f"oci://{session.prefix}/charts/egain-token-operator"
    helm = str(plane.bin_dir / "helm")

    def helm_install(verb: str, chart_version: str, image: dict[str, str]) -> float:
        started = time.monotonic()
        chosen = {**values, "image": {**values["image"], **image}}
        session.run(
            helm, verb, name, chart, "--version", chart_version, "--namespace",
            release_namespace, "--values", "-", "--wait", "--timeout", "5m",
            input=json.dumps(chosen),
        )  # fmt: skip
        return time.monotonic() - started

    try:
        helm_install("install", version, {"digest": digest})
        pods = operator_pods(cluster, release)
        assert len(pods) == 2 and images_of(pods) == {f"{session.image}@{digest}"}

        clients = {}
        for index in range(TOKENS):
            client = make_pod_client(lifetime=LIFETIME, secret_name=f"client-{index}")
            spec = token_spec(pod_emulator, client)
            cluster.apply(egain_token(namespace, f"token-{index}", spec))
            clients[f"token-{index}"] = client.client_id
        for index in range(TOKENS):
            cluster.wait_ready(namespace, f"token-{index}", timeout=120)
        cluster.apply(
            incluster.consumer_pod(plane, "sampler", namespace, incluster.SAMPLER_SCRIPT, "token-0")
        )
        cluster.kubectl(
            "wait", "--for=condition=Ready", "pod/sampler", "-n", namespace, "--timeout=60s"
        )
        lease_name = deployment_env(cluster, release)["EGAIN_OPERATOR_LEADER_ELECTION_LEASE"]
        lease = (release_namespace, lease_name.rpartition("/")[2])

        with Sampler(cluster, pod_emulator, namespace, lease) as sampler:
            began = time.time()
            time.sleep(10)  # samples of the steady state before
            upgrade_at = time.time()
            upgraded = helm_install("upgrade", upcoming, {})
            new_pods = operator_pods(cluster, release)
            new_images = images_of(new_pods)
            wait_until(
                lambda: lease_holder(cluster, lease).rpartition("-")[0] in pod_names(new_pods),
                "a replica of the new version to hold the Lease",
                timeout=60,
            )
            took_over = time.time()
            time.sleep(10)
            rollback_at = time.time()
            rolled_back_started = time.monotonic()
            session.run(
                helm, "rollback", name, "1", "--namespace", release_namespace, "--wait",
                "--timeout", "5m",
            )  # fmt: skip
            rolled_back = time.monotonic() - rolled_back_started
            wait_until(
                lambda: images_of(operator_pods(cluster, release)) == {f"{session.image}@{digest}"},
                "the rolled-back Pods",
                timeout=120,
            )
            back = time.time()
            time.sleep(10)
            ended = time.time()
        seen = sampler.seen
        # The verdicts below stand on samples from before, during and after the upgrade.
        seen.check_sampled(
            TOKENS,
            {
                "before the upgrade": (began, upgrade_at),
                "while the new version held the Lease": (took_over, rollback_at),
                "after the rollback": (back, ended),
            },
        )

        logs = cluster.kubectl("logs", "sampler", "-n", namespace).stdout
        read = incluster.samples(logs)
        expired_reads = [s.at for s in read if s.at >= s.expires_at]
        changes = sum(len(history) - 1 for history in seen.statuses.values())
        unseen = unseen_requests(seen, pod_emulator, clients)
        early = early_issues(seen)
        overs = hand_overs(seen)
        print(
            f"upgrade {version} -> {upcoming} in {upgraded:.1f} s, rollback in "
            f"{rolled_back:.1f} s; {seen.secret_samples} Secret samples and {len(read)} "
            f"file samples, {len(seen.expired)} and {len(expired_reads)} expired; "
            f"{changes} refreshes seen in status, {len(early)} early, "
            f"{sum(unseen.values())} requests status never showed; "
            f"Lease hand-overs {[round(gap, 1) for *_, gap in overs]} s; "
            f"{len(seen.errors)} failed samples"
        )
        assert new_images != {f"{session.image}@{digest}"} and len(new_images) == 1
        assert not seen.expired, f"Secrets held expired tokens: {seen.expired[:10]}"
        assert not seen.regressions, f"Secrets went back to older tokens: {seen.regressions}"
        assert not expired_reads, f"the consumer read an expired token at {expired_reads}"
        assert not early, f"tokens issued before their planned refresh: {early[:10]}"
        assert not unseen, f"token requests the status never showed: {unseen}"
        assert len(seen.statuses) == TOKENS
        assert len(overs) >= 2, f"the Lease changed hands {len(overs)} times: {seen.leases}"
        assert len(read) >= 30
        check_no_leaks(cluster, pod_emulator, release, namespace)
    finally:
        uninstall_chart(plane, release, wait=True)
