"""The Helm chart: lint, render, validate on a real API server, install, uninstall.

Rendering runs `helm template` (no cluster needed); what it renders is then
sent to the local kube-apiserver with `kubectl apply --dry-run=server`, which
runs the real schema validation, admission and RBAC checks (including the
rule that one cannot grant permissions one does not hold) without keeping
anything. No kubelet runs, so installed Pods never start: `helm install` is
checked for what it creates, never with `--wait`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import chart_support
from tests.e2e.chart_support import (
    CHART,
    ChartRelease,
    ControlPlaneLike,
    Manifest,
    fullname,
    install_chart,
    of_kind,
    parse_manifests,
    render_chart,
    render_manifests,
    service_account_kubeconfig,
    uninstall_chart,
    unique_name,
)

pytestmark = pytest.mark.e2e

# Fixtures defined next to the helpers (so other modules can reuse them too).
chart_release = chart_support.chart_release
chart_service_account_kubeconfig = chart_support.chart_service_account_kubeconfig

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

# Value combinations rendered and validated on the server. Namespace names in
# watchNamespaces are placeholders replaced per run (see `_materialise`).
SCENARIOS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"watchNamespaces": ["@a", "@b"]},
    "replicas-3-without-service-monitor": {
        "replicaCount": 3,
        "serviceMonitor": {"enabled": False},
    },
    "namespaced-replicas-3": {"replicaCount": 3, "watchNamespaces": ["@a", "@b"]},
    "ca-bundle-configmap": {"caBundle": {"configMap": {"name": "corp-ca", "key": "bundle.pem"}}},
    "ca-bundle-secret": {"caBundle": {"secret": {"name": "corp-ca", "key": "ca.crt"}}},
    "rollout-restarts-disabled": {"rolloutRestarts": {"enabled": False}},
}


# --- helpers -----------------------------------------------------------------


def _materialise(values: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Replace "@x" namespace placeholders with per-run names."""
    text = json.dumps(values).replace('"@', f'"{prefix}-')
    result: dict[str, Any] = json.loads(text)
    return result


def _rules(manifests: list[Manifest]) -> list[dict[str, Any]]:
    """Every RBAC rule of every ClusterRole and Role."""
    return [
        rule
        for manifest in manifests
        if manifest["kind"] in ("ClusterRole", "Role")
        for rule in manifest.get("rules", [])
    ]


def _rules_for(manifest: Manifest, group: str, resource: str) -> list[dict[str, Any]]:
    return [
        rule
        for rule in manifest.get("rules", [])
        if group in rule["apiGroups"] and resource in rule["resources"]
    ]


def _watched_namespace_roles(manifests: list[Manifest]) -> list[Manifest]:
    """The Roles other than the leader election one."""
    return [
        r for r in of_kind(manifests, "Role") if not r["metadata"]["name"].endswith("-election")
    ]


