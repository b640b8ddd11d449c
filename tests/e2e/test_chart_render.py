"""The Helm chart rendered: lint, validation on a real API server, what values do.

Rendering runs `helm template` (no cluster needed); what it renders is then
sent to the local kube-apiserver with `kubectl apply --dry-run=server`, which
runs the real schema validation, admission and RBAC checks (including the
rule that one cannot grant permissions one does not hold) without keeping
anything. The RBAC the chart renders is tested in `test_chart_permissions.py`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e import chart_support
from tests.e2e.chart_support import (
    CHART,
    SCENARIOS,
    ControlPlaneLike,
    fullname,
    materialise,
    of_kind,
    operator_container,
    operator_env,
    parse_manifests,
    render_chart,
    render_manifests,
)

pytestmark = pytest.mark.e2e

# Fixtures defined next to the helpers (so other modules can reuse them too).
run_prefix = chart_support.run_prefix


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
    values = materialise(SCENARIOS[scenario], "lint")
    result = control_plane.helm(
        "lint", str(CHART), "--strict", "--values", "-", input=json.dumps(values), check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- rendered manifests on the real API server ---------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_rendered_chart_is_accepted_by_the_api_server(
    control_plane: ControlPlaneLike, run_prefix: str, scenario: str
) -> None:
    values = materialise(SCENARIOS[scenario], run_prefix)
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
    container = operator_container(manifests)
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
        "selector": "shard in (a,b)",
        "clusterResourceNamespace": "egain-clients",
    }
    env = operator_env(render_manifests(control_plane, values))
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
        "EGAIN_OPERATOR_SELECTOR": "shard in (a,b)",
        "EGAIN_OPERATOR_CLUSTER_RESOURCE_NAMESPACE": "egain-clients",
    }


def test_cluster_resource_namespace_defaults_to_the_release_namespace(
    control_plane: ControlPlaneLike,
) -> None:
    env = operator_env(render_manifests(control_plane, namespace="ops"))
    assert env["EGAIN_OPERATOR_CLUSTER_RESOURCE_NAMESPACE"] == "ops"


@pytest.mark.parametrize("source", ["configMap", "secret"])
def test_ca_bundle_is_mounted_read_only(control_plane: ControlPlaneLike, source: str) -> None:
    manifests = render_manifests(
        control_plane, {"caBundle": {source: {"name": "corp-ca", "key": "bundle.pem"}}}
    )
    container = operator_container(manifests)
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "ca-bundle"]
    assert mount["readOnly"] is True
    assert operator_env(manifests)["EGAIN_OPERATOR_CA_BUNDLE"] == f"{mount['mountPath']}/ca.crt"
    (deployment,) = of_kind(manifests, "Deployment")
    (volume,) = [
        v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "ca-bundle"
    ]
    assert volume[source]["items"] == [{"key": "bundle.pem", "path": "ca.crt"}]
    assert volume[source].get("name", volume[source].get("secretName")) == "corp-ca"


def test_no_ca_bundle_by_default(control_plane: ControlPlaneLike) -> None:
    manifests = render_manifests(control_plane)
    assert "EGAIN_OPERATOR_CA_BUNDLE" not in operator_env(manifests)
    assert all(m["name"] != "ca-bundle" for m in operator_container(manifests)["volumeMounts"])


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
        ({"clusterResourceNamespace": "Not_A_Namespace"}, "clusterResourceNamespace"),
        ({"rbac": {"aggregateClusterRoles": "yes"}}, "aggregateClusterRoles"),
    ],
)
def test_invalid_values_are_refused(
    control_plane: ControlPlaneLike, values: dict[str, Any], message: str
) -> None:
    result = render_chart(control_plane, values, check=False)
    assert result.returncode != 0
    assert message in result.stderr
