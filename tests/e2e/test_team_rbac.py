"""An application team, given only the chart's `-edit` role in its namespace.

A platform team installs the chart and owns a ClusterEgainClient, whose
credentials Secret lives in the cluster resource namespace. An application
team's ServiceAccount is bound (a RoleBinding in the team's namespace) to the
chart's `<fullname>-edit` ClusterRole and nothing else: it can manage
EgainTokens and EgainClients there, and obtain tokens from the shared client,
but never read the client's secret.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testground.emulator import EgainEmulator
from tests.e2e.chart_support import (
    RBAC_DENIAL,
    ChartRelease,
    chart_operator,
    install_chart,
    service_account_kubeconfig,
    uninstall_chart,
)
from tests.e2e.conftest import TENANT
from tests.e2e.support import (
    Cluster,
    OperatorProcess,
    cluster_egain_client,
    credentials_secret,
    egain_token,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SCOPE = "knowledge.portalmgr.read"


@dataclass(frozen=True)
class Team:
    """A ServiceAccount in the team's namespace, bound to one ClusterRole there."""

    namespace: str
    user: str  # as RBAC knows it: system:serviceaccount:<namespace>:<name>
    kubeconfig: Path

    def kubectl(
        self, cluster: Cluster, *args: str, input: str | None = None
    ) -> tuple[int, str, str]:
        """kubectl with the team's own token: its return code, stdout and stderr."""
        result = cluster.kubectl(
            "--kubeconfig", str(self.kubeconfig), *args, input=input, check=False
        )
        return result.returncode, result.stdout, result.stderr


def bind_team(
    cluster: Cluster, namespace: str, cluster_role: str, tmp_path: Path, name: str = "deployer"
) -> Team:
    """A ServiceAccount `name` in `namespace` with `cluster_role` granted there, and only there."""
    cluster.kubectl("create", "serviceaccount", name, "-n", namespace)
    cluster.kubectl(
        "create",
        "rolebinding",
        name,
        "-n",
        namespace,
        f"--clusterrole={cluster_role}",
        f"--serviceaccount={namespace}:{name}",
    )
    kubeconfig = service_account_kubeconfig(
        cluster.control_plane, namespace, name, tmp_path / f"{name}.kubeconfig"
    )
    return Team(namespace, f"system:serviceaccount:{namespace}:{name}", kubeconfig)


def can_i(cluster: Cluster, user: str, *args: str) -> bool:
    """`kubectl auth can-i`, as `user` (impersonated by the cluster admin)."""
    result = cluster.kubectl("auth", "can-i", *args, f"--as={user}", check=False)
    return result.stdout.strip() == "yes"


@pytest.fixture
def release(cluster: Cluster) -> Iterator[ChartRelease]:
    """The chart with default values; no operator runs (RBAC alone is under test)."""
    installed = install_chart(cluster.control_plane)
    yield installed
    uninstall_chart(cluster.control_plane, installed)


@dataclass(frozen=True)
class SharedClient:
    """A ClusterEgainClient registered with the emulator, its Secret in `secret_namespace`."""

    name: str
    secret_name: str
    secret_namespace: str


@pytest.fixture
def make_shared_client(
    cluster: Cluster, emulator: EgainEmulator
) -> Iterator[Callable[[str, list[str]], SharedClient]]:
    """Create ClusterEgainClients (platform team: the cluster admin); delete them after."""
    made: list[tuple[str, str]] = []

    def make(secret_namespace: str, allowed_namespaces: list[str]) -> SharedClient:
        name = f"portal-{uuid.uuid4().hex[:8]}"
        client_id, client_secret = str(uuid.uuid4()), secrets.token_urlsafe(32)
        emulator.register_client(client_id, client_secret, TENANT, [SCOPE])
        made.append((name, client_id))
        secret = credentials_secret(secret_namespace, name, client_id, client_secret)
        spec = {
            "tokenUrl": emulator.client_app_token_url(TENANT),
            "credentialsSecretRef": {"name": name},
            "allowedScopes": [SCOPE],
            "allowedNamespaces": {"names": allowed_namespaces},
        }
        cluster.apply(secret, cluster_egain_client(name, spec))
        return SharedClient(name, name, secret_namespace)

    yield make
    for name, client_id in made:
        cluster.kubectl("delete", "clusteregainclient", name, "--ignore-not-found", "--wait=false")
        emulator.remove_client(client_id)


