"""Helpers for testing the Helm chart against the local control plane.

Besides rendering and installing the chart, this module builds a kubeconfig
that authenticates as the chart's ServiceAccount (`kubectl create token`), so
a test can run the operator with exactly the permissions the chart grants:

    release = install_chart(control_plane, values={"watchNamespaces": [ns]})
    kubeconfig = service_account_kubeconfig(
        control_plane, release.namespace, release.service_account, tmp_path / "sa.kubeconfig"
    )
    # run the operator with KUBECONFIG=kubeconfig

The `chart_release` and `chart_service_account_kubeconfig` fixtures wrap the
same two steps, `chart_operator` goes on to start the operator with them, and
`run_prefix` gives a test its own namespaces (import them into a test module or
conftest to use them). The chart tests also share the value combinations they
render (`SCENARIOS`) and the look at the operator's container in a rendered
Deployment.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
import yaml

from testground.tools import ensure_tools
from tests.e2e.support import Cluster, OperatorProcess, wait_until

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "egain-token-operator"
CHART_NAME = "egain-token-operator"

Manifest = dict[str, Any]


class ControlPlaneLike(Protocol):
    """What these helpers need from the `control_plane` fixture."""

    # Read-only properties, so that a frozen dataclass satisfies the protocol.
    @property
    def kubeconfig(self) -> Path: ...

    @property
    def server(self) -> str: ...

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]: ...

    def helm(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]: ...


def unique_name(prefix: str) -> str:
    """A DNS-1123 name unlikely to collide with other tests sharing the control plane."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def fullname(release: str) -> str:
    """The chart's base resource name for `release` (see `_helpers.tpl`)."""
    name = release if CHART_NAME in release else f"{release}-{CHART_NAME}"
    return name[:63].rstrip("-")


def render_chart(
    control_plane: ControlPlaneLike,
    values: Mapping[str, Any] | None = None,
    *,
    release: str = "test",
    namespace: str = "default",
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """`helm template` the chart with `values` (passed as JSON on stdin)."""
    return control_plane.helm(
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--values",
        "-",
        input=json.dumps(dict(values or {})),
        check=check,
    )


def render_without_cluster(
    values: Mapping[str, Any] | None = None, *, release: str = "test", namespace: str = "default"
) -> list[Manifest]:
    """The objects `helm template` renders for `values`, with no control plane started."""
    helm = str(ensure_tools() / "helm")
    result = subprocess.run(
        [helm, "template", release, str(CHART), "--namespace", namespace, "--values", "-"],
        input=json.dumps(dict(values or {})),
        capture_output=True,
        text=True,
        check=True,
    )
    return parse_manifests(result.stdout)


def parse_manifests(text: str) -> list[Manifest]:
    """The objects of a multi-document YAML stream, empty documents dropped."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render_manifests(
    control_plane: ControlPlaneLike,
    values: Mapping[str, Any] | None = None,
    *,
    release: str = "test",
    namespace: str = "default",
) -> list[Manifest]:
    """The objects `helm template` renders for `values`."""
    rendered = render_chart(control_plane, values, release=release, namespace=namespace)
    return parse_manifests(rendered.stdout)


def of_kind(manifests: Sequence[Manifest], kind: str) -> list[Manifest]:
    """The manifests of one kind."""
    return [manifest for manifest in manifests if manifest["kind"] == kind]


AGGREGATE_LABEL_PREFIX = "rbac.authorization.k8s.io/aggregate-to-"


def is_user_role(manifest: Manifest) -> bool:
    """One of the ClusterRoles for people (`-edit`, `-view`), aggregated into the built-in ones.

    They grant the operator nothing: the operator's own permissions are every
    other Role and ClusterRole.
    """
    labels = manifest["metadata"].get("labels", {})
    return manifest["kind"] == "ClusterRole" and any(
        key.startswith(AGGREGATE_LABEL_PREFIX) for key in labels
    )


# Value combinations rendered and validated on the server. Namespace names in
# watchNamespaces are placeholders replaced per run (see `materialise`).
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
    "admission-policy-disabled": {"admissionPolicy": {"enabled": False}},
    "grafana-dashboard": {"grafanaDashboard": {"enabled": True}},
    "argocd-resource-customizations": {"argocd": {"resourceCustomizations": {"enabled": True}}},
    "ipv6-listen-addresses": {"metrics": {"host": "::"}, "health": {"host": "::"}},
    "b2c-token-hosts": yaml.safe_load((REPO / "examples" / "b2c-values.yaml").read_text()),
    "network-policy": {
        "networkPolicy": {
            "enabled": True,
            "ingressFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "@a"}}}
            ],
            "apiServer": {"cidrs": ["10.96.0.1/32", "192.0.2.10/32"]},
            "tokenHosts": {"cidrs": ["198.51.100.0/24", "2001:db8::/64"], "ports": [443, 8443]},
            "extraEgress": [
                {"to": [{"ipBlock": {"cidr": "203.0.113.5/32"}}], "ports": [{"port": 3128}]}
            ],
        }
    },
}


def materialise(values: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Replace "@x" namespace placeholders with per-run names."""
    text = json.dumps(values).replace('"@', f'"{prefix}-')
    result: dict[str, Any] = json.loads(text)
    return result


def operator_container(manifests: list[Manifest]) -> dict[str, Any]:
    """The operator's container in the rendered Deployment."""
    (deployment,) = of_kind(manifests, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def operator_env(manifests: list[Manifest]) -> dict[str, str]:
    """The operator container's environment variables that have a plain value."""
    return {
        item["name"]: item["value"]
        for item in operator_container(manifests)["env"]
        if "value" in item
    }


@dataclass(frozen=True)
class ChartRelease:
    """A release of the chart installed into the control plane."""

    name: str
    namespace: str
    fullname: str
    service_account: str


def install_chart(
    control_plane: ControlPlaneLike,
    values: Mapping[str, Any] | None = None,
    *,
    release: str | None = None,
    namespace: str | None = None,
) -> ChartRelease:
    """`helm install` the chart into a (new) namespace, without waiting for its Pods."""
    name = release or unique_name("egt")
    ns = namespace or unique_name("chart")
    control_plane.helm(
        "install",
        name,
        str(CHART),
        "--namespace",
        ns,
        "--create-namespace",
        "--values",
        "-",
        input=json.dumps(dict(values or {})),
    )
    base = fullname(name)
    service_account = str((values or {}).get("serviceAccount", {}).get("name") or base)
    return ChartRelease(name=name, namespace=ns, fullname=base, service_account=service_account)


def uninstall_chart(
    control_plane: ControlPlaneLike, release: ChartRelease, *, wait: bool = False
) -> None:
    """`helm uninstall` the release (with `wait`: until its Pods are gone); delete its namespace."""
    control_plane.helm(
        "uninstall", release.name, "--namespace", release.namespace, *(("--wait",) if wait else ())
    )
    control_plane.kubectl("delete", "namespace", release.namespace, "--wait=false")


def service_account_kubeconfig(
    control_plane: ControlPlaneLike,
    namespace: str,
    service_account: str,
    path: Path,
    *,
    duration: str = "2h",
) -> Path:
    """Write a kubeconfig at `path` that authenticates as `namespace/service_account`.

    The token comes from the TokenRequest API (`kubectl create token`), as a
    Pod's projected token would; the cluster entry (server and CA) is copied
    from the control plane's own kubeconfig, so TLS is verified the same way.
    """
    token = control_plane.kubectl(
        "create", "token", service_account, "--namespace", namespace, "--duration", duration
    ).stdout.strip()
    admin = json.loads(
        control_plane.kubectl("config", "view", "--raw", "--minify", "--output", "json").stdout
    )
    cluster = admin["clusters"][0]["cluster"]
    user = f"system:serviceaccount:{namespace}:{service_account}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "chart", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": "chart",
                "context": {"cluster": "chart", "user": user, "namespace": namespace},
            }
        ],
        "current-context": "chart",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # The token is a credential: keep the file private to this user.
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))
    return path


