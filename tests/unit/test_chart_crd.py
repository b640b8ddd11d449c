"""The Helm chart ships exactly the repository's CRDs.

Helm installs files under a chart's crds/ verbatim, so any drift between the two
copies means `helm install` and `kubectl apply -f crds/` create different APIs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIR = REPO_ROOT / "crds"
CHART_DIR = REPO_ROOT / "charts" / "egain-token-operator" / "crds"
# The API's kinds (docs/api.md): a CRD missing from both copies is a failure too.
CRD_NAMES = [
    "clusteregainclients.egain.cloud.yaml",
    "egainclients.egain.cloud.yaml",
    "egaintokens.egain.cloud.yaml",
]


@pytest.mark.parametrize("name", CRD_NAMES)
def test_chart_crd_is_byte_identical_to_the_repository_crd(name: str) -> None:
    source, chart = SOURCE_DIR / name, CHART_DIR / name
    # Both files must exist: a missing copy is a failure, never a skip.
    assert source.is_file(), f"{source} is missing"
    assert chart.is_file(), f"{chart} is missing (run hack/sync-chart-crd.sh)"
    assert chart.read_bytes() == source.read_bytes(), (
        f"{chart.relative_to(REPO_ROOT)} differs from {source.relative_to(REPO_ROOT)}; "
        "run hack/sync-chart-crd.sh"
    )


def test_both_crds_directories_hold_exactly_the_api_crds() -> None:
    assert sorted(path.name for path in SOURCE_DIR.iterdir()) == CRD_NAMES
    assert sorted(path.name for path in CHART_DIR.iterdir()) == CRD_NAMES
