"""The ground of a soak run: its cluster, the eGain emulator, the tokens and the replicas."""

from __future__ import annotations

import contextlib
import json
import random
import secrets
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx

from soak.plan import (
    CONSUMER_TOKEN,
    LEASE,
    LIFETIMES,
    NAMESPACE,
    REPO,
    SCOPES,
    SYNC_FREQUENCY,
    TENANT,
    TokenPlan,
    shared_client_name,
)
from testground import controlplane, incluster, procfs
from testground.delay import DelayingForwarder, kubeconfig_through
from testground.emulator import EgainEmulator
from testground.operatorprocess import OperatorProcess, wait_until


class Ground:
    """The cluster, the emulator, the EgainTokens and the operator replicas of one run."""

    def __init__(self, state_dir: Path, variant: str, http_timeout: float, rng: random.Random):
        self.state_dir = state_dir.resolve()
        self.cluster_dir = self.state_dir / "cluster"
        self.http_timeout = http_timeout
        self.rng = rng
        self.plane: controlplane.ControlPlane | None = None
        self.emulator = EgainEmulator(self.state_dir / "emulator")
        self.lifetimes = LIFETIMES[variant]
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
        # CPU time used, by operator log name, cluster component (the API server
        # since its restart) and the soak itself
        self.cpu_seconds: dict[str, float] = {}

    @property
    def cluster(self) -> controlplane.ControlPlane:
        """The running control plane."""
        assert self.plane is not None
        return self.plane

    def kubectl(self, *args: str, input: str | None = None) -> str:
        """kubectl's output."""
        return self.cluster.kubectl(*args, input=input).stdout

    def apply(self, *manifests: dict[str, Any]) -> None:
        """Apply `manifests` to the cluster."""
        incluster.apply(self.cluster, *manifests)

    def start(self, tokens: int) -> None:
        """Start everything, create `tokens` EgainTokens and the Pod's, wait until all are Ready."""
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
        for index in range(tokens):
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
        """The EgainClient of eGain client `client` in `flow`."""
        return {
            "apiVersion": "egain.cloud/v1alpha1",
            "kind": "EgainClient",
            "metadata": {"name": shared_client_name(client, flow), "namespace": NAMESPACE},
            "spec": self.client_fields(client, flow),
        }

    def manifest(self, token: TokenPlan) -> dict[str, Any]:
        """The EgainToken of `token`."""
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
        """Write the current credentials of `client_id` to its Secret."""
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
        """The flags every replica runs with."""
        return [
            "--namespace", NAMESPACE,
            "--allowed-token-hosts", f"localhost:{self.emulator.port}",
            "--ca-bundle", str(self.emulator.ca_file),
            "--log-level", "debug",
            "--leader-election-lease", LEASE,
            "--http-timeout", str(self.http_timeout),
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
        """The replica that leads, if any."""
        for replica in self.replicas:
            with contextlib.suppress(httpx.HTTPError):
                if replica.leading():
                    return replica
        return None

    def all_ready(self) -> bool:
        """Whether every EgainToken is Ready."""
        items = json.loads(self.kubectl("get", "egt", "-n", NAMESPACE, "-o", "json"))["items"]
        ready = sum(
            any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (item.get("status") or {}).get("conditions", [])
            )
            for item in items
        )
        return ready == len(self.tokens)

    def record_cpu(self, replica: OperatorProcess) -> None:
        """Note the CPU seconds `replica` has used so far (before it is killed, or at the end)."""
        assert replica.process is not None
        self.cpu_seconds[replica.log_path.name] = cpu_seconds(replica.process.pid)

    def stop(self) -> None:
        """Stop everything `start` started, as far as it got."""
        for replica in self.replicas:
            with contextlib.suppress(Exception):
                replica.stop()
        for forwarder in self.paths.values():
            forwarder.heal()
        self.forwarders.close()
        self.emulator.stop()
        controlplane.stop(self.cluster_dir)


def cpu_seconds(pid: int) -> float:
    """CPU seconds process `pid` has used so far, to a tenth."""
    return round(procfs.cpu_seconds(pid), 1)
