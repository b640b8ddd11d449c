"""The operator's identity confined by admission: what its ServiceAccount may write.

The chart's ValidatingAdmissionPolicies (templates/admission-policies.yaml)
match the operator's ServiceAccount only. Requests are sent as that
ServiceAccount (`kubectl --as`), so RBAC is the chart's too: every refusal
asserted here names the policy and its message, since RBAC could refuse as
well. That the operator's own writes pass (issuing, restoring, replacing a
Secret, restarting a workload) is shown by the tests that run it with the
chart's ServiceAccount (`test_chart_rbac.py`, `test_in_cluster.py`), which run
with the policies on.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from egain_token_operator.decisions.render import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    RESTARTED_AT_ANNOTATION,
)
from testground.controlplane import ControlPlane
from tests.e2e.chart_support import (
    ChartRelease,
    fullname,
    install_chart,
    of_kind,
    render_without_cluster,
    uninstall_chart,
    unique_name,
)
from tests.e2e.support import Cluster, deployment, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SECRETS_POLICY = "only-own-opaque-secrets"
WORKLOADS_POLICY = "only-restart-annotation-on-workloads"
NOT_OPAQUE = "may write only Secrets of type Opaque"
NOT_LABELLED = f"may write only Secrets labelled {MANAGED_BY_LABEL}={MANAGED_BY}"
NOT_ALREADY_LABELLED = f"may update only Secrets already labelled {MANAGED_BY_LABEL}={MANAGED_BY}"
POD_TEMPLATE = "refused a change to the pod template"
WORKLOAD_SPEC = "refused a change to the workload's spec"
WORKLOAD_METADATA = "refused a change to the workload's metadata"


@dataclass(frozen=True)
class Ground:
    """The chart installed, and a namespace it serves holding one of each workload."""

    cluster: Cluster
    release: ChartRelease
    namespace: str

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.release.namespace}:{self.release.service_account}"

    def as_operator(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """kubectl in the served namespace, as the operator's ServiceAccount."""
        return self.cluster.kubectl(
            f"--as={self.user}", "-n", self.namespace, *args, input=input, check=False
        )

    def refused(self, result: subprocess.CompletedProcess[str], policy: str, message: str) -> bool:
        """True when `policy` (not RBAC, not validation) refused the request with `message`."""
        name = f"{self.release.fullname}-{policy}"
        return (
            result.returncode != 0
            and f"ValidatingAdmissionPolicy '{name}'" in result.stderr
            and message in result.stderr
        )


def secret(
    name: str, labels: dict[str, str] | None = None, namespace: str | None = None, **fields: Any
) -> dict[str, Any]:
    """An Opaque Secret (`fields` override), in the served namespace unless `namespace` says."""
    metadata = {"name": name, "labels": labels or {}}
    if namespace is not None:
        metadata["namespace"] = namespace
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "stringData": {"access_token": "not-a-token"},
    }
    body.update(fields)
    return body


OWN = {MANAGED_BY_LABEL: MANAGED_BY}


def stateful_set(namespace: str, name: str) -> dict[str, Any]:
    """A StatefulSet with no replicas: nothing runs."""
    body = deployment(namespace, name)
    body["kind"] = "StatefulSet"
    body["spec"].update(replicas=0, serviceName=name)
    return body


def daemon_set(namespace: str, name: str) -> dict[str, Any]:
    """A DaemonSet on no node: nothing runs."""
    body = deployment(namespace, name)
    body["kind"] = "DaemonSet"
    body["spec"]["template"]["spec"]["nodeSelector"] = {"egain.cloud/no-such-node": "true"}
    return body


def workloads(namespace: str) -> list[dict[str, Any]]:
    scaled_down = deployment(namespace, "web")
    scaled_down["spec"]["replicas"] = 0
    return [scaled_down, stateful_set(namespace, "db"), daemon_set(namespace, "agent")]


WORKLOADS = [("deployment", "web"), ("statefulset", "db"), ("daemonset", "agent")]