def test_edit_role_manages_tokens_and_clients_but_reads_no_secret(
    cluster: Cluster,
    namespace: str,
    release: ChartRelease,
    make_shared_client: Callable[[str, list[str]], SharedClient],
    tmp_path: Path,
) -> None:
    shared = make_shared_client(release.namespace, [namespace])
    team = bind_team(cluster, namespace, f"{release.fullname}-edit", tmp_path)
    here = ["-n", namespace]

    for verb in ("create", "update", "patch", "delete", "get", "list", "watch"):
        assert can_i(cluster, team.user, verb, "egaintokens.egain.cloud", *here)
        assert can_i(cluster, team.user, verb, "egainclients.egain.cloud", *here)
    # Only in its own namespace, and never the operator's part of the objects.
    assert not can_i(cluster, team.user, "create", "egaintokens.egain.cloud", "-n", "default")
    status = ["egaintokens.egain.cloud", "--subresource=status", *here]
    assert not can_i(cluster, team.user, "patch", *status)
    # The shared client is the platform team's: not even visible, let alone editable.
    for verb in ("get", "list", "create", "update", "delete"):
        assert not can_i(cluster, team.user, verb, "clusteregainclients.egain.cloud")
    # No Secret at all: neither the shared client's nor any in its own namespace.
    secret_place = ["-n", shared.secret_namespace]
    assert not can_i(cluster, team.user, "get", f"secrets/{shared.secret_name}", *secret_place)
    assert not can_i(cluster, team.user, "list", "secrets", *secret_place)
    assert not can_i(cluster, team.user, "get", "secrets", *here)

    # The same, with the team's own token: real requests, checked by the real RBAC.
    client = {
        "apiVersion": "egain.cloud/v1alpha1",
        "kind": "EgainClient",
        "metadata": {"name": "team-client", "namespace": namespace},
        "spec": {
            "tokenUrl": "https://ai.egain.cloud/system/auth/T-U/oauth2/token",
            "credentialsSecretRef": {"name": "team-credentials"},
        },
    }
    token = egain_token(
        namespace, "team-token", {"clientRef": {"name": "team-client"}, "scopes": [SCOPE]}
    )
    for manifest in (client, token):
        code, _, stderr = team.kubectl(cluster, "create", "-f", "-", input=json.dumps(manifest))
        assert code == 0, stderr
    code, listed, stderr = team.kubectl(
        cluster, "get", "egaintokens,egainclients", *here, "-o", "name"
    )
    assert code == 0, stderr
    assert sorted(listed.split()) == [
        "egainclient.egain.cloud/team-client",
        "egaintoken.egain.cloud/team-token",
    ]
    code, _, stderr = team.kubectl(cluster, "delete", "egaintoken", "team-token", *here)
    assert code == 0, stderr

    code, stdout, stderr = team.kubectl(
        cluster, "get", "secret", shared.secret_name, *secret_place, "-o", "json"
    )
    assert code != 0
    assert stdout == ""  # nothing of the Secret came back
    assert "Forbidden" in stderr
    assert RBAC_DENIAL in stderr
    code, _, stderr = team.kubectl(cluster, "get", "clusteregainclient", shared.name)
    assert code != 0
    assert "Forbidden" in stderr


@pytest.mark.parametrize(("built_in", "writes"), [("admin", True), ("edit", True), ("view", False)])
def test_built_in_roles_gain_the_aggregated_rules(
    cluster: Cluster,
    namespace: str,
    release: ChartRelease,
    built_in: str,
    writes: bool,
    tmp_path: Path,
) -> None:
    team = bind_team(cluster, namespace, built_in, tmp_path)
    here = ["-n", namespace]
    # The aggregation controller adds the chart's rules to the built-in role
    # shortly after the chart's ClusterRoles appear.
    resources = ("egaintokens.egain.cloud", "egainclients.egain.cloud")

    def can_list_both() -> bool:
        return all(can_i(cluster, team.user, "list", resource, *here) for resource in resources)

    wait_until(can_list_both, f"{built_in} to gain the chart's rules")
    for resource in resources:
        assert can_i(cluster, team.user, "create", resource, *here) == writes
    # Cluster-scoped ClusterEgainClients are in none of them.
    assert not can_i(cluster, team.user, "get", "clusteregainclients.egain.cloud")


# Passes once the operator serves ClusterEgainClients (the shared-clients work).
def test_team_token_from_a_cluster_client_becomes_ready(
    cluster: Cluster,
    namespace: str,
    make_shared_client: Callable[[str, list[str]], SharedClient],
    start_operator: Callable[..., OperatorProcess],
    tmp_path: Path,
) -> None:
    with chart_operator(cluster, {}, start_operator, tmp_path, all_namespaces=True) as operator:
        # The Secret goes where the chart tells the operator to look: the
        # cluster resource namespace, by default the release's.
        shared = make_shared_client(operator.release.namespace, [namespace])
        team = bind_team(cluster, namespace, f"{operator.release.fullname}-edit", tmp_path)
        token = egain_token(
            namespace,
            "portal",
            {"clientRef": {"kind": "ClusterEgainClient", "name": shared.name}, "scopes": [SCOPE]},
        )
        code, _, stderr = team.kubectl(cluster, "create", "-f", "-", input=json.dumps(token))
        assert code == 0, stderr

        ready = cluster.wait_ready(namespace, "portal", "True", "TokenIssued")
        assert ready["status"]["client"] == {"kind": "ClusterEgainClient", "name": shared.name}
        data = cluster.secret_data(namespace, "portal")
        assert data is not None
        assert data["scope"] == SCOPE
        # The operator read the Secret in the cluster resource namespace with
        # the chart's permissions, and was refused nothing.
        assert RBAC_DENIAL not in operator.log()
