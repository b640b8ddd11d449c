"""The README's quickstart, run as written against the test ground's registry.

The lines of the README's quickstart block run one by one in bash: `make
publish` pushes the image and the chart to the cluster's registry (TLS under
the cluster CA, a password), `kubectl` makes the pull Secret, and `helm
install oci://...` installs the chart with `imagePullSecrets`. Two things are
the test ground's own, and nothing else differs from the README: `REGISTRY`
(the line marked `# yours`) names the local registry, and the `helm install`
line gets `--values` with the emulator as the token host and its CA. The
node starts without the operator image (`registry_session`): the registry's
access log shows containerd fetching every layer of it.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from testground.controlplane import REPO
from testground.emulator import EgainEmulator
from tests.e2e.chart_support import ChartRelease, fullname, uninstall_chart
from tests.e2e.conftest import MakeClient
from tests.e2e.pod_support import check_no_leaks, operator_pods, token_spec
from tests.e2e.registry_support import (
    RegistrySession,
    ground_values,
    layers_pulled,
    registry_session,
)
from tests.e2e.support import Cluster, egain_token, wait_until

__all__ = ["registry_session"]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

MARKER = "<!-- quickstart:"
RELEASE = "egain-token-operator"
NAMESPACE = "egain-token-operator"


def quickstart_commands(readme: str) -> list[str]:
    """The commands of the README's quickstart block, continuation lines joined."""
    after = readme[readme.index(MARKER) :]
    block = re.search(r"```sh\n(.*?)```", after, re.DOTALL)
    assert block is not None, "no sh block follows the quickstart marker in README.md"
    return [line for line in block[1].replace("\\\n", " ").splitlines() if line.strip()]


def test_the_quickstart_block_is_what_users_need() -> None:
    commands = quickstart_commands((REPO / "README.md").read_text())
    version = re.search(r'^version = "(.*)"$', (REPO / "pyproject.toml").read_text(), re.M)
    assert version is not None
    (install,) = [c for c in commands if c.startswith("helm install")]
    assert f"--version {version[1]}" in install
    assert "oci://$REGISTRY/charts/egain-token-operator" in install
    assert "imagePullSecrets[0].name=egain-registry" in install
    assert any(c.startswith("make publish REGISTRY=$REGISTRY") for c in commands)


def test_the_readme_quickstart_installs_from_the_registry_with_a_pull_secret(
    cluster: Cluster,
    namespace: str,
    pod_emulator: EgainEmulator,
    make_pod_client: MakeClient,
    registry_session: RegistrySession,
    tmp_path: Path,
) -> None:
    plane = cluster.control_plane
    env = dict(registry_session.env)
    release = ChartRelease(RELEASE, NAMESPACE, fullname(RELEASE), fullname(RELEASE))
    published = ""
    try:
        for command in quickstart_commands((REPO / "README.md").read_text()):
            assignment = re.fullmatch(r"(\w+)=\S+\s+# yours.*", command)
            if assignment:
                env[assignment[1]] = registry_session.prefix
                continue
            if command.startswith("helm install"):
                values = tmp_path / "test-ground.json"
                values.write_text(json.dumps(ground_values(cluster, pod_emulator, NAMESPACE)))
                command += f" --values {shlex.quote(str(values))}"
            session = RegistrySession(plane, registry_session.prefix, env)
            output = session.run("bash", "-euo", "pipefail", "-c", command)
            if command.startswith("make publish"):
                # The digest is its last line but for what a nested make adds.
                published = [x for x in output.splitlines() if x.startswith("sha256:")][-1]

        (pod,) = operator_pods(cluster, release)
        (container,) = pod["spec"]["containers"]
        assert container["image"] == f"{registry_session.image}:0.1.0"
        assert pod["spec"]["imagePullSecrets"] == [{"name": "egain-registry"}]
        (status,) = pod["status"]["containerStatuses"]
        assert status["ready"] and status["restartCount"] == 0
        # The digest `make publish` printed is the one the node ran.
        assert published.startswith("sha256:")
        assert status["imageID"].endswith(f"@{published}")

        manifest = registry_session.manifest(f"{registry_session.image}@{published}")
        wanted = {layer["digest"] for layer in manifest["layers"]}
        wanted.add(manifest["config"]["digest"])
        repository = registry_session.image.partition("/")[2]
        missing = wanted - layers_pulled(plane, repository)
        assert not missing, f"containerd did not fetch {sorted(missing)} from the registry"

        client = make_pod_client(lifetime=3600)
        cluster.apply(egain_token(namespace, "portal", token_spec(pod_emulator, client)))
        cluster.wait_ready(namespace, "portal", timeout=60)
        data = cluster.secret_data(namespace, "portal")
        assert data is not None
        assert pod_emulator.is_issued_token(
            data["access_token"].reveal(), client_id=client.client_id
        )
        check_no_leaks(cluster, pod_emulator, release, namespace)
    finally:
        uninstall_chart(plane, release, wait=True)
        cluster.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true")


def test_an_unauthenticated_pull_is_refused(
    cluster: Cluster, registry_session: RegistrySession
) -> None:
    """Without the pull Secret the kubelet cannot pull: the registry wants a password."""
    digest = registry_session.run(str(REPO / "hack" / "publish.sh"), registry_session.prefix)
    digest = digest.strip().splitlines()[-1]
    namespace = "egain-no-pull-secret"
    cluster.kubectl("create", "namespace", namespace)
    try:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "pull", "namespace": namespace},
            "spec": {
                "containers": [
                    {
                        "name": "operator",
                        "image": f"{registry_session.image}@{digest}",
                        "command": ["egain-token-operator", "--help"],
                    }
                ],
                "restartPolicy": "Never",
            },
        }
        cluster.apply(pod)

        def waiting_reason() -> str | None:
            found = cluster.get("pod", "pull", namespace)
            statuses = (found or {}).get("status", {}).get("containerStatuses", [])
            reasons = [s.get("state", {}).get("waiting", {}).get("reason") for s in statuses]
            return next((r for r in reasons if r in ("ErrImagePull", "ImagePullBackOff")), None)

        wait_until(waiting_reason, "the Pod to fail pulling", timeout=60)
        repository = registry_session.image.partition("/")[2]
        asked = [
            request
            for request in cluster.control_plane.registry.requests()
            if request.user_agent.startswith("containerd/") and f"/{repository}/" in request.path
        ]
        assert asked, "containerd never asked the registry"
        assert all(request.status == 401 for request in asked), asked
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")
