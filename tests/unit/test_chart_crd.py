"""The Helm chart ships exactly the repository's EgainToken CRD.

Helm installs files under a chart's crds/ verbatim, so any drift between the two
copies means `helm install` and `kubectl apply -f crds/` create different APIs.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_NAME = "egaintokens.egain.cloud.yaml"
SOURCE_CRD = REPO_ROOT / "crds" / CRD_NAME
CHART_CRD = REPO_ROOT / "charts" / "egain-token-operator" / "crds" / CRD_NAME


def test_chart_crd_is_byte_identical_to_the_repository_crd() -> None:
    # Both files must exist: a missing copy is a failure, never a skip.
    assert SOURCE_CRD.is_file(), f"{SOURCE_CRD} is missing"
    assert CHART_CRD.is_file(), f"{CHART_CRD} is missing (run hack/sync-chart-crd.sh)"
    assert CHART_CRD.read_bytes() == SOURCE_CRD.read_bytes(), (
        f"{CHART_CRD.relative_to(REPO_ROOT)} differs from {SOURCE_CRD.relative_to(REPO_ROOT)}; "
        "run hack/sync-chart-crd.sh"
    )


def test_chart_crds_directory_holds_only_the_egaintoken_crd() -> None:
    shipped = sorted(path.name for path in CHART_CRD.parent.iterdir())
    assert shipped == [CRD_NAME]
