"""The chart's permissions: the RBAC it renders, and what its ServiceAccount can do.

What the ServiceAccount can do once the chart is installed is asked with
`kubectl auth can-i` and a token of it.

That these permissions are enough for the operator's whole job is tested by
running it with them, in `test_chart_rbac.py`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import chart_support
from tests.e2e.chart_support import (
    SCENARIOS,
    ChartRelease,
    ControlPlaneLike,
    Manifest,
    fullname,
    install_chart,
    is_user_role,
    materialise,
    of_kind,
    operator_env,
    render_manifests,
    service_account_kubeconfig,
)

pytestmark = pytest.mark.e2e

# Fixtures defined next to the helpers (so other modules can reuse them too).
chart_release = chart_support.chart_release
chart_service_account_kubeconfig = chart_support.chart_service_account_kubeconfig
run_prefix = chart_support.run_prefix

SECRET_VERBS = ["get", "list", "watch", "create", "update"]
LEASE_RULES = [
    {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "resourceNames": [fullname("r")],
        "verbs": ["get", "update"],
    },
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
]


# --- helpers -----------------------------------------------------------------


def _rules(manifests: list[Manifest]) -> list[dict[str, Any]]:
    """Every RBAC rule of every ClusterRole and Role."""
    return [
        rule
        for manifest in manifests
        if manifest["kind"] in ("ClusterRole", "Role")
        for rule in manifest.get("rules", [])
    ]


def _operator_cluster_roles(manifests: list[Manifest]) -> list[Manifest]:
    """The ClusterRoles other than those for people (`-edit`, `-view`)."""
    return [role for role in of_kind(manifests, "ClusterRole") if not is_user_role(role)]


def _grants(manifest: Manifest) -> dict[str, list[str]]:
    """resource (with its API group, `group/resource`) -> verbs, for every rule."""
    return {
        f"{group}/{resource}": rule["verbs"]
        for rule in manifest["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }


def _watched_namespace_roles(manifests: list[Manifest]) -> list[Manifest]:
    """The Roles other than the leader election one."""
    return [
        r for r in of_kind(manifests, "Role") if not r["metadata"]["name"].endswith("-election")
    ]


# --- RBAC ------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_rbac_never_uses_wildcards(control_plane: ControlPlaneLike, scenario: str) -> None:
    manifests = render_manifests(control_plane, materialise(SCENARIOS[scenario], "w"))
    rules = _rules(manifests)
    assert rules
    for rule in rules:
        for field in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert not any("*" in item for item in rule.get(field, [])), rule
        assert "nonResourceURLs" not in rule, rule


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_secret_verbs_are_exactly_what_the_operator_uses(
    control_plane: ControlPlaneLike, scenario: str
) -> None:
    manifests = render_manifests(control_plane, materialise(SCENARIOS[scenario], "s"))
    secret_rules = [rule for rule in _rules(manifests) if "secrets" in rule["resources"]]
    assert secret_rules
    for rule in secret_rules:
        assert rule["apiGroups"] == [""]
        assert rule["resources"] == ["secrets"]
        assert rule["verbs"] == SECRET_VERBS  # in particular: no delete


def test_all_namespaces_mode_uses_one_cluster_role(control_plane: ControlPlaneLike) -> None:
    manifests = render_manifests(control_plane, {}, release="r", namespace="ops")
    assert _watched_namespace_roles(manifests) == []
    (role,) = _operator_cluster_roles(manifests)
    (binding,) = of_kind(manifests, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": fullname("r"), "namespace": "ops"}
    ]
    grants = _grants(role)
    assert grants["egain.cloud/egaintokens"] == ["list", "watch"]
    assert grants["egain.cloud/egaintokens/status"] == ["patch"]
    assert grants["egain.cloud/egainclients"] == ["get", "list", "watch"]
    assert grants["egain.cloud/egainclients/status"] == ["patch"]
    # ClusterEgainClients and the namespace labels allowedNamespaces.selector matches.
    assert grants["egain.cloud/clusteregainclients"] == ["get", "list", "watch"]
    assert grants["egain.cloud/clusteregainclients/status"] == ["patch"]
    assert grants["/namespaces"] == ["list", "watch"]
    assert grants["/events"] == ["create"]
    assert "EGAIN_OPERATOR_NAMESPACES" not in operator_env(manifests)


def test_namespaced_mode_has_a_role_per_namespace(control_plane: ControlPlaneLike) -> None:
    manifests = render_manifests(
        control_plane, {"watchNamespaces": ["a", "b", "a"]}, release="r", namespace="ops"
    )
    roles = _watched_namespace_roles(manifests)
    bindings = [b for b in of_kind(manifests, "RoleBinding") if b["metadata"]["namespace"] != "ops"]
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["a", "b"]
    assert sorted(binding["metadata"]["namespace"] for binding in bindings) == ["a", "b"]
    for binding in bindings:
        assert binding["subjects"][0]["namespace"] == "ops"
    for role in roles:
        grants = _grants(role)
        assert grants["/secrets"] == SECRET_VERBS
        assert grants["egain.cloud/egaintokens"] == ["list", "watch"]
        assert grants["egain.cloud/egainclients"] == ["get", "list", "watch"]
        # Cluster-scoped: a Role could not grant them, and they are not served.
        assert "egain.cloud/clusteregainclients" not in grants
        assert "/namespaces" not in grants
    # Nothing cluster-wide at all for the operator: the only ClusterRoles are
    # those for people, and nothing binds them to it.
    assert _operator_cluster_roles(manifests) == []
    assert of_kind(manifests, "ClusterRoleBinding") == []
    assert operator_env(manifests)["EGAIN_OPERATOR_NAMESPACES"] == "a,b"


@pytest.mark.parametrize("namespaced", [False, True], ids=["all-namespaces", "namespaced"])
def test_cluster_roles_for_people_are_aggregated_into_the_built_in_roles(
    control_plane: ControlPlaneLike, namespaced: bool
) -> None:
    values: dict[str, Any] = {"watchNamespaces": ["a"]} if namespaced else {}
    manifests = render_manifests(control_plane, values, release="r")
    roles = {role["metadata"]["name"]: role for role in of_kind(manifests, "ClusterRole")}
    edit, view = roles[f"{fullname('r')}-edit"], roles[f"{fullname('r')}-view"]
    aggregate = "rbac.authorization.k8s.io/aggregate-to-"
    assert {k: v for k, v in edit["metadata"]["labels"].items() if k.startswith(aggregate)} == {
        f"{aggregate}admin": "true",
        f"{aggregate}edit": "true",
    }
    assert {k: v for k, v in view["metadata"]["labels"].items() if k.startswith(aggregate)} == {
        f"{aggregate}view": "true"
    }
    everything = ["create", "update", "patch", "delete", "get", "list", "watch"]
    assert _grants(edit) == {
        "egain.cloud/egaintokens": everything,
        "egain.cloud/egainclients": everything,
    }
    assert _grants(view) == {
        "egain.cloud/egaintokens": ["get", "list", "watch"],
        "egain.cloud/egainclients": ["get", "list", "watch"],
    }
    # Neither is bound to anything by the chart.
    bound = {b["roleRef"]["name"] for b in manifests if b["kind"].endswith("RoleBinding")}
    assert edit["metadata"]["name"] not in bound
    assert view["metadata"]["name"] not in bound


@pytest.mark.parametrize(
    "values",
    [{"rbac": {"aggregateClusterRoles": False}}, {"rbac": {"create": False}}],
    ids=["aggregateClusterRoles-false", "rbac-create-false"],
)
def test_cluster_roles_for_people_follow_the_values(
    control_plane: ControlPlaneLike, values: dict[str, Any]
) -> None:
    manifests = render_manifests(control_plane, values)
    assert [role for role in of_kind(manifests, "ClusterRole") if is_user_role(role)] == []


@pytest.mark.parametrize("namespaced", [False, True], ids=["all-namespaces", "namespaced"])
def test_rollout_restart_rules_follow_the_value(
    control_plane: ControlPlaneLike, namespaced: bool
) -> None:
    base: dict[str, Any] = {"watchNamespaces": ["a"]} if namespaced else {}
    enabled = render_manifests(control_plane, base)
    disabled = render_manifests(control_plane, {**base, "rolloutRestarts": {"enabled": False}})
    apps_rules = [rule for rule in _rules(enabled) if "apps" in rule["apiGroups"]]
    assert len(apps_rules) == 1
    assert apps_rules[0]["resources"] == ["deployments", "statefulsets", "daemonsets"]
    assert apps_rules[0]["verbs"] == ["get", "patch"]
    assert [rule for rule in _rules(disabled) if "apps" in rule["apiGroups"]] == []


@pytest.mark.parametrize("namespaced", [False, True], ids=["all-namespaces", "namespaced"])
def test_leader_election_lease_role(control_plane: ControlPlaneLike, namespaced: bool) -> None:
    values: dict[str, Any] = {"watchNamespaces": ["a", "ops"]} if namespaced else {}
    manifests = render_manifests(control_plane, values, release="r", namespace="ops")
    (role,) = [r for r in of_kind(manifests, "Role") if r["metadata"]["name"].endswith("-election")]
    assert role["metadata"]["namespace"] == "ops"
    assert role["rules"] == LEASE_RULES
    (binding,) = [
        b
        for b in of_kind(manifests, "RoleBinding")
        if b["roleRef"]["name"] == role["metadata"]["name"]
    ]
    assert binding["metadata"]["namespace"] == "ops"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": fullname("r"), "namespace": "ops"}
    ]
    # Leases appear nowhere else.
    lease_rules = [rule for rule in _rules(manifests) if "leases" in rule["resources"]]
    assert lease_rules == LEASE_RULES
    assert operator_env(manifests)["EGAIN_OPERATOR_LEADER_ELECTION_LEASE"] == f"ops/{fullname('r')}"


def test_leader_election_can_be_turned_off_with_one_replica(
    control_plane: ControlPlaneLike,
) -> None:
    manifests = render_manifests(
        control_plane, {"leaderElection": {"enabled": False}}, release="r", namespace="ops"
    )
    assert of_kind(manifests, "Role") == []
    assert of_kind(manifests, "RoleBinding") == []
    assert "EGAIN_OPERATOR_LEADER_ELECTION_LEASE" not in operator_env(manifests)


# --- the ServiceAccount's permissions ------------------------------------------------


def _can_i(control_plane: ControlPlaneLike, kubeconfig: Path, *args: str) -> bool:
    result = control_plane.kubectl(
        "--kubeconfig", str(kubeconfig), "auth", "can-i", *args, check=False
    )
    return result.stdout.strip() == "yes"


def test_service_account_has_exactly_the_operator_permissions(
    control_plane: ControlPlaneLike, chart_release: ChartRelease, tmp_path: Path
) -> None:
    kubeconfig = service_account_kubeconfig(
        control_plane, chart_release.namespace, chart_release.service_account, tmp_path / "sa"
    )
    assert (kubeconfig.stat().st_mode & 0o077) == 0
    ns = ["--namespace", "default"]
    for verb in SECRET_VERBS:
        assert _can_i(control_plane, kubeconfig, verb, "secrets", *ns)
    assert _can_i(control_plane, kubeconfig, "watch", "egaintokens.egain.cloud", *ns)
    assert not _can_i(control_plane, kubeconfig, "patch", "egaintokens.egain.cloud", *ns)
    status = ["egaintokens.egain.cloud", "--subresource=status", *ns]
    assert _can_i(control_plane, kubeconfig, "patch", *status)
    assert not _can_i(control_plane, kubeconfig, "update", *status)
    assert not _can_i(control_plane, kubeconfig, "patch", "secrets", *ns)
    assert not _can_i(control_plane, kubeconfig, "watch", "customresourcedefinitions")
    assert _can_i(control_plane, kubeconfig, "patch", "deployments.apps", *ns)
    assert _can_i(control_plane, kubeconfig, "create", "events", *ns)
    for verb in ("get", "list", "watch"):
        assert _can_i(control_plane, kubeconfig, verb, "egainclients.egain.cloud", *ns)
        assert _can_i(control_plane, kubeconfig, verb, "clusteregainclients.egain.cloud")
    for resource in ("egainclients.egain.cloud", "clusteregainclients.egain.cloud"):
        assert _can_i(control_plane, kubeconfig, "patch", resource, "--subresource=status", *ns)
        assert not _can_i(control_plane, kubeconfig, "patch", resource, *ns)
        assert not _can_i(control_plane, kubeconfig, "create", resource, *ns)
        assert not _can_i(control_plane, kubeconfig, "delete", resource, *ns)
    assert _can_i(control_plane, kubeconfig, "list", "namespaces")
    assert _can_i(control_plane, kubeconfig, "watch", "namespaces")
    assert not _can_i(control_plane, kubeconfig, "get", "namespaces")
    assert not _can_i(control_plane, kubeconfig, "patch", "namespaces")
    # The Secrets of ClusterEgainClients, in the cluster resource namespace
    # (the release's by default).
    cluster_resources = ["--namespace", chart_release.namespace]
    assert _can_i(control_plane, kubeconfig, "get", "secrets", *cluster_resources)
    assert not _can_i(control_plane, kubeconfig, "delete", "secrets", *ns)
    assert not _can_i(control_plane, kubeconfig, "delete", "egaintokens.egain.cloud", *ns)
    assert not _can_i(control_plane, kubeconfig, "create", "deployments.apps", *ns)
    assert not _can_i(control_plane, kubeconfig, "get", "configmaps", *ns)
    assert not _can_i(control_plane, kubeconfig, "create", "customresourcedefinitions")
    # The leader election Lease: this release's own, in its namespace, and nothing more.
    home = ["--namespace", chart_release.namespace]
    lease = f"leases.coordination.k8s.io/{chart_release.fullname}"
    assert _can_i(control_plane, kubeconfig, "get", lease, *home)
    assert _can_i(control_plane, kubeconfig, "update", lease, *home)
    assert _can_i(control_plane, kubeconfig, "create", "leases.coordination.k8s.io", *home)
    assert not _can_i(control_plane, kubeconfig, "update", "leases.coordination.k8s.io/x", *home)
    assert not _can_i(control_plane, kubeconfig, "delete", lease, *home)
    assert not _can_i(control_plane, kubeconfig, "list", "leases.coordination.k8s.io", *home)
    assert not _can_i(control_plane, kubeconfig, "create", "leases.coordination.k8s.io", *ns)


def test_namespaced_service_account_is_confined_to_its_namespaces(
    control_plane: ControlPlaneLike, run_prefix: str, tmp_path: Path
) -> None:
    served = f"{run_prefix}-a"
    release = install_chart(control_plane, {"watchNamespaces": [served]}, namespace=run_prefix)
    try:
        kubeconfig = service_account_kubeconfig(
            control_plane, release.namespace, release.service_account, tmp_path / "sa"
        )
        assert _can_i(control_plane, kubeconfig, "watch", "secrets", "-n", served)
        assert not _can_i(control_plane, kubeconfig, "get", "secrets", "-n", f"{run_prefix}-b")
        assert not _can_i(control_plane, kubeconfig, "list", "secrets", "--all-namespaces")
        assert _can_i(control_plane, kubeconfig, "watch", "egainclients.egain.cloud", "-n", served)
        assert not _can_i(control_plane, kubeconfig, "list", "namespaces")
        assert not _can_i(control_plane, kubeconfig, "list", "clusteregainclients.egain.cloud")
        assert not _can_i(control_plane, kubeconfig, "list", "customresourcedefinitions")
    finally:
        control_plane.helm("uninstall", release.name, "-n", run_prefix)


def test_chart_service_account_kubeconfig_fixture(
    chart_service_account_kubeconfig: Path, control_plane: ControlPlaneLike
) -> None:
    config = json.loads(chart_service_account_kubeconfig.read_text())
    assert config["users"][0]["name"].startswith("system:serviceaccount:")
    who = control_plane.kubectl(
        "--kubeconfig", str(chart_service_account_kubeconfig), "auth", "whoami", "-o", "json"
    )
    username = json.loads(who.stdout)["status"]["userInfo"]["username"]
    assert username == config["users"][0]["name"]
