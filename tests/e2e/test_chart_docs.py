"""The RBAC the docs list is the RBAC the chart renders, in both modes; the NOTES say
what the operator does."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from testground.tools import ensure_tools
from tests.e2e.chart_support import (
    AGGREGATE_LABEL_PREFIX,
    CHART,
    fullname,
    is_user_role,
    render_without_cluster,
)
from tests.markdown import HELM_DOC, README, section, table_rows

pytestmark = pytest.mark.e2e

_VERB = re.compile(r"\b(get|list|watch|create|update|patch|delete|deletecollection|\*)\b")
Grants = dict[str, set[str]]  # resource -> verbs
# How the RBAC tables mark a rule that namespaced mode does not grant.
ALL_NAMESPACES_ONLY = "all-namespaces mode only"


def rendered_grants(values: dict[str, Any], *, users: bool = False) -> tuple[Grants, set[str]]:
    """What the chart's Roles and ClusterRoles grant, merged, and the kinds that grant it.

    The operator's, or with `users` those of the ClusterRoles for people.
    """
    grants: Grants = {}
    kinds = set()
    for manifest in render_without_cluster(values):
        if manifest["kind"] not in ("Role", "ClusterRole") or is_user_role(manifest) != users:
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

    def in_this_mode(rows: list[list[str]]) -> list[list[str]]:
        # The rows the docs say are granted in all-namespaces mode only.
        namespaced = bool(values.get("watchNamespaces"))
        return [row for row in rows if not (namespaced and ALL_NAMESPACES_ONLY in row[-1])]

    readme = documented_grants(in_this_mode(table_rows(section(README, "Security model"))), 0, 1)
    assert readme == grants
    helm_rows = table_rows(section(HELM_DOC, "RBAC and why each rule exists"))
    assert documented_grants(in_this_mode(helm_rows), 1, 2) == grants


def user_roles(values: dict[str, Any]) -> dict[str, tuple[set[str], Grants]]:
    """Each ClusterRole for people, by its name: the built-in roles it joins, what it grants."""
    roles = {}
    for manifest in render_without_cluster(values, release="r"):
        if not is_user_role(manifest):
            continue
        labels = manifest["metadata"]["labels"]
        joins = {
            key.removeprefix(AGGREGATE_LABEL_PREFIX) for key in labels if labels[key] == "true"
        }
        grants: Grants = {}
        for rule in manifest["rules"]:
            for resource in rule["resources"]:
                grants.setdefault(resource, set()).update(rule["verbs"])
        roles[manifest["metadata"]["name"]] = (joins, grants)
    return roles


def test_helm_doc_lists_the_rendered_roles_for_users() -> None:
    documented = {}
    for row in table_rows(section(HELM_DOC, "Roles for users")):
        # role | aggregated into | resources | verbs
        name = row[0].strip("`").replace("<fullname>", fullname("r"))
        joins = set(re.findall(r"`([^`]+)`", row[1]))
        documented[name] = (joins, documented_grants([row], 2, 3))
    assert documented == user_roles({})
    assert user_roles({"rbac": {"aggregateClusterRoles": False}}) == {}
    assert user_roles({"rbac": {"create": False}}) == {}


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


def test_notes_say_where_cluster_egain_clients_are_served() -> None:
    notes = install_notes({"clusterResourceNamespace": "egain-clients"})
    assert 'whose credentials Secrets it reads in namespace "egain-clients"' in notes
    namespaced = install_notes({"watchNamespaces": ["team-a"]})
    assert "ClusterEgainClients\nare not served" in namespaced
