"""The operator image as the chart runs it: a read-only root file system.

The Pod is installed by the chart with its own security context
(`readOnlyRootFilesystem: true`, an emptyDir at /tmp); the write attempts run
in the operator's container itself, through `kubectl exec`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.chart_support import ChartRelease
from tests.e2e.pod_support import in_cluster_operator, operator_pods
from tests.e2e.support import Cluster

__all__ = ["in_cluster_operator"]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


# Run by the image's own interpreter: tries to create a file in each directory
# given and prints, as JSON, "written" or the errno name of the failure.
WRITE_ATTEMPT = """
import errno, json, os, sys
result = {}
for directory in sys.argv[1:]:
    path = os.path.join(directory, "write-attempt")
    try:
        with open(path, "x") as file:
            file.write("x")
        os.remove(path)
        result[directory] = "written"
    except OSError as error:
        result[directory] = errno.errorcode[error.errno]
print(json.dumps(result))
"""
# What a write attempt in each directory of the container comes to: only the
# chart's emptyDir at /tmp is writable.
WRITES = {
    "/": "EROFS",
    "/etc": "EROFS",
    "/opt/egain-token-operator": "EROFS",
    "/tmp": "written",  # noqa: S108 (the container's emptyDir, not this machine's /tmp)
}
# Probed every second from the container's start, so that Ready is seen
# within a second of the operator answering /healthz (the chart's defaults
# wait 5 s, then probe every 10 s).
PROMPT_READINESS = {"readinessProbe": {"initialDelaySeconds": 0, "periodSeconds": 1}}


def the_operator_pod(cluster: Cluster, release: ChartRelease) -> dict[str, Any]:
    (pod,) = operator_pods(cluster, release)
    return pod


def test_the_root_file_system_refuses_writes_and_tmp_takes_them(
    cluster: Cluster, in_cluster_operator: Callable[..., ChartRelease]
) -> None:
    release = in_cluster_operator(**PROMPT_READINESS)
    pod = the_operator_pod(cluster, release)
    name = pod["metadata"]["name"]
    attempt = cluster.kubectl(
        "exec", "-n", release.namespace, name, "-c", "operator", "--",
        "python", "-c", WRITE_ATTEMPT, *WRITES,
    )  # fmt: skip
    assert json.loads(attempt.stdout) == WRITES
