"""The operator as users run it on the local cluster: the Helm chart with the local image.

Used by the end-to-end tests, `make demo` and the propagation benchmark. The
operator Pod reaches the API server through the `kubernetes` Service and an
eGain emulator that listens on the node's gateway address; it runs under the
chart's restricted security context in a namespace enforcing the `restricted`
Pod Security Standard. Consumer Pods are of the locally built base image.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from testground.controlplane import REPO, ControlPlane
from testground.emulator import EgainEmulator

CHART = REPO / "charts" / "egain-token-operator"
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
# What the restricted standard asks of every Pod and container.
POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
CA_CONFIGMAP = "egain-emulator-ca"
# A consumer that prints one line a second: the time and the expiry of the
# token in its mounted file (both in epoch seconds) and the token's fingerprint
# as the emulator names it (`testground.emulator.token_fingerprint`), never the
# token itself. `samples` reads them back.
SAMPLER_SCRIPT = """
while true; do
  now=$(date +%s)
  expires=$(date -d "$(cat /var/run/egain/expires_at)" +%s)
  sum=$(sha256sum /var/run/egain/access_token | cut -c1-16)
  echo "sample $now $expires sha256:$sum"
  sleep 1
done
"""


@dataclass(frozen=True)
class Sample:
    """What a `SAMPLER_SCRIPT` consumer read at one moment."""

    at: int  # epoch seconds
    expires_at: int
    fingerprint: str


def samples(logs: str) -> list[Sample]:
    """The samples in a `SAMPLER_SCRIPT` consumer's log."""
    found = []
    for line in logs.splitlines():
        if line.startswith("sample "):
            _, at, expires_at, fingerprint = line.split()
            found.append(Sample(int(at), int(expires_at), fingerprint))
    return found


def first_seen(read: Sequence[Sample]) -> dict[str, int]:
    """When each token first appeared in the consumer's file (epoch seconds)."""
    seen: dict[str, int] = {}
    for sample in read:
        seen.setdefault(sample.fingerprint, sample.at)
    return seen


def install_operator(
    plane: ControlPlane,
    emulator: EgainEmulator,
    release: str,
    namespace: str,
    values: Mapping[str, Any],
) -> None:
    """`helm install` the chart with the local image into a new `restricted` namespace.

    The image, the emulator's CA and its address as the only allowed token host
    are set; `values` add to them. Returns when the operator Pods are Ready.
    """
    apply(
        plane,
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": RESTRICTED},
        },
    )
    repository, _, tag = plane.images.operator.reference.rpartition(":")
    defaults = {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        **emulator_values(plane, emulator, namespace),
    }
    plane.helm(
        "install",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--values",
        "-",
        "--wait",
        "--timeout",
        "3m",
        input=json.dumps({**defaults, **values}),
    )


def emulator_values(plane: ControlPlane, emulator: EgainEmulator, namespace: str) -> dict[str, Any]:
    """Chart values that make `emulator` the one allowed token host, trusted
    through a ConfigMap of its CA, which this writes into `namespace`."""
    apply(
        plane,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CA_CONFIGMAP, "namespace": namespace},
            "data": {"ca.crt": emulator.ca_file.read_text()},
        },
    )
    return {
        "allowedTokenHosts": [f"{plane.gateway}:{emulator.port}"],
        "caBundle": {"configMap": {"name": CA_CONFIGMAP}},
    }


def apply(plane: ControlPlane, *manifests: Mapping[str, Any]) -> None:
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifests)})
    plane.kubectl("apply", "-f", "-", input=body)


def consumer_pod_spec(
    plane: ControlPlane,
    script: str,
    *,
    mount_secret: str | None = None,
    env: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """A restricted Pod spec running `script` in the base image, with `mount_secret`
    at /var/run/egain and `env`."""
    container: dict[str, Any] = {
        "name": "consumer",
        "image": plane.images.base.reference,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", script],
        "securityContext": CONTAINER_SECURITY,
        "env": list(env),
    }
    spec: dict[str, Any] = {
        "securityContext": POD_SECURITY,
        "terminationGracePeriodSeconds": 0,
        "containers": [container],
    }
    if mount_secret is not None:
        container["volumeMounts"] = [{"name": "token", "mountPath": "/var/run/egain"}]
        spec["volumes"] = [
            {"name": "token", "secret": {"secretName": mount_secret, "defaultMode": 0o440}}
        ]
    return spec


def consumer_pod(
    plane: ControlPlane, name: str, namespace: str, script: str, mount_secret: str
) -> dict[str, Any]:
    """A Pod of `consumer_pod_spec` that mounts `mount_secret`."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": consumer_pod_spec(plane, script, mount_secret=mount_secret),
    }
