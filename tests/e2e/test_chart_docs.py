"""The RBAC the docs list is the RBAC the chart renders, in both modes; the NOTES say
what the operator does."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from testground.tools import ensure_tools
from tests.e2e.chart_support import CHART, render_without_cluster
from tests.markdown import HELM_DOC, README, section, table_rows

pytestmark = pytest.mark.e2e

_VERB = re.compile(r"\b(get|list|watch|create|update|patch|delete|deletecollection|\*)\b")
Grants = dict[str, set[str]]  # resource -> verbs


def rendered_grants(values: dict[str, Any]) -> tuple[Grants, set[str]]:
    """What the chart's Roles and ClusterRoles grant, merged, and the kinds that grant it."""
    grants: Grants = {}
    kinds = set()
    for manifest in render_without_cluster(values):
        if manifest["kind"] not in ("Role", "ClusterRole"):
            continue
        kinds.add(manifest["kind"])
        for rule in manifest["rules"]:
            for resource in rule["resources"]:
                grants.setdefault(resource, set()).update(rule["verbs"])
    return grants, kinds


def documented_grants(rows: list[list[str]], resources: int, verbs: int) -> Grants:
    grants: Grants = {}
    for row in rows:
        for resource in re.findall(r"`([^`]+)`", row[resources]):
            grants.setdefault(resource, set()).update(_VERB.findall(row[verbs]))
    return grants


@pytest.mark.parametrize(
    ("values", "kinds"),
    [({}, {"ClusterRole", "Role"}), ({"watchNamespaces": ["team-a", "team-b"]}, {"Role"})],
    ids=["all-namespaces", "namespaced"],
)
def test_readme_and_helm_doc_list_the_rendered_rbac(
    values: dict[str, Any], kinds: set[str]
) -> None:
    grants, rendered_kinds = rendered_grants(values)
    # Namespaced mode has no cluster-wide permission at all (docs/helm.md says so).
    assert rendered_kinds == kinds
    readme = documented_grants(table_rows(section(README, "Security model")), 0, 1)
    assert readme == grants
    helm_doc = documented_grants(
        table_rows(section(HELM_DOC, "RBAC and why each rule exists")), 1, 2
    )
    assert helm_doc == grants


def test_rules_left_out_by_values_are_left_out() -> None:
    grants, _ = rendered_grants(
        {"rolloutRestarts": {"enabled": False}, "leaderElection": {"enabled": False}}
    )
    assert not {"deployments", "statefulsets", "daemonsets", "leases"} & set(grants)


def install_notes(values: dict[str, Any]) -> str:
    """The NOTES `helm install` prints for `values` (a client-side dry run: no cluster)."""
    helm = str(ensure_tools() / "helm")
    result = subprocess.run(
        [helm, "install", "t", str(CHART), "--dry-run=client", "--values", "-"],
        input=json.dumps(values),
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split("NOTES:", 1)[1]


def test_notes_say_disabled_rollout_restarts_are_skipped() -> None:
    # What the operator does then (restarts.py): log a warning, restart nothing.
    notes = install_notes({"rolloutRestarts": {"enabled": False}})
    assert "spec.rolloutRestartTargets are skipped, with a warning" in notes
    assert "permission" not in notes
    assert "rolloutRestartTargets" not in install_notes({})
