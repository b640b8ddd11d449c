"""The chart's RBAC is enough for the operator's whole job, and no more.

The operator runs (as a local process) with a token of the chart's
ServiceAccount, so every API call it makes is checked by the real RBAC.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from testground.emulator import EgainEmulator
from tests.e2e.chart_support import RBAC_DENIAL, chart_operator
from tests.e2e.conftest import FORCEABLE, TENANT, EgainClient
from tests.e2e.support import Cluster, OperatorProcess, deployment, egain_token, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def do_the_whole_job(
    cluster: Cluster, namespace: str, emulator: EgainEmulator, client: EgainClient
) -> None:
    """Issue, restore, rotate and restart, as the operator does for users."""
    cluster.apply(deployment(namespace, "consumer"))
    spec = {
        "tokenUrl": emulator.client_app_token_url(TENANT),
        "scopes": ["knowledge.portalmgr.manage"],
        "credentialsSecretRef": {"name": client.secret_name},
        "rolloutRestartTargets": [{"kind": "Deployment", "name": "consumer"}],
    }
    cluster.apply(egain_token(namespace, "rbac", spec))
    cluster.wait_ready(namespace, "rbac", "True", "TokenIssued")
    first = cluster.secret_data(namespace, "rbac")
    cluster.kubectl("delete", "secret", "rbac", "-n", namespace)
    wait_until(lambda: cluster.secret_data(namespace, "rbac") == first, "the Secret restored")
    cluster.kubectl(
        "annotate", "egt", "rbac", "-n", namespace, "egain.cloud/refresh-requested-at=now"
    )

    def refreshed() -> bool:
        data = cluster.secret_data(namespace, "rbac")
        return data is not None and data["access_token"] != (first or {}).get("access_token")

    wait_until(refreshed, "a refreshed token")

    wait_until(lambda: cluster.restarted_at(namespace, "consumer"), "the rollout restart")
    cluster.wait_events(namespace, "TokenIssued")


def test_all_namespaces_chart_rbac_is_sufficient(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: Callable[..., EgainClient],
    start_operator: Callable[..., OperatorProcess],
    tmp_path: Path,
) -> None:
    with chart_operator(cluster, {}, start_operator, tmp_path, all_namespaces=True) as operator:
        do_the_whole_job(cluster, namespace, emulator, make_client(lifetime=FORCEABLE))
        assert RBAC_DENIAL not in operator.log()


def test_namespaced_chart_rbac_is_sufficient_and_confined(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: Callable[..., EgainClient],
    start_operator: Callable[..., OperatorProcess],
    tmp_path: Path,
) -> None:
    values = {"watchNamespaces": [namespace]}
    with chart_operator(cluster, values, start_operator, tmp_path) as operator:
        release, kubeconfig = operator.release, operator.kubeconfig
        do_the_whole_job(cluster, namespace, emulator, make_client(lifetime=FORCEABLE))
        assert RBAC_DENIAL not in operator.log()
        # The same identity is refused a Secret in a namespace it does not serve.
        cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "elsewhere", "namespace": release.namespace},
                "stringData": {"k": "v"},
            }
        )
        denied = cluster.kubectl(
            "--kubeconfig",
            str(kubeconfig),
            "get",
            "secret",
            "elsewhere",
            "-n",
            release.namespace,
            "-o",
            "name",
            check=False,
        )
        assert denied.returncode != 0
        assert "Forbidden" in denied.stderr
        listed = cluster.kubectl(
            "--kubeconfig", str(kubeconfig), "get", "secrets", "-A", "-o", "name", check=False
        )
        assert listed.returncode != 0
        assert "Forbidden" in listed.stderr
