"""End-to-end fixtures: a namespace per test, the operator serving it, eGain clients.

After every test that ran the operator, its log, the namespace's Events and
every EgainToken in it are searched for client secrets and issued tokens.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from testground.controlplane import ControlPlane
from testground.emulator import EgainEmulator
from tests.e2e.support import CRD, Cluster, OperatorProcess, credentials_secret

TENANT = "TMPRODB88619984"


@pytest.fixture(scope="session")
def cluster(control_plane: ControlPlane) -> Cluster:
    """The control plane with the EgainToken CRD installed."""
    cluster = Cluster(control_plane)
    cluster.kubectl("apply", "--server-side", "-f", str(CRD))
    cluster.kubectl(
        "wait", "--for=condition=Established", "crd/egaintokens.egain.cloud", "--timeout=60s"
    )
    return cluster


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace for the test."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


@dataclass
class EgainClient:
    """A client registered with the emulator, with its credentials Secret."""

    client_id: str
    secret_name: str
    # Client secrets, never shown: an assertion message may print this object.
    used_secrets: list[str] = field(repr=False)


def _client_factory(
    cluster: Cluster, namespace: str, emulator: EgainEmulator
) -> Iterator[Callable[..., EgainClient]]:
    """Register eGain clients with `emulator` and write their credentials Secrets."""
    made: list[EgainClient] = []

    def make(
        scopes: tuple[str, ...] = ("knowledge.portalmgr.manage",),
        lifetime: int = 3600,
        secret_name: str = "egain-client",
        flows: tuple[str, ...] = ("ClientApp", "AnonymousCustomer"),
        write_secret: bool = True,
    ) -> EgainClient:
        client_id = str(uuid.uuid4())
        client_secret = secrets.token_urlsafe(32)
        emulator.register_client(client_id, client_secret, TENANT, scopes, lifetime, flows)
        if write_secret:
            cluster.apply(credentials_secret(namespace, secret_name, client_id, client_secret))
        client = EgainClient(client_id, secret_name, [client_secret])
        made.append(client)
        return client

    yield make
    for client in made:
        emulator.remove_client(client.client_id)


@pytest.fixture
def make_client(
    cluster: Cluster, namespace: str, emulator: EgainEmulator
) -> Iterator[Callable[..., EgainClient]]:
    """Register eGain clients with the loopback emulator; write their credentials Secrets."""
    yield from _client_factory(cluster, namespace, emulator)


@pytest.fixture
def make_pod_client(
    cluster: Cluster, namespace: str, pod_emulator: EgainEmulator
) -> Iterator[Callable[..., EgainClient]]:
    """Register eGain clients with the emulator Pods reach; write their credentials Secrets."""
    yield from _client_factory(cluster, namespace, pod_emulator)


@pytest.fixture
def start_operator(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    tmp_path: Path,
) -> Iterator[Callable[..., OperatorProcess]]:
    """Start the operator for the test's namespace; stop it and check for leaks after."""
    started: list[OperatorProcess] = []

    def start(
        *extra: str,
        allowed_hosts: str | None = None,
        kubeconfig: Path | None = None,
        all_namespaces: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> OperatorProcess:
        args = [
            *(() if all_namespaces else ("--namespace", namespace)),
            "--allowed-token-hosts",
            allowed_hosts or f"*.egain.cloud,localhost:{emulator.port}",
            "--ca-bundle",
            str(emulator.ca_file),
            "--log-level",
            "debug",
            "--retry-initial-delay",
            "0.5",
            "--retry-max-delay",
            "4",
            "--permanent-failure-retry-delay",
            "30",
            "--rollout-restart-min-interval",
            "5",
            "--http-timeout",
            "2",
            *extra,
        ]
        log = tmp_path / f"operator-{len(started)}.log"
        process = OperatorProcess(cluster.control_plane, log, args, kubeconfig, env)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()
    captured = [process.log() for process in started]
    captured.append(cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)
    captured.append(cluster.kubectl("get", "egaintokens", "-n", namespace, "-o", "json").stdout)
    found = emulator.secrets_in("\n".join(captured)).values()
    assert not found, f"secret material in logs, events or status: {sorted(found)}"


@pytest.fixture
def operator(start_operator: Callable[..., OperatorProcess]) -> OperatorProcess:
    """The operator, started with the test defaults."""
    return start_operator()
