"""What the operator tells about itself: its version (metrics and User-Agent), and its
health and metrics endpoints on an IPv6 address."""

from __future__ import annotations

import httpx
import pytest

from egain_token_operator import __version__
from testground.emulator import EgainEmulator
from tests.e2e.conftest import MakeReadyToken, StartOperator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_health_and_metrics_listen_on_an_ipv6_address(
    start_operator: StartOperator, make_ready_token: MakeReadyToken
) -> None:
    process = start_operator(listen_host="::1")
    assert f"--health-address [::1]:{process.health_port}" in " ".join(process.args)
    health = httpx.get(f"http://[::1]:{process.health_port}/healthz", timeout=5)
    assert health.status_code == 200
    make_ready_token("ipv6", reason="TokenIssued")
    metrics = process.metrics()  # over http://[::1]:PORT/metrics
    assert f'egain_token_operator_build_info{{version="{__version__}"}} 1.0' in metrics
    assert 'egain_token_ready_status{condition="True",name="ipv6"' in metrics


def test_token_requests_carry_the_operator_version(
    emulator: EgainEmulator, make_ready_token: MakeReadyToken, start_operator: StartOperator
) -> None:
    start_operator()
    client, _ = make_ready_token("versioned", reason="TokenIssued")
    records = emulator.requests(client.client_id)
    assert records
    assert {record.user_agent for record in records} == {f"egain-token-operator/{__version__}"}