@pytest.fixture(scope="module")
def ground(control_plane: ControlPlane) -> Iterator[Ground]:
    """One install shared by every case, with the policies in effect."""
    cluster = Cluster(control_plane)
    release = install_chart(control_plane)
    namespace = unique_name("confined")
    cluster.kubectl("create", "namespace", namespace)
    try:
        cluster.apply(*workloads(namespace))
        ground = Ground(cluster, release, namespace)
        # A policy takes effect once the API server has compiled it: wait until
        # a request each policy refuses is refused (a dry run keeps nothing).
        unlabelled = json.dumps(secret("probe"))
        wait_until(
            lambda: ground.refused(
                ground.as_operator("create", "--dry-run=server", "-f", "-", input=unlabelled),
                SECRETS_POLICY,
                NOT_LABELLED,
            ),
            "the Secret policy to refuse an unlabelled Secret",
        )
        wait_until(
            lambda: ground.refused(
                ground.as_operator(
                    "patch", "deployment", "web", "--dry-run=server", "-p", image_patch("web")
                ),
                WORKLOADS_POLICY,
                POD_TEMPLATE,
            ),
            "the workload policy to refuse an image change",
        )
        yield ground
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")
        uninstall_chart(control_plane, release)


def image_patch(container: str) -> str:
    template = {"spec": {"containers": [{"name": container, "image": "registry.invalid/evil:1"}]}}
    return json.dumps({"spec": {"template": template}})


def restart_patch(when: str) -> str:
    annotations = {RESTARTED_AT_ANNOTATION: when}
    return json.dumps({"spec": {"template": {"metadata": {"annotations": annotations}}}})


# --- rendered ----------------------------------------------------------------------


def test_policies_match_the_service_account_and_fail_closed() -> None:
    values = {"serviceAccount": {"name": "egain-operator"}}
    manifests = render_without_cluster(values, release="r", namespace="ops")
    policies = of_kind(manifests, "ValidatingAdmissionPolicy")
    bindings = of_kind(manifests, "ValidatingAdmissionPolicyBinding")
    names = {f"{fullname('r')}-{policy}" for policy in (SECRETS_POLICY, WORKLOADS_POLICY)}
    assert {policy["metadata"]["name"] for policy in policies} == names
    for policy in policies:
        assert policy["spec"]["failurePolicy"] == "Fail"
        (condition,) = policy["spec"]["matchConditions"]
        user = "system:serviceaccount:ops:egain-operator"
        assert condition["expression"] == f'request.userInfo.username == "{user}"'
    assert {(b["spec"]["policyName"], tuple(b["spec"]["validationActions"])) for b in bindings} == {
        (name, ("Deny",)) for name in names
    }
    # What the operator writes (decisions/render.py) is what the policies let through.
    (secrets,) = [p for p in policies if p["metadata"]["name"].endswith(SECRETS_POLICY)]
    assert f"'{MANAGED_BY_LABEL}'" in json.dumps(secrets["spec"]["validations"])
    assert f"'{MANAGED_BY}'" in json.dumps(secrets["spec"]["validations"])
    (workloads_policy,) = [p for p in policies if p["metadata"]["name"].endswith(WORKLOADS_POLICY)]
    assert f"'{RESTARTED_AT_ANNOTATION}'" in json.dumps(workloads_policy["spec"]["validations"])


def test_policies_can_be_turned_off() -> None:
    manifests = render_without_cluster({"admissionPolicy": {"enabled": False}})
    kinds = {manifest["kind"] for manifest in manifests}
    assert not {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} & kinds
    assert "ClusterRole" in kinds


# --- Secrets ---------------------------------------------------------------------


def test_service_account_token_secret_is_refused(ground: Ground) -> None:
    # Even carrying the operator's label: the type alone refuses it.
    body = secret(
        "sa-token",
        OWN,
        type="kubernetes.io/service-account-token",
        stringData={},
    )
    body["metadata"]["annotations"] = {"kubernetes.io/service-account.name": "default"}
    result = ground.as_operator("create", "-f", "-", input=json.dumps(body))
    assert ground.refused(result, SECRETS_POLICY, NOT_OPAQUE), result.stderr
    assert ground.cluster.get("secret", "sa-token", ground.namespace) is None


def test_unlabelled_opaque_secret_is_refused(ground: Ground) -> None:
    result = ground.as_operator("create", "-f", "-", input=json.dumps(secret("unlabelled")))
    assert ground.refused(result, SECRETS_POLICY, NOT_LABELLED), result.stderr
    wrong_value = secret("wrong-value", {MANAGED_BY_LABEL: "Helm"})
    result = ground.as_operator("create", "-f", "-", input=json.dumps(wrong_value))
    assert ground.refused(result, SECRETS_POLICY, NOT_LABELLED), result.stderr


