"""The Go-built tools: the Kubernetes components, kubectl, etcd, helm, promtool, syft,
the OCI registry, crane and gitops-verdict (kstatus and Argo CD's Lua, for
tests/e2e/test_gitops_status.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "tools" / "build.sh"
TOOLS = (
    "etcd",
    "helm",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kubelet",
    "promtool",
    "registry",
    "syft",
    "crane",
    "gitops-verdict",
)


def ensure_tools() -> Path:
    """Build (first time) or link (from the cache) the tools; return their directory."""
    result = subprocess.run(
        [str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True, timeout=3600
    )
    bin_dir = Path(result.stdout.strip().splitlines()[-1])
    missing = [tool for tool in TOOLS if not (bin_dir / tool).exists()]
    if missing:
        raise RuntimeError(f"{BUILD_SCRIPT} did not provide {', '.join(missing)}")
    return bin_dir
