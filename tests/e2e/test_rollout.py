"""Rollout restarts of the workloads that read a token."""

from __future__ import annotations

import time

import pytest

from testground.emulator import EgainEmulator
from tests.e2e.conftest import MakeClient, client_app_spec
from tests.e2e.support import Cluster, deployment, egain_token, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300), pytest.mark.usefixtures("operator")]


def test_rollout_restart_is_coalesced(
    cluster: Cluster, namespace: str, emulator: EgainEmulator, make_client: MakeClient
) -> None:
    cluster.apply(deployment(namespace, "web"))
    client = make_client()
    targets = [{"kind": "Deployment", "name": "web"}]
    cluster.apply(
        egain_token(
            namespace,
            "one",
            client_app_spec(emulator, client, secretName="one", rolloutRestartTargets=targets),
        ),
        egain_token(
            namespace,
            "two",
            client_app_spec(emulator, client, secretName="two", rolloutRestartTargets=targets),
        ),
    )
    cluster.wait_ready(namespace, "one")
    cluster.wait_ready(namespace, "two")

    wait_until(lambda: cluster.restarted_at(namespace, "web"), "the restart annotation", 15)
    time.sleep(3)
    found = cluster.get("deployment", "web", namespace)
    assert found is not None
    # Created at generation 1; two tokens written together restart it once.
    assert found["metadata"]["generation"] == 2