def test_relabelling_a_secret_it_does_not_manage_is_refused(ground: Ground) -> None:
    ground.cluster.apply(secret("someone-elses", namespace=ground.namespace))
    found = ground.cluster.get("secret", "someone-elses", ground.namespace)
    assert found is not None
    found["metadata"]["labels"] = OWN
    # An update (PUT), the verb RBAC grants the operator on Secrets.
    result = ground.as_operator("replace", "-f", "-", input=json.dumps(found))
    assert ground.refused(result, SECRETS_POLICY, NOT_ALREADY_LABELLED), result.stderr
    after = ground.cluster.get("secret", "someone-elses", ground.namespace)
    assert after is not None and MANAGED_BY_LABEL not in (after["metadata"].get("labels") or {})


def test_labelled_opaque_secret_is_created_and_updated(ground: Ground) -> None:
    created = ground.as_operator("create", "-f", "-", input=json.dumps(secret("own", OWN)))
    assert created.returncode == 0, created.stderr
    found = ground.cluster.get("secret", "own", ground.namespace)
    assert found is not None
    found["data"] = {"access_token": "YW5vdGhlcg=="}
    found["metadata"]["annotations"] = {"egain.cloud/issued-at": "2026-01-01T00:00:00Z"}
    replaced = ground.as_operator("replace", "-f", "-", input=json.dumps(found))
    assert replaced.returncode == 0, replaced.stderr
    # But not dropping its label or type on the way.
    found = ground.cluster.get("secret", "own", ground.namespace)
    assert found is not None
    found["metadata"]["labels"] = {}
    result = ground.as_operator("replace", "-f", "-", input=json.dumps(found))
    assert ground.refused(result, SECRETS_POLICY, NOT_LABELLED), result.stderr


def test_other_users_are_not_matched(ground: Ground) -> None:
    # The cluster's administrator writes an unlabelled Secret: not the operator's.
    ground.cluster.apply(secret("admins", namespace=ground.namespace))
    assert ground.cluster.get("secret", "admins", ground.namespace) is not None


# --- workloads -------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "name"), WORKLOADS)
def test_restart_annotation_is_allowed(ground: Ground, kind: str, name: str) -> None:
    # Added, then changed: the operator's merge patch, as restarts.py sends it.
    for when in ("2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"):
        result = ground.as_operator("patch", kind, name, "--type=merge", "-p", restart_patch(when))
        assert result.returncode == 0, result.stderr
        found = ground.cluster.get(kind, name, ground.namespace)
        assert found is not None
        assert found["spec"]["template"]["metadata"]["annotations"] == {
            RESTARTED_AT_ANNOTATION: when
        }


@pytest.mark.parametrize(("kind", "name"), WORKLOADS)
def test_container_image_change_is_refused(ground: Ground, kind: str, name: str) -> None:
    result = ground.as_operator("patch", kind, name, "-p", image_patch(name))
    assert ground.refused(result, WORKLOADS_POLICY, POD_TEMPLATE), result.stderr
    found = ground.cluster.get(kind, name, ground.namespace)
    assert found is not None
    (container,) = found["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"registry.invalid/{name}:1"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        # Another pod-template annotation (`kubectl rollout restart`'s own).
        (
            {
                "spec": {
                    "template": {
                        "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}}
                    }
                }
            },
            POD_TEMPLATE,
        ),
        # The restart annotation together with something else.
        (
            {
                "spec": {
                    "template": {
                        "metadata": {
                            "annotations": {RESTARTED_AT_ANNOTATION: "2026-01-01T01:00:00Z"},
                            "labels": {"app": "web", "extra": "yes"},
                        }
                    }
                }
            },
            POD_TEMPLATE,
        ),
        ({"spec": {"replicas": 5}}, WORKLOAD_SPEC),
        ({"metadata": {"labels": {"owner": "operator"}}}, WORKLOAD_METADATA),
        ({"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: "now"}}}, WORKLOAD_METADATA),
    ],
    ids=["other-annotation", "restart-and-label", "replicas", "labels", "own-annotations"],
)
def test_any_other_change_to_a_deployment_is_refused(
    ground: Ground, patch: dict[str, Any], message: str
) -> None:
    result = ground.as_operator(
        "patch", "deployment", "web", "--type=merge", "-p", json.dumps(patch)
    )
    assert ground.refused(result, WORKLOADS_POLICY, message), result.stderr
