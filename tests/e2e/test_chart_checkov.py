"""checkov, a static checker of Kubernetes manifests that nobody here wrote, passes the chart.

The chart is rendered (`helm template`, no cluster) into a namespace of its own
in three configurations: every option on, the defaults, and every option on
with the image pinned by digest. One checkov run scans the three. Every check
must pass or be skipped by a `checkov.io/skipN` annotation the chart renders
with its reason; the skips are exactly those docs/helm.md lists under
"Static checks", and a skip disappears once the values satisfy its check.

checkov lives in its own virtualenv, `.venv-checkov`, installed on first use
by `hack/checkov/install.sh` at the versions `hack/checkov/constraints.txt`
pins: its dependency tree pins versions of its own that differ from the
project's. It runs with `--skip-download`, so it sends nothing anywhere.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.chart_support import REPO, render_without_cluster
from tests.markdown import HELM_DOC, section, table_rows

pytestmark = pytest.mark.e2e

NAMESPACE = "egain-token-operator"
DIGEST = "sha256:" + "0123456789abcdef" * 4

# Every option of the chart that renders something or changes the Deployment.
EVERY_OPTION: dict[str, Any] = {
    "replicaCount": 2,
    "watchNamespaces": ["team-a", "team-b"],
    "imagePullSecrets": [{"name": "registry"}],
    "caBundle": {"configMap": {"name": "corporate-ca"}},
    "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy.example.com:3128"}],
    "deploymentAnnotations": {"example.com/owner": "platform"},
    "podAnnotations": {"example.com/team": "platform"},
    "podLabels": {"example.com/tier": "operators"},
    "priorityClassName": "system-cluster-critical",
    "serviceMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True},
    "grafanaDashboard": {"enabled": True},
    "argocd": {"resourceCustomizations": {"enabled": True}},
    "networkPolicy": {
        "enabled": True,
        "ingressFrom": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ],
        "apiServer": {"cidrs": ["192.0.2.10/32"]},
        "tokenHosts": {"cidrs": ["198.51.100.0/24"]},
    },
}

CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "every-option": EVERY_OPTION,
    "defaults": {},
    "every-option-by-digest": {**EVERY_OPTION, "image": {"digest": DIGEST}},
}

# The checks each configuration skips (docs/helm.md, "Static checks", says why).
EXPECTED_SKIPS = {
    "every-option": {"CKV_K8S_38", "CKV_K8S_43", "CKV_K8S_15"},
    "defaults": {"CKV_K8S_38", "CKV_K8S_43", "CKV_K8S_15", "CKV2_K8S_6"},
    "every-option-by-digest": {"CKV_K8S_38"},
}


@dataclass(frozen=True)
class Finding:
    """One check on one resource, as checkov reports it."""

    check_id: str
    name: str
    resource: str
    reason: str | None

    def __str__(self) -> str:
        because = f" ({self.reason})" if self.reason else ""
        return f"{self.check_id} {self.name!r} on {self.resource}{because}"


@dataclass(frozen=True)
class Scan:
    """checkov's findings for one rendered configuration."""

    passed: list[Finding]
    failed: list[Finding]
    skipped: list[Finding]


def install_checkov() -> Path:
    """checkov in .venv-checkov, installed from hack/checkov/constraints.txt if needed."""
    result = subprocess.run(
        [str(REPO / "hack" / "checkov" / "install.sh")],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        timeout=1800,
    )
    return Path(result.stdout.strip().splitlines()[-1])


def _findings(results: dict[str, Any], kind: str, file: str) -> list[Finding]:
    return [
        Finding(
            check_id=item["check_id"],
            name=item["check_name"],
            resource=item["resource"],
            reason=item["check_result"].get("suppress_comment"),
        )
        for item in results.get(kind, [])
        if Path(item["file_path"]).name == file
    ]


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Scan]:
    """Each configuration rendered into its own file, all scanned by one checkov run."""
    checkov = install_checkov()
    directory = tmp_path_factory.mktemp("checkov")
    objects = {}
    for name, values in CONFIGURATIONS.items():
        manifests = render_without_cluster(values, release="egain", namespace=NAMESPACE)
        objects[name] = len(manifests)
        (directory / f"{name}.yaml").write_text(yaml.safe_dump_all(manifests))
    result = subprocess.run(
        [
            str(checkov),
            "--directory",
            str(directory),
            "--framework",
            "kubernetes",
            "--output",
            "json",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    # checkov exits 1 when a check fails; the findings say which.
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    assert report["check_type"] == "kubernetes", report
    assert report["summary"]["parsing_errors"] == 0, report["summary"]
    # checkov read every rendered object, and each Deployment's Pod besides.
    assert report["summary"]["resource_count"] == sum(objects.values()) + len(objects)
    results = report["results"]
    return {
        name: Scan(
            passed=_findings(results, "passed_checks", f"{name}.yaml"),
            failed=_findings(results, "failed_checks", f"{name}.yaml"),
            skipped=_findings(results, "skipped_checks", f"{name}.yaml"),
        )
        for name in CONFIGURATIONS
    }


@pytest.mark.parametrize("configuration", sorted(CONFIGURATIONS))
def test_no_check_fails(scans: dict[str, Scan], configuration: str) -> None:
    scan = scans[configuration]
    failures = "\n".join(str(finding) for finding in scan.failed)
    assert not scan.failed, f"checkov failures with {configuration} values:\n{failures}"
    assert scan.passed, f"checkov reported nothing for {configuration}"
    print(
        f"{configuration}: {len(scan.passed)} passed, {len(scan.failed)} failed, "
        f"{len(scan.skipped)} skipped ({', '.join(sorted(f.check_id for f in scan.skipped))})"
    )


@pytest.mark.parametrize("configuration", sorted(CONFIGURATIONS))
def test_every_skip_has_its_reason_and_only_while_needed(
    scans: dict[str, Scan], configuration: str
) -> None:
    skipped = scans[configuration].skipped
    assert {finding.check_id for finding in skipped} == EXPECTED_SKIPS[configuration]
    for finding in skipped:
        assert finding.reason and finding.reason != "No comment provided", finding


def test_helm_doc_lists_the_skipped_checks() -> None:
    documented = {
        match
        for row in table_rows(section(HELM_DOC, "Static checks"))
        for match in re.findall(r"`(CKV2?_K8S_\d+)`", row[0])
    }
    assert documented == set().union(*EXPECTED_SKIPS.values())


def test_checkov_is_pinned_in_its_constraints() -> None:
    constraints = (REPO / "hack" / "checkov" / "constraints.txt").read_text().splitlines()
    pins = [line for line in constraints if line and not line.startswith("#")]
    assert any(line.startswith("checkov==") for line in pins)
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[^=\s]+", line) for line in pins), pins