def _container(manifests: list[Manifest]) -> dict[str, Any]:
    (deployment,) = of_kind(manifests, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _env(manifests: list[Manifest]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in _container(manifests)["env"] if "value" in item}


# --- fixtures ----------------------------------------------------------------


@pytest.fixture
def run_prefix(control_plane: ControlPlaneLike) -> Iterator[str]:
    """A unique prefix, with namespaces `<prefix>`, `<prefix>-a` and `<prefix>-b` created."""
    prefix = unique_name("chart")
    namespaces = [prefix, f"{prefix}-a", f"{prefix}-b"]
    for namespace in namespaces:
        control_plane.kubectl("create", "namespace", namespace)
    yield prefix
    for namespace in namespaces:
        control_plane.kubectl("delete", "namespace", namespace, "--wait=false")


# --- lint ----------------------------------------------------------------------


@pytest.mark.parametrize("strict", [False, True], ids=["lint", "lint-strict"])
def test_helm_lint_passes(control_plane: ControlPlaneLike, strict: bool) -> None:
    args = ["lint", str(CHART)] + (["--strict"] if strict else [])
    result = control_plane.helm(*args, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_helm_lint_passes_with_scenario_values(
    control_plane: ControlPlaneLike, scenario: str
) -> None:
    values = _materialise(SCENARIOS[scenario], "lint")
    result = control_plane.helm(
        "lint", str(CHART), "--strict", "--values", "-", input=json.dumps(values), check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- rendered manifests on the real API server ---------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_rendered_chart_is_accepted_by_the_api_server(
    control_plane: ControlPlaneLike, run_prefix: str, scenario: str
) -> None:
    values = _materialise(SCENARIOS[scenario], run_prefix)
    rendered = render_chart(control_plane, values, release=run_prefix, namespace=run_prefix)
    manifests = parse_manifests(rendered.stdout)
    applied = control_plane.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=rendered.stdout, check=False
    )
    assert applied.returncode == 0, applied.stderr
    # Every rendered object went through the server, none was dropped.
    assert applied.stdout.count("(server dry run)") == len(manifests), applied.stdout


def test_service_monitor_renders_for_the_metrics_service(control_plane: ControlPlaneLike) -> None:
    # The monitoring.coreos.com CRDs are not installed here: render-only check.
    manifests = render_manifests(
        control_plane, {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}
    )
    (monitor,) = of_kind(manifests, "ServiceMonitor")
    (service,) = of_kind(manifests, "Service")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert of_kind(render_manifests(control_plane), "ServiceMonitor") == []


# --- RBAC ------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_rbac_never_uses_wildcards(control_plane: ControlPlaneLike, scenario: str) -> None:
    manifests = render_manifests(control_plane, _materialise(SCENARIOS[scenario], "w"))
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
    manifests = render_manifests(control_plane, _materialise(SCENARIOS[scenario], "s"))
    secret_rules = [rule for rule in _rules(manifests) if "secrets" in rule["resources"]]
    assert secret_rules
    for rule in secret_rules:
        assert rule["apiGroups"] == [""]
        assert rule["resources"] == ["secrets"]
        assert rule["verbs"] == SECRET_VERBS  # in particular: no delete


def test_all_namespaces_mode_uses_one_cluster_role(control_plane: ControlPlaneLike) -> None:
    manifests = render_manifests(control_plane, {}, release="r", namespace="ops")
    assert _watched_namespace_roles(manifests) == []
    (role,) = of_kind(manifests, "ClusterRole")
    (binding,) = of_kind(manifests, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": fullname("r"), "namespace": "ops"}
    ]
    assert _rules_for(role, "", "namespaces") == []
    assert _rules_for(role, "egain.cloud", "egaintokens")[0]["verbs"] == ["list", "watch"]
    assert _rules_for(role, "egain.cloud", "egaintokens/status")[0]["verbs"] == ["patch"]
    assert _rules_for(role, "", "events")[0]["verbs"] == ["create"]
    assert "EGAIN_OPERATOR_NAMESPACES" not in _env(manifests)


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
        assert _rules_for(role, "", "secrets")[0]["verbs"] == SECRET_VERBS
        assert _rules_for(role, "egain.cloud", "egaintokens")
    # Nothing cluster-wide at all.
    assert of_kind(manifests, "ClusterRole") == []
    assert of_kind(manifests, "ClusterRoleBinding") == []
    assert _env(manifests)["EGAIN_OPERATOR_NAMESPACES"] == "a,b"


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
    assert _env(manifests)["EGAIN_OPERATOR_LEADER_ELECTION_LEASE"] == f"ops/{fullname('r')}"


def test_leader_election_can_be_turned_off_with_one_replica(
    control_plane: ControlPlaneLike,
) -> None:
    manifests = render_manifests(
        control_plane, {"leaderElection": {"enabled": False}}, release="r", namespace="ops"
    )
    assert of_kind(manifests, "Role") == []
    assert of_kind(manifests, "RoleBinding") == []
    assert "EGAIN_OPERATOR_LEADER_ELECTION_LEASE" not in _env(manifests)


@pytest.mark.parametrize("replicas", [1, 3])
def test_disruption_budget_only_with_several_replicas(
    control_plane: ControlPlaneLike, replicas: int
) -> None:
    manifests = render_manifests(control_plane, {"replicaCount": replicas}, release="r")
    if replicas == 1:
        assert of_kind(manifests, "PodDisruptionBudget") == []
        return
    (budget,) = of_kind(manifests, "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1


# --- the Deployment ----------------------------------------------------------------


def test_deployment_is_locked_down(control_plane: ControlPlaneLike) -> None:
    manifests = render_manifests(control_plane)
    (deployment,) = of_kind(manifests, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = _container(manifests)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    tmp_mount = {"name": "tmp", "mountPath": "/tmp"}  # noqa: S108 (a path in the container)
    assert tmp_mount in container["volumeMounts"]
    assert container["args"] == ["run"]


def test_every_operator_setting_reaches_the_environment(control_plane: ControlPlaneLike) -> None:
    values = {
        "allowedTokenHosts": ["*.egain.cloud", "login.example.com:8443"],
        "defaultTokenLifetime": 7200,
        "maxConcurrentRequests": 4,
        "httpTimeout": 2.5,
        "refreshJitter": 0.2,
        "propagationAllowance": 90,
        "retryInitialDelay": 2,
        "retryMaxDelay": 120,
        "permanentFailureRetryDelay": 900,
        "rolloutRestarts": {"minInterval": 30},
        "logFormat": "json",
        "logLevel": "debug",
        "metrics": {"port": 9090},
        "health": {"port": 9091},
    }
    env = _env(render_manifests(control_plane, values))
    assert env == {
        "EGAIN_OPERATOR_ALLOWED_TOKEN_HOSTS": "*.egain.cloud,login.example.com:8443",
        "EGAIN_OPERATOR_DEFAULT_TOKEN_LIFETIME": "7200",
        "EGAIN_OPERATOR_MAX_CONCURRENT_REQUESTS": "4",
        "EGAIN_OPERATOR_HTTP_TIMEOUT": "2.5",
        "EGAIN_OPERATOR_REFRESH_JITTER": "0.2",
        "EGAIN_OPERATOR_PROPAGATION_ALLOWANCE": "90",
        "EGAIN_OPERATOR_RETRY_INITIAL_DELAY": "2",
        "EGAIN_OPERATOR_RETRY_MAX_DELAY": "120",
        "EGAIN_OPERATOR_PERMANENT_FAILURE_RETRY_DELAY": "900",
        "EGAIN_OPERATOR_ROLLOUT_RESTARTS": "true",
        "EGAIN_OPERATOR_ROLLOUT_RESTART_MIN_INTERVAL": "30",
        "EGAIN_OPERATOR_LOG_FORMAT": "json",
        "EGAIN_OPERATOR_LOG_LEVEL": "debug",
        "EGAIN_OPERATOR_METRICS_ADDRESS": "0.0.0.0:9090",
        "EGAIN_OPERATOR_HEALTH_ADDRESS": "0.0.0.0:9091",
        "EGAIN_OPERATOR_LEADER_ELECTION_LEASE": f"default/{fullname('test')}",
    }


@pytest.mark.parametrize("source", ["configMap", "secret"])
def test_ca_bundle_is_mounted_read_only(control_plane: ControlPlaneLike, source: str) -> None:
    manifests = render_manifests(
        control_plane, {"caBundle": {source: {"name": "corp-ca", "key": "bundle.pem"}}}
    )
    container = _container(manifests)
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "ca-bundle"]
    assert mount["readOnly"] is True
    assert _env(manifests)["EGAIN_OPERATOR_CA_BUNDLE"] == f"{mount['mountPath']}/ca.crt"
    (deployment,) = of_kind(manifests, "Deployment")
    (volume,) = [
        v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "ca-bundle"
    ]
    assert volume[source]["items"] == [{"key": "bundle.pem", "path": "ca.crt"}]
    assert volume[source].get("name", volume[source].get("secretName")) == "corp-ca"


def test_no_ca_bundle_by_default(control_plane: ControlPlaneLike) -> None:
    manifests = render_manifests(control_plane)
    assert "EGAIN_OPERATOR_CA_BUNDLE" not in _env(manifests)
    assert all(m["name"] != "ca-bundle" for m in _container(manifests)["volumeMounts"])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"logLevel": "trace"}, "logLevel"),
        ({"logFormat": "xml"}, "logFormat"),
        ({"replicas": 3}, "replicas"),  # a typo of replicaCount must not pass silently
        ({"refreshJitter": 1.5}, "refreshJitter"),
        (
            {"caBundle": {"configMap": {"name": "a"}, "secret": {"name": "b"}}},
            "not both",
        ),
        ({"replicaCount": 2, "leaderElection": {"enabled": False}}, "leaderElection"),
    ],
)
def test_invalid_values_are_refused(
    control_plane: ControlPlaneLike, values: dict[str, Any], message: str
) -> None:
    result = render_chart(control_plane, values, check=False)
    assert result.returncode != 0
    assert message in result.stderr


