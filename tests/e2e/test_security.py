"""Where token requests may go: only allowed hosts, through the proxy the environment names,
never to the API server or a link-local address."""

from __future__ import annotations

import base64
import contextlib
import json
import random
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from testground.emulator import EgainEmulator
from testground.leaks import cluster_record, secret_material
from testground.proxy import ConnectProxy
from tests.e2e.conftest import (
    TENANT,
    EgainClient,
    MakeClient,
    MakeReadyToken,
    StartOperator,
    client_app_spec,
)
from tests.e2e.support import Cluster, OperatorProcess, egain_token, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_token_url_outside_the_allow_list_sends_nothing(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    operator: OperatorProcess,
) -> None:
    client = make_client()
    url = emulator.client_app_token_url(TENANT).replace("localhost", "127.0.0.1")
    cluster.apply(
        egain_token(namespace, "elsewhere", client_app_spec(emulator, client, tokenUrl=url))
    )
    token = cluster.wait_ready(namespace, "elsewhere", "False", "TokenUrlNotAllowed")
    assert "no request was sent" in token["status"]["conditions"][0]["message"]
    time.sleep(2)
    assert emulator.requests() == []


def test_token_requests_go_through_the_proxy_from_the_environment(
    cluster: Cluster,
    emulator: EgainEmulator,
    make_ready_token: MakeReadyToken,
    start_operator: StartOperator,
) -> None:
    with ConnectProxy() as proxy:
        # The API server is at the node's gateway address, the emulator at localhost.
        start_operator(env={"HTTPS_PROXY": proxy.url, "NO_PROXY": cluster.control_plane.gateway})
        make_ready_token("proxied")
        assert f"localhost:{emulator.port}" in proxy.targets


def test_token_url_at_the_api_server_sends_nothing_whatever_the_allow_list(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    start_operator: StartOperator,
    tmp_path: Path,
) -> None:
    plane = cluster.control_plane
    # The API server listens on the gateway address, port 443. The operator is
    # allowed that host and trusts the cluster's CA, so nothing but the guard
    # keeps the credentials from being POSTed to it.
    trusted = tmp_path / "trusted.pem"
    trusted.write_text(emulator.ca_file.read_text() + plane.ca_file.read_text())
    start_operator(
        "--ca-bundle",
        str(trusted),
        allowed_hosts=f"{plane.gateway},localhost:{emulator.port}",
    )
    # A POST there would be in the audit log: one from here is.
    probe = f"/system/auth/{uuid.uuid4().hex}/oauth2/token"
    httpx.post(
        f"{plane.server}{probe}", verify=ssl.create_default_context(cafile=plane.ca_file), timeout=5
    )
    wait_until(lambda: probe in plane.audit_log.read_text(), "the probe in the audit log")

    path = f"/system/auth/{uuid.uuid4().hex}-U/oauth2/token"
    client = make_client()
    url = f"https://{plane.gateway}{path}"
    cluster.apply(
        egain_token(namespace, "apiserver", client_app_spec(emulator, client, tokenUrl=url))
    )
    token = cluster.wait_ready(namespace, "apiserver", "False", "TokenUrlNotAllowed")
    assert token["status"]["conditions"][0]["message"] == (
        f"{plane.gateway} is the Kubernetes API server's address: "
        "token requests never go there; no request was sent"
    )
    time.sleep(2)
    assert path not in plane.audit_log.read_text()


@contextlib.contextmanager
def link_local_listener() -> Iterator[tuple[str, int, list[str]]]:
    """A TCP listener on a link-local address added to the loopback interface for the test.

    Yields the address, the port and the peers it accepted (it answers nothing).
    """
    address = f"169.254.{random.randint(1, 168)}.{random.randint(1, 254)}"
    subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=True)
    try:
        with socket.create_server((address, 0)) as server:
            server.settimeout(0.2)
            accepted: list[str] = []
            stop = threading.Event()

            def serve() -> None:
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        connection, peer = server.accept()
                        accepted.append(peer[0])
                        connection.close()

            thread = threading.Thread(target=serve, daemon=True)
            thread.start()
            try:
                yield address, server.getsockname()[1], accepted
            finally:
                stop.set()
                thread.join(timeout=2)
    finally:
        subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], check=True)


def test_token_url_at_a_link_local_address_sends_nothing_whatever_the_allow_list(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    start_operator: StartOperator,
) -> None:
    with link_local_listener() as (address, port, accepted):
        # Reachable from this host: the operator could connect, were it not for the guard.
        socket.create_connection((address, port), timeout=2).close()
        wait_until(lambda: accepted, "the listener to accept")
        accepted.clear()
        last = address.rsplit(".", 1)[1]
        # A wildcard that matches the address, as `*.egain.cloud` matches names.
        start_operator(allowed_hosts=f"*.{last}:{port},localhost:{emulator.port}")
        client = make_client()
        url = f"https://{address}:{port}/system/auth/{TENANT}-U/oauth2/token"
        spec = client_app_spec(emulator, client, tokenUrl=url)
        cluster.apply(egain_token(namespace, "metadata", spec))
        token = cluster.wait_ready(namespace, "metadata", "False", "TokenUrlNotAllowed")
        assert token["status"]["conditions"][0]["message"] == (
            f"{address} is a link-local address: token requests never go there; no request was sent"
        )
        time.sleep(2)
        assert accepted == []


def test_the_leak_scan_finds_secrets_in_events_and_status(
    cluster: Cluster, namespace: str, emulator: EgainEmulator, make_client: MakeClient
) -> None:
    # What every test that runs the operator is checked with (conftest.start_operator).
    client = make_client()
    token = emulator_token(emulator, client)
    cluster.apply(egain_token(namespace, "leaky", client_app_spec(emulator, client)))
    record = cluster_record(cluster.control_plane, [namespace])
    assert secret_material([record], [emulator]) == []
    encoded = base64.b64encode(client.used_secrets[0].encode()).decode()
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "leaky.1", "namespace": namespace},
        "involvedObject": {"kind": "EgainToken", "name": "leaky", "namespace": namespace},
        "reason": "Leak",
        "message": f"oops {encoded}",
        "type": "Warning",
    }
    cluster.apply(event)
    status = {"status": {"lastFailure": {"reason": "Leak", "message": f"Bearer {token}"}}}
    cluster.kubectl(
        "patch", "egt", "leaky", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps(status),
    )  # fmt: skip
    found = secret_material([cluster_record(cluster.control_plane, [namespace])], [emulator])
    assert found == sorted(
        [
            f"base64 of a client secret of {client.client_id}",
            next(iter(emulator.secrets_in(token).values())),
        ]
    )
    # Cleaned up, so that this test's own check after it finds nothing.
    cluster.kubectl("delete", "event", "leaky.1", "-n", namespace)
    cluster.kubectl(
        "patch", "egt", "leaky", "-n", namespace, "--subresource=status", "--type=json",
        "-p", '[{"op": "remove", "path": "/status"}]',
    )  # fmt: skip


def emulator_token(emulator: EgainEmulator, client: EgainClient) -> str:
    """A token the emulator issues to `client`, asked for directly."""
    response = httpx.post(
        emulator.client_app_token_url(TENANT),
        data={
            "grant_type": "client_credentials",
            "scope": "knowledge.portalmgr.manage",
            "client_id": client.client_id,
            "client_secret": client.used_secrets[0],
        },
        verify=emulator.client_ssl_context(),
        timeout=5,
    )
    token: str = response.json()["access_token"]
    return token
