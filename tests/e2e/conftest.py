"""End-to-end fixtures: a namespace per test, the operator serving it, eGain clients.

After every test that ran the operator, its log (at debug level), the
namespace's Events, every EgainToken and EgainClient in it, and every
ClusterEgainClient are searched for client secrets and issued tokens, plain or
base64-encoded (`testground.leaks`).
Also the helpers the operator's tests share: the usual ClientApp spec, times
as written in status, the count of tokens issued to a client.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from testground.controlplane import ControlPlane
from testground.emulator import EgainEmulator
from testground.leaks import assert_no_secret_material, cluster_record
from tests.e2e.support import (
    CRDS,
    Backoff,
    Cluster,
    OperatorProcess,
    credentials_secret,
    egain_token,
)

TENANT = "TMPRODB88619984"
# `--rollout-restart-min-interval` of the operators `start_operator` starts (seconds).
ROLLOUT_MIN_INTERVAL = 5
# The token lifetime (seconds) of clients whose tokens tests force refreshes
# of: the request floor, a 120th of it, lets a forced refresh through within
# 11 s of the last request, and a token's own refresh (after 2/3 of it) comes
# after any test.
FORCEABLE = 1200
# Their retry settings: short, so that tests see several retries.
BACKOFF = Backoff(initial=0.5, maximum=4.0)


@pytest.fixture(scope="session")
def cluster(control_plane: ControlPlane) -> Cluster:
    """The control plane with the API's CRDs installed."""
    cluster = Cluster(control_plane)
    cluster.kubectl("apply", "--server-side", "-f", str(CRDS))
    cluster.kubectl("wait", "--for=condition=Established", "-f", str(CRDS), "--timeout=60s")
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


MakeClient = Callable[..., EgainClient]
StartOperator = Callable[..., OperatorProcess]


def client_app_spec(
    emulator: EgainEmulator, client: EgainClient, **overrides: Any
) -> dict[str, Any]:
    """An EgainToken spec for `client` in the ClientApp flow, with `overrides` on top."""
    spec = {
        "flow": "ClientApp",
        "tokenUrl": emulator.client_app_token_url(TENANT),
        "scopes": ["knowledge.portalmgr.manage"],
        "credentialsSecretRef": {"name": client.secret_name},
    }
    spec.update(overrides)
    return spec


def parse_time(text: str) -> datetime:
    """A time as the operator writes it in status and in the Secret."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def successes(emulator: EgainEmulator, client: EgainClient) -> int:
    """How many tokens the emulator has issued to `client`."""
    return sum(r.token_issued for r in emulator.requests(client.client_id))


def _client_factory(
    cluster: Cluster, namespace: str, emulator: EgainEmulator
) -> Iterator[MakeClient]:
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
def make_client(cluster: Cluster, namespace: str, emulator: EgainEmulator) -> Iterator[MakeClient]:
    """Register eGain clients with the loopback emulator; write their credentials Secrets."""
    yield from _client_factory(cluster, namespace, emulator)


class ReadyToken(NamedTuple):
    """An EgainToken the operator has made Ready, and the client it gets tokens for."""

    client: EgainClient
    token: dict[str, Any]  # the EgainToken as it was when it turned Ready


MakeReadyToken = Callable[..., ReadyToken]


@pytest.fixture
def make_ready_token(
    cluster: Cluster, namespace: str, emulator: EgainEmulator, make_client: MakeClient
) -> MakeReadyToken:
    """Apply an EgainToken and wait until it is Ready; an operator must be running.

    `make_ready_token(name, reason=None, client=None, client_options=None, **overrides)`:
    the spec is `client_app_spec` with `overrides` for `client`, or for a new
    client made with `client_options` (`make_client`'s arguments); it waits
    for Ready=True, with `reason` when given.
    """

    def make(
        name: str,
        reason: str | None = None,
        client: EgainClient | None = None,
        client_options: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> ReadyToken:
        client = client or make_client(**(client_options or {}))
        spec = client_app_spec(emulator, client, **overrides)
        cluster.apply(egain_token(namespace, name, spec))
        return ReadyToken(client, cluster.wait_ready(namespace, name, "True", reason))

    return make


@pytest.fixture
def make_pod_client(
    cluster: Cluster, namespace: str, pod_emulator: EgainEmulator
) -> Iterator[MakeClient]:
    """Register eGain clients with the emulator Pods reach; write their credentials Secrets."""
    yield from _client_factory(cluster, namespace, pod_emulator)


@pytest.fixture
def scanned_namespaces(namespace: str) -> list[str]:
    """The namespaces whose Events and objects are searched for leaks after the
    test: its own, and any a test adds (a cluster resource namespace, say)."""
    return [namespace]


@pytest.fixture
def start_operator(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    tmp_path: Path,
    scanned_namespaces: list[str],
) -> Iterator[StartOperator]:
    """Start the operator for the test's namespace; stop it and check for leaks after."""
    started: list[OperatorProcess] = []

    def start(
        *extra: str,
        allowed_hosts: str | None = None,
        kubeconfig: Path | None = None,
        all_namespaces: bool = False,
        env: Mapping[str, str] | None = None,
        listen_host: str = "127.0.0.1",
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
            str(BACKOFF.initial),
            "--retry-max-delay",
            str(BACKOFF.maximum),
            "--permanent-failure-retry-delay",
            "30",
            "--rollout-restart-min-interval",
            str(ROLLOUT_MIN_INTERVAL),
            "--http-timeout",
            "2",
            *extra,
        ]
        log = tmp_path / f"operator-{len(started)}.log"
        process = OperatorProcess(
            cluster.control_plane, log, args, kubeconfig, env, listen_host=listen_host
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()
    logs = [process.log() for process in started]
    assert_no_secret_material(
        [*logs, cluster_record(cluster.control_plane, scanned_namespaces)], [emulator]
    )


@pytest.fixture
def operator(start_operator: StartOperator) -> OperatorProcess:
    """The operator, started with the test defaults."""
    return start_operator()