# --- install / uninstall -----------------------------------------------------------


def test_install_and_uninstall(control_plane: ControlPlaneLike) -> None:
    release = install_chart(control_plane)
    status = json.loads(
        control_plane.helm("status", release.name, "-n", release.namespace, "-o", "json").stdout
    )
    assert status["info"]["status"] == "deployed"
    ns = release.namespace
    for kind in ("deployment", "serviceaccount", "service"):
        name = release.fullname + ("-metrics" if kind == "service" else "")
        control_plane.kubectl("get", kind, name, "-n", ns)
    control_plane.kubectl("get", "clusterrole", release.fullname)
    control_plane.kubectl("get", "clusterrolebinding", release.fullname)
    control_plane.kubectl("get", "crd", "egaintokens.egain.cloud")

    uninstall_chart(control_plane, release)
    left = control_plane.kubectl(
        "get",
        "clusterrole,clusterrolebinding",
        release.fullname,
        "--ignore-not-found",
        "-o",
        "name",
    )
    assert left.stdout.strip() == ""
    # Helm never deletes CRDs from crds/: EgainTokens (and their Secrets) survive an uninstall.
    control_plane.kubectl("get", "crd", "egaintokens.egain.cloud")


@pytest.mark.parametrize("namespaced", [False, True], ids=["all-namespaces", "namespaced"])
def test_install_with_several_replicas(
    control_plane: ControlPlaneLike, run_prefix: str, namespaced: bool
) -> None:
    values: dict[str, Any] = {"replicaCount": 3}
    if namespaced:
        values["watchNamespaces"] = [f"{run_prefix}-a", f"{run_prefix}-b"]
    release = install_chart(control_plane, values, namespace=run_prefix)
    try:
        if namespaced:
            for namespace in values["watchNamespaces"]:
                control_plane.kubectl("get", "role,rolebinding", release.fullname, "-n", namespace)
        election = f"{release.fullname}-leader-election"
        control_plane.kubectl("get", "role,rolebinding", election, "-n", run_prefix)
        control_plane.kubectl("get", "poddisruptionbudget", release.fullname, "-n", run_prefix)
    finally:
        control_plane.helm("uninstall", release.name, "-n", run_prefix)


def test_scaling_between_one_and_several_replicas(
    control_plane: ControlPlaneLike, run_prefix: str
) -> None:
    release = install_chart(control_plane, namespace=run_prefix)
    try:
        for replicas in (3, 1, 2):
            control_plane.helm(
                "upgrade",
                release.name,
                str(CHART),
                "-n",
                run_prefix,
                "--set",
                f"replicaCount={replicas}",
            )
            deployment = json.loads(
                control_plane.kubectl(
                    "get", "deployment", release.fullname, "-n", run_prefix, "-o", "json"
                ).stdout
            )
            assert deployment["spec"]["replicas"] == replicas
            budget = control_plane.kubectl(
                "get", "pdb", release.fullname, "-n", run_prefix, "--ignore-not-found", "-o", "name"
            )
            assert bool(budget.stdout.strip()) == (replicas > 1)
    finally:
        control_plane.helm("uninstall", release.name, "-n", run_prefix)


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
        assert not _can_i(control_plane, kubeconfig, "list", "namespaces")
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
