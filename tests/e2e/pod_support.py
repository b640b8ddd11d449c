"""The operator as users run it, from its image under `helm install`: helpers
the in-cluster tests share.

`in_cluster_operator` (a fixture: import it into a test module to use it)
installs the chart in a new `restricted` namespace and, afterwards, searches
the operator Pods' logs, the Events and every EgainToken for secrets, then
uninstalls it. The others look at what it runs: its Pods, their processes on
the node, the Lease holder, and every token Secret and status about once a
second (`Sampler`), with what makes the samples enough to judge by.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from testground import incluster, procfs
from testground.controlplane import ControlPlane
from testground.emulator import EgainEmulator
from testground.leaks import assert_no_secret_material, cluster_record
from tests.e2e.chart_support import ChartRelease, fullname, uninstall_chart, unique_name
from tests.e2e.conftest import TENANT, EgainClient, parse_time
from tests.e2e.support import Cluster

# The node's kubelet syncs Pods every 10 s (testground.node): 20 s covers the
# delivery of a refreshed token to a mounted file.
ALLOWANCE = 20
ISSUED_AT = "egain.cloud/issued-at"  # the operator's annotation on each token Secret


def install_operator(
    cluster: Cluster, emulator: EgainEmulator, values: Mapping[str, Any]
) -> ChartRelease:
    """The chart with the local image in a new `restricted` namespace, Ready."""
    name, namespace = unique_name("egt"), unique_name("egt-system")
    defaults = {
        "logLevel": "debug",
        "retryInitialDelay": 0.5,
        "retryMaxDelay": 4,
        "propagationAllowance": ALLOWANCE,
    }
    incluster.install_operator(
        cluster.control_plane, emulator, name, namespace, {**defaults, **values}
    )
    return ChartRelease(name, namespace, fullname(name), fullname(name))


def operator_pods(cluster: Cluster, release: ChartRelease) -> list[dict[str, Any]]:
    found = cluster.kubectl(
        "get",
        "pods",
        "-n",
        release.namespace,
        "-l",
        f"app.kubernetes.io/instance={release.name}",
        "-o",
        "json",
    )
    pods: list[dict[str, Any]] = json.loads(found.stdout)["items"]
    return pods


def operator_logs(cluster: Cluster, release: ChartRelease) -> str:
    return cluster.kubectl(
        "logs", "-n", release.namespace, "-l", f"app.kubernetes.io/instance={release.name}",
        "--all-containers", "--prefix", "--tail=-1", check=False,
    ).stdout  # fmt: skip


def check_no_leaks(
    cluster: Cluster, emulator: EgainEmulator, release: ChartRelease, *namespaces: str
) -> None:
    """Search the operator Pods' logs, the Events and every EgainToken for secrets."""
    record = cluster_record(cluster.control_plane, [release.namespace, *namespaces])
    assert_no_secret_material([operator_logs(cluster, release), record], [emulator])


@pytest.fixture
def in_cluster_operator(
    cluster: Cluster, namespace: str, pod_emulator: EgainEmulator
) -> Iterator[Callable[..., ChartRelease]]:
    """Install the chart (see `install_operator`); check for leaks, then uninstall."""
    installed: list[ChartRelease] = []

    def install(**values: Any) -> ChartRelease:
        release = install_operator(cluster, pod_emulator, values)
        installed.append(release)
        return release

    yield install
    for release in installed:
        # Shown with a failed test's report; redacted like the report itself.
        tail = "\n".join(operator_logs(cluster, release).splitlines()[-60:])
        for secret in pod_emulator.secrets_in(tail):
            tail = tail.replace(secret, "<hidden>")
        print(f"--- the operator logs of {release.name}, last lines:\n{tail}")
        check_no_leaks(cluster, pod_emulator, release, namespace)
        uninstall_chart(cluster.control_plane, release, wait=True)


def token_spec(emulator: EgainEmulator, client: EgainClient, **overrides: Any) -> dict[str, Any]:
    return {
        "tokenUrl": emulator.client_app_token_url(TENANT),
        "scopes": ["knowledge.portalmgr.manage"],
        "credentialsSecretRef": {"name": client.secret_name},
        **overrides,
    }


def lease_holder(cluster: Cluster, lease: tuple[str, str]) -> str:
    """Who holds the Lease `(namespace, name)` now ("" if nobody)."""
    found = cluster.get("lease", lease[1], lease[0]) or {}
    holder: str = found.get("spec", {}).get("holderIdentity") or ""
    return holder


def release_lease(release: ChartRelease) -> tuple[str, str]:
    """The Lease a release's replicas elect the leader with."""
    return release.namespace, release.fullname


@dataclass(frozen=True)
class Process:
    """A process on this machine, told from a later one with the same pid."""

    pid: int
    started: int  # clock ticks after boot (/proc/PID/stat, field 22)

    def alive(self) -> bool:
        return procfs.start_ticks(self.pid) == self.started


