"""`make soak`: short-lived EgainTokens under random faults; does anyone read an expired token?

Starts the local cluster (the kubelet syncing Pods every second), the eGain
emulator and two operator replicas sharing a Lease, creates `--tokens`
EgainTokens in both flows, with lifetimes of 60-120 s (`--lifetimes lead`,
the default) or 5-10 s (`--lifetimes stress`), and for `--duration` seconds
injects faults on both sides: eGain answering 5xx, hanging past the HTTP
timeout, resetting connections, rate limiting with and without Retry-After,
sending malformed and HTML bodies, one outage longer than every lifetime (or,
with the lead lifetimes, every refresh lead); the
API server stopped and restarted, etcd frozen for 10 s, the operator SIGKILLed
in the middle of a refresh, the active replica killed, client credentials
rotated, a managed Secret deleted and another edited by hand, a spec changed.

A sampler reads every managed Secret once a second (one LIST) and a consumer
Pod reads its mounted copy of one of them once a second. A sample is a
*violation* when the token it holds is expired (by the emulator's record of
what it issued) or missing, while nothing has disturbed that token for longer
than the recovery bound: the 20 s cap on retries of an expired token, plus one
request (`--http-timeout`), plus, for the Pod's file, the kubelet's
propagation (see docs/reliability.md). With the lead lifetimes a fault counts
as a disturbance of a token only if it lasts at least that token's refresh
lead (a third of its lifetime) or acts on the token itself (its Secret
deleted or edited, its spec or credentials changed): a shorter fault must be
absorbed by the lead. The *judged fraction* is the share of samples no
disturbance excused. With 5-10 s tokens every fault is longer than the lead,
so every fault excuses, and most of the run is not judged.

Prints the figures, writes them as JSON (`--json`), and exits non-zero when
any violation, lost token or leaked secret is found, or a fault could not be
injected. The last line is
`violations: N, lost: N, recovery max: S s, judged: P %`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import itertools
import json
import os
import random
import resource
import secrets
import signal
import ssl
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from egain_token_operator.controller.reconcile import REQUESTING
from testground import controlplane, incluster, procfs
from testground.delay import DelayingForwarder, kubeconfig_through
from testground.emulator import EgainEmulator, FaultKind, RequestRecord
from testground.operatorprocess import OperatorProcess, wait_until

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "soak"
TENANT = "TMPRODB88619984"
SCOPES = ("knowledge.portalmgr.manage", "knowledge.portalmgr.read")
# Seconds; one eGain client per lifetime. `lead`: long enough that a refresh
# lead (a third) covers the short faults; `stress`: shorter than most faults.
LIFETIMES = {"lead": range(60, 121, 12), "stress": range(5, 11)}
CONSUMER_TOKEN = "file-consumer"
LEASE = f"{NAMESPACE}/egain-token-operator"
MANAGED = "app.kubernetes.io/managed-by=egain-token-operator"
# The documented cap on the wait between retries once a token has expired
# (docs/api.md, "When a failed request is retried").
EXPIRED_RETRY_CAP = 20.0
# The kubelet's pod sync period here, and what a changed Secret may take to
# reach a Pod's file with it: the period and its jitter (up to half of it),
# the kubelet's Secret watch and write, and the consumer's 1 s reading.
SYNC_FREQUENCY = "1s"
FILE_PROPAGATION = 5.0
# Seconds of a replica's life before its memory is judged for growth.
WARM_UP = 300.0
# What a sample is when its Secret holds a token that expires before one it
# held earlier: written by a replica that acted on a stale view. Never excused.
OLDER = "a token older than one it held before"
EGAIN_FAULTS = frozenset(
    {
        "5xx_burst", "hang", "reset", "429_retry_after", "429_no_retry_after",
        "malformed_body", "html_body", "long_outage",
    }
)  # fmt: skip
KUBE_FAULTS = frozenset(
    {
        "apiserver_restart", "etcd_pause", "operator_kill_mid_refresh", "leader_kill",
        "leader_partition", "leader_freeze", "apiserver_slow",
        "credentials_rotation", "secret_deleted", "secret_edited", "spec_changed",
    }
)  # fmt: skip
# With the lead lifetimes: the faults that outlast a lead come once per 10
# minutes of the run; the others, about one every LEAD_FAULT_EVERY seconds.
ONCE_PER_10_MIN = ("long_outage", "apiserver_restart")
LEAD_FAULT_EVERY = 30.0
# Kinds that act on the tokens they name themselves: a sample of one of them
# is excused whatever the lead.
TAMPERING = {"credentials_rotation", "secret_deleted", "secret_edited", "spec_changed"}


# --- what happened when: disturbances -----------------------------------------


@dataclass
class Window:
    """A disturbance: a fault, from `start` to `end` (epoch seconds), for some tokens or all."""

    kind: str
    start: float
    end: float | None = None
    tokens: frozenset[str] | None = None  # None: every token
    note: str = ""

    def affects(self, token: str) -> bool:
        return self.tokens is None or token in self.tokens


class Timeline:
    """Every disturbance of the run, thread-safe."""

    def __init__(self, started: float) -> None:
        self.started = started
        self._lock = threading.Lock()
        self.windows: list[Window] = []

    @contextlib.contextmanager
    def disturbance(
        self,
        kind: str,
        tokens: Sequence[str] | None = None,
        note: str = "",
        start: float | None = None,
    ) -> Iterator[Window]:
        """A disturbance from `start` (default: now) until the block ends."""
        window = Window(
            kind,
            time.time() if start is None else start,
            tokens=None if tokens is None else frozenset(tokens),
            note=note,
        )
        with self._lock:
            self.windows.append(window)
        try:
            yield window
        finally:
            window.end = time.time()
            print(
                f"  {window.start - self.started:6.1f} s  {kind}"
                f" ({window.end - window.start:.1f} s){' ' + window.note if window.note else ''}",
                flush=True,
            )

    def undisturbed_for(
        self, token: str, at: float, excuses: Callable[[Window], bool] = lambda _: True
    ) -> float:
        """How long before `at` nothing that `excuses` had disturbed `token` (0 while
        something does)."""
        since = self.started
        for window in self.windows:
            if window.start > at or not window.affects(token) or not excuses(window):
                continue
            if window.end is None or window.end >= at:
                return 0.0
            since = max(since, window.end)
        return at - since

    def global_windows(self) -> list[Window]:
        return sorted((w for w in self.windows if w.tokens is None), key=lambda w: w.start)


# --- the run ------------------------------------------------------------------


@dataclass
class TokenPlan:
    name: str
    flow: str
    lifetime: int
    client: str  # the eGain client id
    scopes: tuple[str, ...]
    shared: bool = False  # through an EgainClient (`clientRef`), not inline


@dataclass
class Observed:
    """What the sampler saw."""

    samples: int = 0
    failed_reads: int = 0
    # (at, token, what) for every sample that held no valid token
    bad: list[tuple[float, str, str]] = field(default_factory=list)
    # (at, number of tokens without a valid one) for every successful read
    ticks: list[tuple[float, int]] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    token_requests: int = 0


class Soak:
    """The cluster, the emulator, the operator replicas and the faults of one run."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.state_dir: Path = args.state_dir.resolve()
        self.cluster_dir = self.state_dir / "cluster"
        self.plane: controlplane.ControlPlane | None = None
        self.emulator = EgainEmulator(self.state_dir / "emulator")
        self.lifetimes = LIFETIMES[args.lifetimes]
        self.tokens: list[TokenPlan] = []
        self.plans: dict[str, TokenPlan] = {}  # by name
        self.client_secrets: dict[str, str] = {}  # client id → current secret
        self.client_secret_names: dict[str, str] = {}  # client id → credentials Secret
        self.rotated_at: dict[str, float] = {}  # client id → last rotation (epoch)
        self.replicas: list[OperatorProcess] = []
        self.all_replicas: list[OperatorProcess] = []
        # Each replica's way to the API server (by log name), to cut or slow it.
        self.forwarders = contextlib.ExitStack()
        self.paths: dict[str, DelayingForwarder] = {}
        self.api_slow = threading.Event()
        # One entry per partition or freeze of the leader: what both replicas did.
        self.split_brain: list[dict[str, Any]] = []
        # Per minute: each live replica's RSS, file descriptors and sockets.
        self.resources: list[dict[str, Any]] = []
        self.unmet: Counter[str] = Counter()  # eGain faults no request met
        self.newest: dict[str, float] = {}  # token → the latest expiry its Secret held
        self.timeline = Timeline(time.time())
        self.observed = Observed()
        self.observed_file: list[incluster.Sample] = []
        self.faults: Counter[str] = Counter()
        self.failovers: list[float] = []
        self.in_flight_at_kill: list[int] = []
        # CPU time used, by operator log name, cluster component (the API server
        # since its restart) and the soak itself
        self.cpu_seconds: dict[str, float] = {}
        self.stop_sampling = threading.Event()
        self.errors: list[str] = []

    @property
    def cluster(self) -> controlplane.ControlPlane:
        assert self.plane is not None
        return self.plane

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return self.cluster.kubectl(*args, input=input).stdout

    def apply(self, *manifests: dict[str, Any]) -> None:
        incluster.apply(self.cluster, *manifests)

    # -- setting up -------------------------------------------------------------

    def start(self) -> None:
        self.plane = controlplane.start(self.cluster_dir, sync_frequency=SYNC_FREQUENCY)
        self.emulator.start()
        self.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        self.kubectl("wait", "--for=condition=Established", "-f", str(REPO / "crds"))
        self.kubectl("create", "namespace", NAMESPACE)
        for lifetime in self.lifetimes:
            client_id = f"soak-{lifetime}s-{uuid.uuid4().hex[:8]}"
            secret = secrets.token_urlsafe(32)
            self.emulator.register_client(client_id, secret, TENANT, SCOPES, lifetime)
            self.client_secrets[client_id] = secret
            self.client_secret_names[client_id] = f"egain-client-{lifetime}s"
            self.write_credentials(client_id)
        clients = list(self.client_secrets)
        self.apply(
            *(
                self.egain_client(client, flow)
                for client in clients
                for flow in ("ClientApp", "AnonymousCustomer")
            )
        )
        for index in range(self.args.tokens):
            flow = ("ClientApp", "AnonymousCustomer")[index % 2]
            client = clients[(index // 2) % len(clients)]
            lifetime = self.lifetimes[clients.index(client)]
            # Every fourth pair through an EgainClient: the token's namespace
            # holds no credentials of its own then.
            shared = index % 8 >= 6
            self.tokens.append(
                TokenPlan(f"token-{index:04d}", flow, lifetime, client, SCOPES[:1], shared)
            )
        # The one a Pod mounts: the longest lifetime, refreshed at half of it so
        # that the kubelet has time to bring the new token to the file.
        self.tokens.append(
            TokenPlan(CONSUMER_TOKEN, "ClientApp", max(self.lifetimes), clients[-1], SCOPES[:1])
        )
        self.plans = {token.name: token for token in self.tokens}
        self.apply(*(self.manifest(token) for token in self.tokens))
        self.start_replica()
        wait_until(self.leader, "a replica to lead", 60)
        self.start_replica()
        self.apply(
            incluster.consumer_pod(
                self.cluster, "consumer", NAMESPACE, incluster.SAMPLER_SCRIPT, CONSUMER_TOKEN
            )
        )
        wait_until(self.all_ready, f"all {len(self.tokens)} tokens Ready", 300)
        self.kubectl(
            "wait", "--for=condition=Ready", "pod/consumer", "-n", NAMESPACE, "--timeout=3m"
        )

    def client_fields(self, client: str, flow: str) -> dict[str, Any]:
        """The inline client of a token, or the spec of an EgainClient."""
        fields: dict[str, Any] = {
            "flow": flow,
            "credentialsSecretRef": {"name": self.client_secret_names[client]},
        }
        if flow == "ClientApp":
            fields["tokenUrl"] = self.emulator.client_app_token_url(TENANT)
        else:
            fields["tokenUrl"] = self.emulator.anonymous_token_url()
            fields["tenantId"] = TENANT
        return fields

    def egain_client(self, client: str, flow: str) -> dict[str, Any]:
        return {
            "apiVersion": "egain.cloud/v1alpha1",
            "kind": "EgainClient",
            "metadata": {"name": shared_client_name(client, flow), "namespace": NAMESPACE},
            "spec": self.client_fields(client, flow),
        }

    def manifest(self, token: TokenPlan) -> dict[str, Any]:
        spec: dict[str, Any] = {"scopes": list(token.scopes)}
        if token.shared:
            name = shared_client_name(token.client, token.flow)
            spec["clientRef"] = {"kind": "EgainClient", "name": name}
        else:
            spec.update(self.client_fields(token.client, token.flow))
        if token.name == CONSUMER_TOKEN:
            spec["refreshBefore"] = f"{token.lifetime // 2}s"
        return {
            "apiVersion": "egain.cloud/v1alpha1",
            "kind": "EgainToken",
            "metadata": {"name": token.name, "namespace": NAMESPACE},
            "spec": spec,
        }

    def write_credentials(self, client_id: str) -> None:
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": self.client_secret_names[client_id], "namespace": NAMESPACE},
                "stringData": {
                    "client_id": client_id,
                    "client_secret": self.client_secrets[client_id],
                },
            }
        )

    def operator_args(self) -> list[str]:
        return [
            "--namespace", NAMESPACE,
            "--allowed-token-hosts", f"localhost:{self.emulator.port}",
            "--ca-bundle", str(self.emulator.ca_file),
            "--log-level", "debug",
            "--leader-election-lease", LEASE,
            "--http-timeout", str(self.args.http_timeout),
            "--propagation-allowance", "0",
        ]  # fmt: skip

    def start_replica(self) -> OperatorProcess:
        """A replica, reaching the API server through a forwarder of its own."""
        number = len(self.all_replicas)
        log = self.state_dir / f"operator-{number}.log"
        log.unlink(missing_ok=True)
        forwarder = DelayingForwarder(
            (self.cluster.gateway, controlplane.APISERVER_PORT),
            lambda: self.rng.uniform(1.0, 3.0) if self.api_slow.is_set() else 0.0,
        )
        self.forwarders.enter_context(forwarder)
        kubeconfig = kubeconfig_through(
            self.cluster.kubeconfig,
            forwarder.port,
            self.state_dir / f"operator-{number}.kubeconfig",
        )
        replica = OperatorProcess(self.cluster, log, self.operator_args(), kubeconfig=kubeconfig)
        self.paths[replica.log_path.name] = forwarder
        replica.start()
        self.replicas.append(replica)
        self.all_replicas.append(replica)
        return replica

    def leader(self) -> OperatorProcess | None:
        for replica in self.replicas:
            with contextlib.suppress(httpx.HTTPError):
                if replica.leading():
                    return replica
        return None

    def all_ready(self) -> bool:
        items = json.loads(self.kubectl("get", "egt", "-n", NAMESPACE, "-o", "json"))["items"]
        ready = sum(
            any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (item.get("status") or {}).get("conditions", [])
            )
            for item in items
        )
        return ready == len(self.tokens)

    # -- the sampler ------------------------------------------------------------

    def sample(self) -> None:
        """Read every managed Secret once a second until told to stop; collect token requests."""
        plane = self.cluster
        context = ssl.create_default_context(cafile=str(plane.ca_file))
        pki_dir = plane.state_dir / "pki"
        context.load_cert_chain(str(pki_dir / "admin.crt"), str(pki_dir / "admin.key"))
        url = f"{plane.server}/api/v1/namespaces/{NAMESPACE}/secrets"
        names = [token.name for token in self.tokens]
        last_request = 0.0
        with httpx.Client(verify=context, timeout=2.0) as http:
            while not self.stop_sampling.is_set():
                tick = time.time()
                last_request = self.collect_requests(last_request)
                try:
                    response = http.get(url, params={"labelSelector": MANAGED})
                    response.raise_for_status()
                    items = response.json()["items"]
                except (httpx.HTTPError, ValueError):
                    self.observed.failed_reads += 1
                    items = None
                if items is not None:
                    at = time.time()
                    held = {
                        item["metadata"]["labels"].get("egain.cloud/token"): item.get("data") or {}
                        for item in items
                    }
                    bad = 0
                    for name in names:
                        self.observed.samples += 1
                        what = self.judge(name, held.get(name), at)
                        if what is not None:
                            bad += 1
                            self.observed.bad.append((at, name, what))
                    self.observed.ticks.append((at, bad))
                self.stop_sampling.wait(max(0.0, 1.0 - (time.time() - tick)))
        self.collect_requests(last_request)

    def watch_resources(self) -> None:
        """Every `--resource-every` seconds: each live replica's RSS, open files and sockets."""
        while not self.stop_sampling.wait(self.args.resource_every):
            at = round(time.time() - self.timeline.started, 1)
            for replica in list(self.replicas):
                assert replica.process is not None
                with contextlib.suppress(OSError):  # killed meanwhile
                    self.resources.append(
                        {
                            "at": at,
                            "replica": replica.log_path.name,
                            **resources(replica.process.pid),
                        }
                    )

    def judge(self, name: str, data: dict[str, str] | None, at: float) -> str | None:
        """None when `data` holds a valid token for `name` at `at`; else what is wrong."""
        if data is None:
            return "missing"
        token = base64.b64decode(data.get("access_token", "")).decode(errors="replace")
        info = self.emulator.token_info(token)
        if info is None:
            return "not a token eGain issued"
        expires = info.expires_at.timestamp()
        if expires < self.newest.get(name, 0.0):
            return OLDER
        self.newest[name] = expires
        if at >= expires:
            return "expired"
        return None

    def collect_requests(self, after: float) -> float:
        records: list[RequestRecord] = [r for r in self.emulator.requests() if r.monotonic > after]
        for record in records:
            self.observed.token_requests += 1
            outcome = "issued" if record.token_issued else (record.fault or record.error or "other")
            self.observed.requests[str(outcome)] += 1
        return max((r.monotonic for r in records), default=after)

    # -- the faults -------------------------------------------------------------

    def egain_fault(self, kind: str) -> None:
        """One eGain fault, for every request (or one client's), for a fixed time.

        The time runs from the first request that meets the fault: one set
        while the operator sends nothing (the API server is down, say) tests
        nothing, and with shared requests a request may be seconds away.
        """
        # Lead lifetimes: 3-15 s, all shorter than the shortest refresh lead.
        hold = 3.0 if self.args.lifetimes == "stress" else self.rng.uniform(3.0, 15.0)
        options: dict[str, Any] = {}
        tokens: list[str] | None = None
        note = ""
        match kind:
            case "5xx_burst":
                fault = FaultKind.SERVER_ERROR
                options["status"] = self.rng.choice((500, 502, 503, 504))
            case "hang":
                fault, hold = FaultKind.HANG, self.args.http_timeout + 2.0
            case "reset":
                fault = FaultKind.RESET
            case "429_retry_after":
                fault, options["retry_after"] = FaultKind.RATE_LIMITED, 2
            case "429_no_retry_after":
                fault, options["retry_after"] = FaultKind.RATE_LIMITED, None
            case "malformed_body":
                fault = FaultKind.NON_JSON
            case "html_body":
                fault = FaultKind.HTML
            case "long_outage":
                fault = FaultKind.SERVER_ERROR
                if self.args.lifetimes == "stress":
                    # Past every token's lifetime: every token expires, and recovers.
                    hold = max(self.lifetimes) + 5.0
                else:
                    # One eGain client down past its tokens' refresh lead: they
                    # expire and recover, while the other clients' must not.
                    client = self.rng.choice(list(self.client_secrets))
                    options["client_id"] = client
                    tokens = [t.name for t in self.tokens if t.client == client]
                    hold = max(self.lead(self.plans[name]) for name in tokens) + 5.0
                    note = f"one client, {len(tokens)} tokens"
            case _:
                raise ValueError(kind)
        armed = datetime.datetime.now(datetime.UTC)
        self.emulator.set_fault(fault, count=None, **options)
        try:
            first = self.first_met(fault, armed, options.get("client_id"))
            with self.timeline.disturbance(kind, tokens, note, start=first) as window:
                if first is None:
                    self.unmet[kind] += 1
                    window.note = "no request met it"
                else:
                    time.sleep(max(0.0, first + hold - time.time()))
        finally:
            self.emulator.clear_faults(fault)
        self.faults[kind] += 1

    def first_met(
        self, fault: FaultKind, since: datetime.datetime, client: str | None
    ) -> float | None:
        """When the first request met `fault` (epoch seconds); None if none came in a lifetime."""

        def met() -> float | None:
            for record in self.emulator.requests():
                if (
                    record.fault == fault
                    and record.wall_time >= since
                    and client in (None, record.client_id)
                ):
                    return record.wall_time.timestamp()
            return None

        with contextlib.suppress(AssertionError):
            return wait_until(met, f"a request to meet {fault}", max(self.lifetimes) + 10.0)
        return None

    def kube_fault(self, kind: str) -> None:
        match kind:
            case "apiserver_restart":
                with self.timeline.disturbance(kind):
                    controlplane.restart_component(self.cluster_dir, "kube-apiserver", down_for=5)
            case "etcd_pause":
                with self.timeline.disturbance(kind), controlplane.paused(self.cluster_dir, "etcd"):
                    time.sleep(10)
            case "operator_kill_mid_refresh":
                self.kill_leader(kind, mid_refresh=True)
            case "leader_kill":
                self.kill_leader(kind, mid_refresh=False)
            case "leader_partition" | "leader_freeze":
                self.split_leader(kind)
            case "apiserver_slow":
                with self.timeline.disturbance(kind, note="every request 1-3 s late"):
                    self.api_slow.set()
                    time.sleep(15.0)
                    self.api_slow.clear()
            case "credentials_rotation":
                client = self.rng.choice(list(self.client_secrets))
                affected = [t.name for t in self.tokens if t.client == client]
                with self.timeline.disturbance(kind, affected, note=f"{len(affected)} tokens"):
                    self.client_secrets[client] = self.emulator.rotate_secret(client)
                    self.rotated_at[client] = time.time()
                    self.write_credentials(client)
            case "secret_deleted":
                token = self.rng.choice(self.tokens[:-1])
                with self.timeline.disturbance(kind, [token.name]):
                    self.kubectl("delete", "secret", token.name, "-n", NAMESPACE, "--wait=false")
            case "secret_edited":
                token = self.rng.choice(self.tokens[:-1])
                edited = base64.b64encode(b"edited-by-hand").decode()
                patch = json.dumps({"data": {"access_token": edited}})
                with self.timeline.disturbance(kind, [token.name]):
                    self.kubectl("patch", "secret", token.name, "-n", NAMESPACE, "-p", patch)
            case "spec_changed":
                token = self.rng.choice(self.tokens[:-1])
                token.scopes = SCOPES if token.scopes != SCOPES else SCOPES[:1]
                with self.timeline.disturbance(kind, [token.name]):
                    self.apply(self.manifest(token))
            case _:
                raise ValueError(kind)
        self.faults[kind] += 1

    def kill_leader(self, kind: str, *, mid_refresh: bool) -> None:
        """SIGKILL the active replica (during requests, if `mid_refresh`), start it again."""
        leader = wait_until(self.leader, "a leader", 60)
        if mid_refresh:
            # Every answer comes late: kill only once requests are in flight.
            self.emulator.set_fault(FaultKind.LATENCY, count=None, delay=2.0)
            wait_until(
                lambda: self.emulator.concurrency().current > 0,
                "a request in flight",
                max(self.lifetimes) + 10.0,
            )
        with self.timeline.disturbance(kind) as window:
            assert leader.process is not None
            self.cpu_seconds[leader.log_path.name] = cpu_seconds(leader.process.pid)
            in_flight = self.emulator.concurrency().current
            killed_at = time.time()
            leader.kill()
            self.replicas.remove(leader)
            if mid_refresh:
                # The late answers (2 s) go to a dead process; then answers come on time.
                time.sleep(2.5)
                self.emulator.clear_faults(FaultKind.LATENCY)
                self.in_flight_at_kill.append(in_flight)
                window.note = f"{in_flight} requests in flight"
            self.start_replica()
            wait_until(self.leader, "a replica to take over", 90)
            self.failovers.append(time.time() - killed_at)

    def split_leader(self, kind: str) -> None:
        """Cut the leader off from the API server (`leader_partition`), or freeze it
        (`leader_freeze`, SIGSTOP), until the standby has taken over and 5 s more;
        then heal it (SIGCONT). Records when each replica acted, and the token
        requests the old leader made once the standby held the Lease.

        The disturbance lasts until the standby leads: from then on the tokens
        are served again, whatever the old leader does.
        """
        leader = wait_until(self.leader, "a leader", 60)
        standby = next(r for r in self.replicas if r is not leader)
        assert leader.process is not None
        pid, path = leader.process.pid, self.paths[leader.log_path.name]
        frozen = kind == "leader_freeze"
        stood_by: float | None = None

        def standing_by() -> bool:
            nonlocal stood_by
            if stood_by is None and not leader.leading():
                stood_by = time.time()
            return stood_by is not None

        try:
            with self.timeline.disturbance(kind) as window:
                if frozen:
                    os.killpg(pid, signal.SIGSTOP)
                else:
                    path.cut()
                while not standby.leading():
                    if not frozen:
                        standing_by()
                    if time.time() - window.start > 90:
                        raise AssertionError(f"the standby did not take over in 90 s ({kind})")
                    time.sleep(0.1)
            took_over = time.time()
            if not frozen:
                wait_until(standing_by, "the cut-off leader to stand by", 30)
            time.sleep(5.0)
        finally:
            if frozen:
                os.killpg(pid, signal.SIGCONT)
            else:
                path.heal()
        healed = time.time()
        wait_until(standing_by, "the old leader to stand by", 30)
        assert stood_by is not None
        time.sleep(10.0)  # back as a follower: it must ask for nothing
        found: dict[str, Any] = {"kind": kind, "takeover_s": round(took_over - window.start, 1)}
        if frozen:
            found["led_after_resume_s"] = round(stood_by - healed, 1)
        else:
            found["stood_by_s"] = round(stood_by - window.start, 1)
            found["both_acting_s"] = round(max(0.0, stood_by - took_over), 1)
        found["requests_after_lease_lost"] = requests_sent(leader, took_over)
        self.split_brain.append(found)

    def fault(self, kind: str) -> None:
        """Inject one fault of `kind`."""
        (self.egain_fault if kind in EGAIN_FAULTS else self.kube_fault)(kind)

    def run_faults(self, kinds: list[str], until: float, gap: float) -> None:
        """Run `kinds` one after the other, spread over the run at random, each
        at least `gap` seconds after the one before ended."""
        self.rng.shuffle(kinds)
        slot = (until - time.time()) / len(kinds)
        first = ended = time.time()
        for index, kind in enumerate(kinds):
            start = max(first + index * slot + self.rng.uniform(0, slot * 0.5), ended + gap)
            time.sleep(max(0.0, start - time.time()))
            try:
                self.fault(kind)
            except Exception as exc:  # a fault that could not be done is a failed run
                self.errors.append(f"{kind}: {type(exc).__name__}: {exc}")
            ended = time.time()

    def fault_plan(self) -> list[list[str]]:
        """The faults, each kind once and more at random in longer runs, as lists
        run side by side.

        Stress: eGain and Kubernetes faults in two lists, so they overlap at
        times. Lead: one list, so that no fault eats into the lead the one
        before left (see `quiet_gap`): a fault a token's lead absorbs must not
        excuse it, and two in a row may add up past it.
        """
        egain = sorted(EGAIN_FAULTS - {"long_outage"})
        kube = sorted(KUBE_FAULTS)
        repeatable = sorted((EGAIN_FAULTS | KUBE_FAULTS) - set(ONCE_PER_10_MIN))
        if self.args.lifetimes == "stress":
            extra = max(0, int(self.args.duration // 40) - len(egain))
            egain += [self.rng.choice(egain) for _ in range(extra)] + ["long_outage"]
            kube += [
                self.rng.choice(["credentials_rotation", "secret_deleted", "secret_edited"])
                for _ in range(max(0, int(self.args.duration // 60) - 2))
            ]
            return [egain, kube]
        plan = egain + kube + ["long_outage"]
        plan += [
            kind for kind in ONCE_PER_10_MIN for _ in range(int(self.args.duration // 600) - 1)
        ]
        plan += [
            self.rng.choice(repeatable)
            for _ in range(max(0, int(self.args.duration // LEAD_FAULT_EVERY) - len(plan)))
        ]
        return [plan]

    @property
    def quiet_gap(self) -> float:
        """Seconds of quiet after each fault with the lead lifetimes: what a token
        still valid takes to be refreshed after a failure (its retry waits at
        most a quarter of its remaining validity, at most its lead, plus one
        request); none in the stress variant."""
        if self.args.lifetimes == "stress":
            return 0.0
        return max(self.lifetimes) / 3 * 0.25 + float(self.args.http_timeout)

    # -- the whole run ----------------------------------------------------------

    def run(self) -> dict[str, Any]:
        started = time.time()
        self.timeline = Timeline(started)
        sampler = threading.Thread(target=self.sample, name="sampler", daemon=True)
        sampler.start()
        watcher = threading.Thread(target=self.watch_resources, name="resources", daemon=True)
        watcher.start()
        until = started + self.args.duration
        # Daemons, so that a stopped soak (Ctrl-C, SIGTERM) does not wait for them.
        threads = [
            threading.Thread(
                target=self.run_faults, args=(kinds, until, self.quiet_gap), daemon=True
            )
            for kinds in self.fault_plan()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Quiet to the end, and at least one recovery bound after the last fault.
        time.sleep(max(until - time.time(), 0.0) + self.bound + 5.0)
        self.stop_sampling.set()
        sampler.join()
        watcher.join()
        ran = time.time() - started
        for replica in self.replicas:
            assert replica.process is not None
            self.cpu_seconds[replica.log_path.name] = cpu_seconds(replica.process.pid)
        for component in ("kube-apiserver", "etcd"):
            pid = controlplane.component_pid(self.cluster_dir, component)
            self.cpu_seconds[component] = cpu_seconds(pid)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu_seconds["soak (sampler, emulator)"] = round(usage.ru_utime + usage.ru_stime, 1)
        return self.report(ran)

    @property
    def bound(self) -> float:
        return EXPIRED_RETRY_CAP + float(self.args.http_timeout)

    def lead(self, token: TokenPlan) -> float:
        """How long before expiry `token` is refreshed (before jitter)."""
        return token.lifetime / (2 if token.name == CONSUMER_TOKEN else 3)

    def excuses(self, token: TokenPlan) -> Callable[[Window], bool]:
        """Which disturbances excuse a sample of `token` (see the module's doc)."""
        if self.args.lifetimes == "stress":
            return lambda window: True
        lead = self.lead(token)
        return lambda window: (
            window.kind in TAMPERING or window.end is None or window.end - window.start >= lead
        )

    def undisturbed_for(self, name: str, at: float) -> float:
        """`Timeline.undisturbed_for` with the disturbances that excuse token `name`."""
        return self.timeline.undisturbed_for(name, at, self.excuses(self.plans[name]))

    def judged_fraction(self) -> float:
        """The share of API samples taken while no disturbance excused them."""
        names = [token.name for token in self.tokens]
        judged = total = 0
        for at, _ in self.observed.ticks:
            for name in names:
                total += 1
                judged += self.undisturbed_for(name, at) > self.bound
        return judged / total if total else 0.0

    # -- the figures ------------------------------------------------------------

    def violations(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        api = [
            {"at": round(at - self.timeline.started, 1), "token": name, "what": what}
            for at, name, what in self.observed.bad
            if what == OLDER or self.undisturbed_for(name, at) > self.bound
        ]
        logs = self.kubectl("logs", "consumer", "-n", NAMESPACE)
        expiry = {t.fingerprint: t.expires_at.timestamp() for t in self.emulator.issued_tokens()}
        self.observed_file = incluster.samples(logs)
        file = []
        for sample in self.observed_file:
            expires = expiry.get(sample.fingerprint)
            if expires is not None and sample.at < expires:
                continue
            since = self.undisturbed_for(CONSUMER_TOKEN, sample.at)
            if since > self.bound + FILE_PROPAGATION:
                what = "expired" if expires is not None else "not a token eGain issued"
                file.append({"at": round(sample.at - self.timeline.started, 1), "what": what})
        return api, file

    def recoveries(self) -> list[dict[str, Any]]:
        """For each disturbance of every token: from its end until a pass found every token valid.

        Another disturbance may begin before that (`overlapped`); the time then
        counts both. `complete` is false when no such pass came before the end.
        """
        windows = self.timeline.global_windows()
        ticks = self.observed.ticks
        found = []
        for window in windows:
            end = window.end
            assert end is not None
            clean = next((at for at, bad in ticks if at >= end and bad == 0), None)
            until = clean if clean is not None else (ticks[-1][0] if ticks else end)
            found.append(
                {
                    "kind": window.kind,
                    "at": round(window.start - self.timeline.started, 1),
                    "lasted_s": round(end - window.start, 1),
                    "recovery_s": round(max(until - end, 0.0), 1),
                    "complete": clean is not None,
                    "overlapped": any(end < w.start < until for w in windows),
                }
            )
        return found

    def lost(self) -> list[dict[str, str]]:
        """Tokens whose Secret is missing or holds a token not for its spec and credentials.

        (An expired one is a violation, counted by the sampler.)
        """
        items = json.loads(
            self.kubectl("get", "secrets", "-n", NAMESPACE, "-l", MANAGED, "-o", "json")
        )["items"]
        held = {
            i["metadata"]["labels"].get("egain.cloud/token"): i.get("data") or {} for i in items
        }
        lost = []
        for token in self.tokens:
            data = held.get(token.name)
            why = None
            if data is None:
                why = "Secret missing"
            else:
                value = base64.b64decode(data.get("access_token", "")).decode(errors="replace")
                info = self.emulator.token_info(value)
                if info is None:
                    why = "not a token eGain issued"
                elif info.client_id != token.client:
                    why = "a token of another client"
                elif info.issued_at.timestamp() < self.rotated_at.get(token.client, 0.0):
                    why = "a token of the old credentials"
                elif {s.rsplit("/", 1)[-1] for s in info.scope.split()} != set(token.scopes):
                    why = "a token of an old spec"
            if why is not None:
                lost.append({"token": token.name, "why": why})
        return lost

    def watchdog(self) -> dict[str, Any]:
        """The longest time with no token issued while nothing disturbed every token."""
        issued = sorted(t.issued_at.timestamp() for t in self.emulator.issued_tokens())
        issued = [at for at in issued if at >= self.timeline.started]
        windows = self.timeline.global_windows()
        longest = 0.0
        for before, after in itertools.pairwise(issued):
            covered = sum(
                max(0.0, min(after, w.end or after) - max(before, w.start)) for w in windows
            )
            longest = max(longest, after - before - covered)
        # Every token refreshes within its lifetime: no token issued for longer,
        # while nothing disturbed every token, is a stall.
        threshold = float(max(self.lifetimes))
        return {
            "threshold_s": threshold,
            "longest_undisturbed_gap_s": round(longest, 1),
            "stalled": longest > threshold,
        }

    def api_errors(self) -> dict[str, int]:
        """Kubernetes API failures in the operator's logs, by what reported them."""
        counts: Counter[str] = Counter()
        for replica in self.all_replicas:
            for line in replica.log().splitlines():
                if "Kubernetes API call failed" in line:
                    counts["token worker"] += 1
                elif "Lease " in line and ("WARNING" in line or "ERROR" in line):
                    counts["leader election"] += 1
                elif ("[WARNING" in line or "[ERROR" in line) and "kopf" in line:
                    counts["kopf"] += 1
        return dict(counts)

    def leaks(self) -> int:
        texts = [replica.log() for replica in self.all_replicas]
        texts.append(self.kubectl("get", "events", "-n", NAMESPACE, "-o", "json"))
        texts.append(self.kubectl("get", "egaintokens", "-n", NAMESPACE, "-o", "json"))
        return len(self.emulator.secrets_in("\n".join(texts)))

    def report(self, ran: float) -> dict[str, Any]:
        api, file = self.violations()
        recoveries = self.recoveries()
        times = [r["recovery_s"] for r in recoveries]
        token_hours = len(self.tokens) * ran / 3600
        return {
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": {"nproc": os.cpu_count(), "load_average": os.getloadavg()},
            "duration_s": self.args.duration,
            "ran_s": round(ran, 1),
            "tokens": len(self.tokens),
            "lifetimes": self.args.lifetimes,
            "lifetimes_s": [min(self.lifetimes), max(self.lifetimes)],
            "flows": dict(Counter(t.flow for t in self.tokens)),
            "operator_args": self.operator_args(),
            "bound_s": {"api": self.bound, "file": self.bound + FILE_PROPAGATION},
            "samples": {
                "api": self.observed.samples,
                "file": len(self.observed_file),
                "failed_reads": self.observed.failed_reads,
                "without_valid_token": len(self.observed.bad),
            },
            "violations": len(api) + len(file),
            "judged_fraction": round(self.judged_fraction(), 3),
            "violation_samples": {"api": api[:20], "file": file[:20]},
            "violations_by_10s": dict(sorted(Counter(v["at"] // 10 * 10 for v in api).items())),
            "violations_by_what": dict(Counter(v["what"] for v in api + file)),
            "token_requests": self.observed.token_requests,
            "tokens_issued_per_s": round(self.observed.requests["issued"] / ran, 1),
            "cpu_s": self.cpu_seconds,
            "token_requests_by_outcome": dict(self.observed.requests),
            "requests_per_token_hour": round(self.observed.token_requests / token_hours, 1),
            "faults": dict(sorted(self.faults.items())),
            "faults_unmet": dict(self.unmet),
            "fault_errors": self.errors,
            "split_brain": self.split_brain,
            "recovery_s": {
                "p50": round(statistics.median(times), 1) if times else 0.0,
                "max": max(times, default=0.0),
                "each": recoveries,
            },
            "failovers_s": [round(f, 1) for f in self.failovers],
            "in_flight_at_kill": self.in_flight_at_kill,
            "lost": len(lost := self.lost()),
            "lost_tokens": lost,
            "api_errors": self.api_errors(),
            "watchdog": self.watchdog(),
            "leaks": self.leaks(),
            "resources": growth(self.resources, WARM_UP),
            "resource_samples": self.resources,
        }

    def stop(self) -> None:
        for replica in self.replicas:
            with contextlib.suppress(Exception):
                replica.stop()
        for forwarder in self.paths.values():
            forwarder.heal()
        self.forwarders.close()
        self.emulator.stop()
        controlplane.stop(self.cluster_dir)


def requests_sent(replica: OperatorProcess, since: float) -> int:
    """The token requests `replica` logged as sent at `since` (epoch seconds) or later."""
    sent = 0
    for line in replica.log().splitlines():
        if REQUESTING in line and line.startswith("["):
            at = datetime.datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            sent += at >= since
    return sent


def cpu_seconds(pid: int) -> float:
    """CPU seconds process `pid` has used so far, to a tenth."""
    return round(procfs.cpu_seconds(pid), 1)


def shared_client_name(client: str, flow: str) -> str:
    """The EgainClient of eGain client `client` in `flow`."""
    return f"{client}-{flow.lower()}"


def resources(pid: int) -> dict[str, int]:
    """Process `pid`'s resident memory (KiB), open file descriptors and sockets among them."""
    fds, sockets = procfs.open_files(pid)
    return {"rss_kib": procfs.status_kib(pid, "VmRSS"), "fds": fds, "sockets": sockets}


def growth(samples: list[dict[str, Any]], warm_up: float) -> dict[str, Any]:
    """Per replica: its resources over the run, and the RSS slope after `warm_up` seconds."""
    found: dict[str, Any] = {}
    for name in sorted({s["replica"] for s in samples}):
        own = [s for s in samples if s["replica"] == name]
        warm = [s for s in own if s["at"] - own[0]["at"] >= warm_up]
        slope = None
        if len(warm) >= 3:
            minutes = [s["at"] / 60 for s in warm]
            slope = round(
                statistics.linear_regression(minutes, [s["rss_kib"] for s in warm]).slope, 1
            )
        found[name] = {
            "samples": len(own),
            "rss_mib": [round(own[0]["rss_kib"] / 1024, 1), round(own[-1]["rss_kib"] / 1024, 1)],
            "rss_slope_kib_per_min": slope,
            "fds": [min(s["fds"] for s in own), max(s["fds"] for s in own)],
            "sockets": [min(s["sockets"] for s in own), max(s["sockets"] for s in own)],
        }
    return found


def print_report(report: dict[str, Any]) -> None:
    samples, recovery, bound = report["samples"], report["recovery_s"], report["bound_s"]
    lines = [
        f"tokens: {report['tokens']} {report['flows']}, lifetimes {report['lifetimes_s']} s",
        f"ran: {report['ran_s']} s",
        f"samples: {samples}",
        f"recovery bound: {bound['api']} s (API), {bound['file']} s (file)",
        f"token requests: {report['token_requests']}, "
        f"{report['requests_per_token_hour']} per token-hour",
        f"token requests by outcome: {report['token_requests_by_outcome']}",
        f"tokens issued per second: {report['tokens_issued_per_s']}",
        f"CPU seconds: {report['cpu_s']}",
        f"violations by 10 s of the run: {report['violations_by_10s']}",
        f"violations by what: {report['violations_by_what']}",
        f"faults: {report['faults']}",
        *(f"fault not injected: {error}" for error in report["fault_errors"]),
        f"recovery after each disturbance: p50 {recovery['p50']} s, max {recovery['max']} s",
        f"fail-overs: {report['failovers_s']} s",
        *(f"split leader: {found}" for found in report["split_brain"]),
        f"eGain faults no request met: {report['faults_unmet']}",
        *(f"resources of {name}: {found}" for name, found in report["resources"].items()),
        f"requests in flight at the kill: {report['in_flight_at_kill']}",
        f"API errors seen by the operator: {report['api_errors']}",
        f"watchdog: {report['watchdog']}",
        f"lost tokens: {report['lost_tokens']}",
        f"leaks: {report['leaks']}",
        *(
            f"violation ({kind}): {violation}"
            for kind, found in report["violation_samples"].items()
            for violation in found
        ),
        f"violations: {report['violations']}, lost: {report['lost']}, "
        f"recovery max: {recovery['max']} s, judged: {100 * report['judged_fraction']:.1f} %",
    ]
    print("\n".join(lines))


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of faults")
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument(
        "--lifetimes",
        choices=sorted(LIFETIMES),
        default="lead",
        help="lead: 60-120 s tokens, judged through short faults; stress: 5-10 s",
    )
    parser.add_argument("--http-timeout", type=float, default=3.0)
    parser.add_argument(
        "--resource-every", type=float, default=60.0, help="seconds between resource samples"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", type=Path, default=Path("soak.json"), help="where to write")
    parser.add_argument("--state-dir", type=Path, default=REPO / ".testground" / "soak")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    soak = Soak(args)
    try:
        soak.start()
        print(f"{len(soak.tokens)} tokens Ready; faults for {args.duration:.0f} s:", flush=True)
        report = soak.run()
    finally:
        soak.stop()
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)
    split = report["split_brain"]
    failed = (
        report["violations"]
        or report["lost"]
        or report["leaks"]
        or report["fault_errors"]
        or any(f["requests_after_lease_lost"] or f.get("both_acting_s") for f in split)
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
