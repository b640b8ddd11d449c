"""Installing the operator the way users do: from the test ground's OCI registry.

`registry_session` gives a test the environment crane, helm, kubectl and
`hack/publish.sh` need to reach the cluster's registry (its credentials in a
Docker config, its CA as the trust store) under a path of its own, and takes
the operator's image out of the node for the test (`images.evict`), so that
the kubelet has to pull it (images pulled from the registry go too: they may
share its layers); afterwards the image is imported again for the tests that
follow. `layers_pulled` reads the registry's access log for what containerd
fetched.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testground import images, registry
from testground.controlplane import REPO, ControlPlane
from testground.emulator import EgainEmulator
from testground.incluster import emulator_values
from tests.e2e.chart_support import unique_name
from tests.e2e.support import Cluster

PUBLISH = REPO / "hack" / "publish.sh"
IMAGE_NAME = "egain-token-operator"


@dataclass(frozen=True)
class RegistrySession:
    """A path of the cluster's registry, and an environment logged in to it."""

    plane: ControlPlane
    prefix: str  # <host>/<path>: what users call $REGISTRY
    env: Mapping[str, str]

    @property
    def image(self) -> str:
        return f"{self.prefix}/{IMAGE_NAME}"

    def run(self, *command: str, input: str | None = None) -> str:
        """Run `command` in that environment, in the repository; its standard output."""
        result = subprocess.run(
            command,
            input=input,
            cwd=REPO,
            env=dict(self.env),
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"{command[0]} failed ({result.returncode}): {result.stderr}")
        return result.stdout

    def crane(self, *args: str) -> str:
        return self.run(str(self.plane.bin_dir / "crane"), *args)

    def manifest(self, reference: str) -> dict[str, Any]:
        manifest: dict[str, Any] = json.loads(self.crane("manifest", reference))
        return manifest


@pytest.fixture
def registry_session(cluster: Cluster, tmp_path: Path) -> Iterator[RegistrySession]:
    """The registry under a new path, with the operator image evicted from the node."""
    plane = cluster.control_plane
    local = plane.registry
    docker_config = local.docker_config(tmp_path / "docker")
    env = {
        **plane.env(),
        "DOCKER_CONFIG": str(docker_config.parent),
        "HELM_REGISTRY_CONFIG": str(docker_config),
        "SSL_CERT_FILE": str(local.ca_file),
        "REGISTRY_USER": registry.USERNAME,
        "REGISTRY_PASSWORD": local.password(),
    }
    forget_pulled(plane)
    images.evict(plane.containerd_socket, plane.images.operator)
    try:
        yield RegistrySession(plane, f"{local.host}/{unique_name('platform')}", env)
    finally:
        forget_pulled(plane)
        images.import_images(str(plane.containerd_socket), plane.images)


def forget_pulled(plane: ControlPlane) -> None:
    """Remove from the node every image it pulled from the registry, with the
    other references the CRI made to them (`sha256:<config>`)."""
    found = images.references(plane.containerd_socket)
    pulled = {digest for name, digest in found.items() if plane.registry.host in name}
    images.remove(plane.containerd_socket, [n for n, digest in found.items() if digest in pulled])


def layers_pulled(plane: ControlPlane, repository: str) -> set[str]:
    """The blobs of `repository` (`<path>/<name>`) containerd fetched, by digest."""
    prefix = f"/v2/{repository}/blobs/"
    return {
        request.path.removeprefix(prefix)
        for request in plane.registry.requests()
        if request.method == "GET"
        and request.path.startswith(prefix)
        and request.status == 200
        and request.user_agent.startswith("containerd/")
    }


def ground_values(cluster: Cluster, emulator: EgainEmulator, namespace: str) -> dict[str, Any]:
    """The values only the test ground needs: the emulator as the token host,
    trusted through a ConfigMap made in `namespace` (`incluster.emulator_values`),
    and the test defaults for logs and retries."""
    return {
        **emulator_values(cluster.control_plane, emulator, namespace),
        "logLevel": "debug",
        "retryInitialDelay": 0.5,
        "retryMaxDelay": 4,
    }
