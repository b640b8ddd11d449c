"""Where token requests may go: only allowed hosts, through the proxy the environment names."""

from __future__ import annotations

import time

import pytest

from testground.emulator import EgainEmulator
from testground.proxy import ConnectProxy
from tests.e2e.conftest import TENANT, MakeClient, MakeReadyToken, StartOperator, client_app_spec
from tests.e2e.support import Cluster, OperatorProcess, egain_token

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