@pytest.fixture
def chart_release(control_plane: ControlPlaneLike) -> Iterator[ChartRelease]:
    """The chart installed with default values (all namespaces) in a fresh namespace."""
    release = install_chart(control_plane)
    yield release
    uninstall_chart(control_plane, release)


@pytest.fixture
def chart_service_account_kubeconfig(
    control_plane: ControlPlaneLike, chart_release: ChartRelease, tmp_path: Path
) -> Path:
    """A kubeconfig for the ServiceAccount of `chart_release`: the operator's permissions."""
    return service_account_kubeconfig(
        control_plane,
        chart_release.namespace,
        chart_release.service_account,
        tmp_path / "chart-service-account.kubeconfig",
    )


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


# What the API server says when RBAC refuses a request.
RBAC_DENIAL = "is forbidden: User"

# The settings of the chart's Deployment that a locally run operator takes
# over (the others are the test defaults of `start_operator`).
CHART_OPERATOR_ENV = (
    "EGAIN_OPERATOR_LEADER_ELECTION_LEASE",
    "EGAIN_OPERATOR_CLUSTER_RESOURCE_NAMESPACE",
)


@dataclass
class ChartOperator:
    """The operator running with the permissions of a chart release's ServiceAccount."""

    process: OperatorProcess
    release: ChartRelease
    kubeconfig: Path

    def log(self) -> str:
        return self.process.log()


@contextlib.contextmanager
def chart_operator(
    cluster: Cluster,
    values: dict[str, Any],
    start_operator: Callable[..., OperatorProcess],
    tmp_path: Path,
    *,
    all_namespaces: bool = False,
) -> Iterator[ChartOperator]:
    """Install the chart with `values` and run the operator as its ServiceAccount."""
    release = install_chart(cluster.control_plane, values)
    try:
        kubeconfig = service_account_kubeconfig(
            cluster.control_plane, release.namespace, release.service_account, tmp_path / "sa"
        )
        # Leader election and the cluster resource namespace as the chart's
        # Deployment configures them: the Lease in the release's namespace and
        # the Secrets of ClusterEgainClients are part of what the RBAC must allow.
        operator_env = deployment_env(cluster, release)
        process = start_operator(
            kubeconfig=kubeconfig,
            all_namespaces=all_namespaces,
            env={name: operator_env[name] for name in CHART_OPERATOR_ENV},
        )
        wait_until(process.leading, "the operator to hold the chart's Lease", 30)
        yield ChartOperator(process, release, kubeconfig)
    finally:
        uninstall_chart(cluster.control_plane, release)


def deployment_env(cluster: Cluster, release: ChartRelease) -> dict[str, str]:
    deployment = cluster.get("deployment", release.fullname, release.namespace)
    assert deployment is not None
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item["value"] for item in container["env"] if "value" in item}
