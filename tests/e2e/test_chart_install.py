"""The Helm chart installed, scaled and uninstalled.

`helm install` and `helm upgrade` are checked for what they create, never
with `--wait`: the operator Pod running is `test_in_cluster.py`'s subject.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e import chart_support
from tests.e2e.chart_support import CHART, ControlPlaneLike, install_chart, uninstall_chart

pytestmark = pytest.mark.e2e

# Fixtures defined next to the helpers (so other modules can reuse them too).
run_prefix = chart_support.run_prefix

# The CRDs the chart ships (its crds/ directory).
CRDS = (
    "egaintokens.egain.cloud",
    "egainclients.egain.cloud",
    "clusteregainclients.egain.cloud",
)


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
    for role in ("edit", "view"):
        control_plane.kubectl("get", "clusterrole", f"{release.fullname}-{role}")
    control_plane.kubectl("get", "crd", *CRDS)

    uninstall_chart(control_plane, release)
    left = control_plane.kubectl(
        "get",
        "clusterrole,clusterrolebinding",
        release.fullname,
        f"{release.fullname}-edit",
        f"{release.fullname}-view",
        "--ignore-not-found",
        "-o",
        "name",
    )
    assert left.stdout.strip() == ""
    # Helm never deletes CRDs from crds/: EgainTokens (and their Secrets) survive an uninstall.
    control_plane.kubectl("get", "crd", *CRDS)


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


def test_upgrade_with_the_crd_applied_first_as_documented(
    control_plane: ControlPlaneLike, run_prefix: str
) -> None:
    # docs/helm.md, "Upgrading": the CRD is applied server-side, taking over the
    # fields Helm set at install, then the release is upgraded.
    release = install_chart(control_plane, namespace=run_prefix)
    try:
        crds = str(CHART / "crds")
        applied = control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", crds)
        for crd in CRDS:
            assert f"{crd} serverside-applied" in applied.stdout
        control_plane.kubectl("wait", "--for", "condition=established", "-f", crds)
        control_plane.helm("upgrade", release.name, str(CHART), "-n", run_prefix, "--reuse-values")
        history = json.loads(
            control_plane.helm("history", release.name, "-n", run_prefix, "-o", "json").stdout
        )
        assert [entry["status"] for entry in history] == ["superseded", "deployed"]
    finally:
        control_plane.helm("uninstall", release.name, "-n", run_prefix)