def container_processes(plane: ControlPlane, container_id: str) -> list[Process]:
    """Every process of a container, as the node's containerd knows them (host pids)."""
    ctr = ["ctr", f"--address={plane.containerd_socket}", "--namespace=k8s.io"]
    listed = subprocess.run(
        [*ctr, "tasks", "ps", container_id],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    pids = [int(line.split()[0]) for line in listed.stdout.splitlines()[1:] if line.strip()]
    started = {pid: procfs.start_ticks(pid) for pid in pids}
    found = [Process(pid, ticks) for pid, ticks in started.items() if ticks is not None]
    assert found, f"no process in container {container_id}: {listed.stdout!r}"
    return found


@dataclass
class Observations:
    """What the sampler thread saw."""

    secret_samples: int = 0
    expired: list[tuple[str, float]] = field(default_factory=list)  # (token name, at)
    # For each EgainToken, every distinct (issuedAt, nextRefreshAt) in order.
    statuses: dict[str, list[tuple[datetime, datetime]]] = field(default_factory=dict)
    leases: list[tuple[float, str, str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Secrets whose token went back to an older one: (name, issued-at before, after).
    regressions: list[tuple[str, str, str]] = field(default_factory=list)
    issued_at: dict[str, str] = field(default_factory=dict)  # per Secret, the newest seen
    attempts: int = 0  # samples begun, complete or failed
    # Each complete sample: when it began (epoch seconds), how many token Secrets it read.
    rounds: list[tuple[float, int]] = field(default_factory=list)

    @property
    def last_sample(self) -> float:
        """When the last complete sample began (epoch seconds; 0 if none)."""
        return self.rounds[-1][0] if self.rounds else 0.0

    def check_sampled(self, secrets: int, spans: Mapping[str, tuple[float, float]]) -> None:
        """Fail unless the samples can back a verdict: at most one in ten failed,
        each complete one read all `secrets` token Secrets, and each span
        (what: (start, end), epoch seconds) holds one."""
        assert len(self.errors) * 10 <= self.attempts, (
            f"{len(self.errors)} of {self.attempts} samples failed: {self.errors[:10]}"
        )
        short = [(at, read) for at, read in self.rounds if read != secrets]
        assert not short, f"samples (at, Secrets read) that missed some of {secrets}: {short[:10]}"
        for what, (start, end) in spans.items():
            assert any(start <= at <= end for at, _ in self.rounds), f"no sample {what}"


class Sampler:
    """Samples every token Secret and EgainToken status, and watches the Lease."""

    def __init__(
        self, cluster: Cluster, emulator: EgainEmulator, namespace: str, lease: tuple[str, str]
    ) -> None:
        self.cluster, self.emulator, self.namespace = cluster, emulator, namespace
        self.seen = Observations()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._sample, daemon=True)]
        lease_namespace, lease_name = lease
        self._watch = subprocess.Popen(
            [
                str(cluster.control_plane.bin_dir / "kubectl"),
                "get",
                "lease",
                lease_name,
                "--namespace",
                lease_namespace,
                "--watch",
                "--output",
                "jsonpath={.spec.holderIdentity} {.spec.acquireTime} {.spec.renewTime}{'\\n'}",
            ],
            env=cluster.control_plane.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._threads.append(threading.Thread(target=self._read_lease, daemon=True))

    def __enter__(self) -> Sampler:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._watch.terminate()
        self._watch.wait(timeout=30)
        for thread in self._threads:
            thread.join(timeout=60)

    def _read_lease(self) -> None:
        assert self._watch.stdout is not None
        for line in self._watch.stdout:
            # kubectl aligns the columns; an empty holder leaves two.
            fields = line.split()
            if len(fields) in (2, 3):
                *holder, acquired, renewed = fields
                self.seen.leases.append((time.time(), "".join(holder), acquired, renewed))

    def _get(self, resource: str) -> list[dict[str, Any]]:
        found = self.cluster.kubectl("get", resource, "-n", self.namespace, "-o", "json")
        items: list[dict[str, Any]] = json.loads(found.stdout)["items"]
        return items

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            self.seen.attempts += 1
            try:
                self._sample_once()
            except (RuntimeError, ValueError) as error:  # the API server mid-hand-over
                self.seen.errors.append(type(error).__name__)

    def _sample_once(self) -> None:
        for token in self._get("egaintokens"):
            status = token.get("status", {})
            if "issuedAt" not in status or "nextRefreshAt" not in status:
                continue
            entry = (parse_time(status["issuedAt"]), parse_time(status["nextRefreshAt"]))
            history = self.seen.statuses.setdefault(token["metadata"]["name"], [])
            if not history or history[-1] != entry:
                history.append(entry)
        at = time.time()
        read = 0
        for secret in self._get("secrets"):
            data = secret.get("data") or {}
            if "access_token" not in data:
                continue
            read += 1
            name = secret["metadata"]["name"]
            issued = (secret["metadata"].get("annotations") or {}).get(ISSUED_AT, "")
            newest = self.seen.issued_at.get(name, "")
            if issued < newest:  # RFC 3339 UTC: ordered as text
                self.seen.regressions.append((name, newest, issued))
            self.seen.issued_at[name] = max(issued, newest)
            info = self.emulator.token_info(base64.b64decode(data["access_token"]).decode())
            self.seen.secret_samples += 1
            if info is None or info.expires_at.timestamp() <= at:
                self.seen.expired.append((name, at))
        self.seen.rounds.append((at, read))
