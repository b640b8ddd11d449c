"""docs/gitops.md's Argo CD snippet holds exactly the Lua the chart ships.

The scripts live once, in the chart's files/argocd/; the page embeds them in
the `argocd-cm` patch users copy, so a change to one side only fails here.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.markdown import REPO

ARGOCD_FILES = REPO / "charts" / "egain-token-operator" / "files" / "argocd"
GITOPS_DOC = (REPO / "docs" / "gitops.md").read_text()
KINDS = ("EgainToken", "EgainClient", "ClusterEgainClient")


def argocd_cm_patch() -> dict[str, Any]:
    """The `data` of the page's `argocd-cm` patch (the one YAML block that holds it)."""
    (block,) = [
        text
        for text in re.findall(r"^```yaml\n(.*?)^```$", GITOPS_DOC, re.MULTILINE | re.DOTALL)
        if text.startswith("# argocd-cm-egain.yaml\n")
    ]
    patch = yaml.safe_load(block)
    assert set(patch) == {"data"}
    data: dict[str, Any] = patch["data"]
    return data


def test_health_checks_are_the_shipped_script_for_each_kind() -> None:
    data = argocd_cm_patch()
    health = (ARGOCD_FILES / "health.lua").read_text()
    health_keys = {key for key in data if key.startswith("resource.customizations.health.")}
    assert health_keys == {f"resource.customizations.health.egain.cloud_{kind}" for kind in KINDS}
    for key in health_keys:
        assert data[key] == health, key


def test_renew_action_is_the_shipped_scripts() -> None:
    data = argocd_cm_patch()
    actions = yaml.safe_load(data["resource.customizations.actions.egain.cloud_EgainToken"])
    assert actions == {
        "discovery.lua": (ARGOCD_FILES / "actions" / "discovery.lua").read_text(),
        "definitions": [
            {
                "name": "renew",
                "action.lua": (ARGOCD_FILES / "actions" / "renew" / "action.lua").read_text(),
            }
        ],
    }
    assert len(data) == len(KINDS) + 1
