"""The local cluster is a real one: TLS, RBAC, ServiceAccount tokens, garbage collection, a node."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from testground import controlplane, images, node, supervision
from testground.controlplane import ControlPlane

pytestmark = pytest.mark.e2e


def admin_context(plane: ControlPlane) -> ssl.SSLContext:
    config = json.loads(plane.kubeconfig.read_text())
    user = config["users"][0]["user"]
    context = ssl.create_default_context(cafile=str(plane.ca_file))
    context.load_cert_chain(user["client-certificate"], user["client-key"])
    return context


def test_api_server_serves_verified_tls(control_plane: ControlPlane) -> None:
    response = httpx.get(f"{control_plane.server}/version", verify=admin_context(control_plane))
    assert response.status_code == 200
    assert response.json()["gitVersion"] == "v1.37.2"
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{control_plane.server}/version", verify=ssl.create_default_context())


def test_anonymous_requests_are_not_authorized(control_plane: ControlPlane) -> None:
    context = ssl.create_default_context(cafile=str(control_plane.ca_file))
    response = httpx.get(f"{control_plane.server}/api/v1/secrets", verify=context)
    assert response.status_code in (401, 403)


def test_rbac_applies_to_service_account_tokens(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    kubectl = control_plane.kubectl
    kubectl("create", "namespace", "rbac-check")
    kubectl("create", "serviceaccount", "reader", "-n", "rbac-check")
    kubectl(
        "create",
        "role",
        "configmap-reader",
        "-n",
        "rbac-check",
        "--verb=get,list",
        "--resource=configmaps",
    )
    kubectl(
        "create",
        "rolebinding",
        "reader",
        "-n",
        "rbac-check",
        "--role=configmap-reader",
        "--serviceaccount=rbac-check:reader",
    )
    token = kubectl("create", "token", "reader", "-n", "rbac-check").stdout.strip()
    as_reader = ("--token", token, "--kubeconfig", os.devnull, "--server", control_plane.server)
    ca = ("--certificate-authority", str(control_plane.ca_file))
    allowed = kubectl("get", "configmaps", "-n", "rbac-check", *as_reader, *ca, check=False)
    assert allowed.returncode == 0, allowed.stderr
    denied = kubectl("get", "secrets", "-n", "rbac-check", *as_reader, *ca, check=False)
    assert denied.returncode != 0
    assert "Forbidden" in denied.stderr
    whoami = kubectl("auth", "whoami", "-o", "json", *as_reader, *ca)
    assert (
        json.loads(whoami.stdout)["status"]["userInfo"]["username"]
        == "system:serviceaccount:rbac-check:reader"
    )


def test_garbage_collector_deletes_owned_objects(control_plane: ControlPlane) -> None:
    kubectl = control_plane.kubectl
    kubectl("create", "namespace", "gc-check")
    kubectl("create", "configmap", "owner", "-n", "gc-check")
    owner = json.loads(kubectl("get", "configmap", "owner", "-n", "gc-check", "-o", "json").stdout)
    dependent = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "dependent",
            "namespace": "gc-check",
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": "owner",
                    "uid": owner["metadata"]["uid"],
                }
            ],
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(dependent))
    kubectl("delete", "configmap", "owner", "-n", "gc-check")
    deadline = time.monotonic() + 60
    while kubectl("get", "configmap", "dependent", "-n", "gc-check", check=False).returncode == 0:
        assert time.monotonic() < deadline, "the garbage collector did not delete the dependent"
        time.sleep(0.5)


def test_audit_log_records_requests(control_plane: ControlPlane) -> None:
    control_plane.kubectl("get", "namespaces", "default")
    entries = [json.loads(line) for line in control_plane.audit_log.read_text().splitlines()]
    assert any(
        e["verb"] == "get" and e["objectRef"].get("name") == "default"
        for e in entries
        if "objectRef" in e
    )


def iptables_rules() -> list[str]:
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False).stdout
    return [line for line in saved.splitlines() if line.startswith("-A ")]


def test_cli_up_and_down_leave_nothing_behind(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(controlplane.__file__).parents[1])}
    command = [sys.executable, "-m", "testground.controlplane"]
    rules_before = iptables_rules()
    up = subprocess.run(
        [*command, "up", "--state-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert up.stdout.strip() == f"export KUBECONFIG={tmp_path.resolve() / 'admin.kubeconfig'}"
    again = subprocess.run(
        [*command, "up", "--state-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert again.stdout == up.stdout
    state = json.loads((tmp_path / "state.json").read_text())
    node_state = node.NodeState.from_json(state["node"])
    # A Pod with a Secret volume: a network namespace, mounts, cgroups, a shim.
    kubeconfig = ("--kubeconfig", str(tmp_path / "admin.kubeconfig"))
    kubectl = str(Path(state["bin_dir"]) / "kubectl")
    subprocess.run(
        [kubectl, *kubeconfig, "apply", "-f", "-"],
        input=json.dumps(mounting_pod("default", _base_image())),
        check=True,
        capture_output=True,
        text=True,
    )
    subprocess.run(
        [kubectl, *kubeconfig, "wait", "--for=condition=Ready", "pod/mounter", "--timeout=90s"],
        check=True,
        capture_output=True,
    )
    assert node.mounts_under(str(tmp_path)), "the Pod should have mounts under the state dir"
    assert node.node_netns(node_state), "the Pod should have a network namespace"
    pids = state["pids"].values()
    subprocess.run(
        [*command, "down", "--state-dir", str(tmp_path)], env=env, check=True, capture_output=True
    )
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )
    assert node.mounts_under(str(tmp_path)) == []
    assert node.node_netns(node_state) == []
    assert node.cgroups_left(node_state.instance) == []
    assert node.shims(node_state) == []
    link = subprocess.run(["ip", "link", "show", node_state.network.bridge], capture_output=True)
    assert link.returncode != 0, "the bridge is still there"
    assert iptables_rules() == rules_before


def _base_image() -> str:
    return images.ensure_images().base.reference


# A newline after the Secret's value: the CRI log only takes whole lines.
GREETER = 'echo "$(cat /secret/greeting)"; exec sleep infinity'


def mounting_pod(namespace: str, image: str) -> dict[str, object]:
    """A Pod of the base image that mounts a Secret, and the Secret."""
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "mounted", "namespace": namespace},
                "stringData": {"greeting": "hello from a Secret"},
            },
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "mounter", "namespace": namespace},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [
                        {
                            "name": "mounter",
                            "image": image,
                            "imagePullPolicy": "Never",
                            "command": [
                                "sh",
                                "-c",
                                'echo "$(cat /secret/greeting)"; exec sleep infinity',
                            ],
                            "volumeMounts": [{"name": "secret", "mountPath": "/secret"}],
                        }
                    ],
                    "volumes": [{"name": "secret", "secret": {"secretName": "mounted"}}],
                },
            },
        ],
    }


def test_node_is_ready_and_runs_a_pod_that_mounts_a_secret(control_plane: ControlPlane) -> None:
    kubectl = control_plane.kubectl
    nodes = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]
    assert [n["metadata"]["name"] for n in nodes] == [node.NODE_NAME]
    kubectl("create", "namespace", "node-check")
    kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(mounting_pod("node-check", control_plane.images.base.reference)),
    )
    kubectl("wait", "--for=condition=Ready", "pod/mounter", "-n", "node-check", "--timeout=90s")
    deadline = time.monotonic() + 30
    while "hello from a Secret" not in kubectl("logs", "mounter", "-n", "node-check").stdout:
        assert time.monotonic() < deadline, "the Pod did not print the mounted Secret"
        time.sleep(0.5)


def test_pods_reach_the_api_server_through_the_kubernetes_service(
    control_plane: ControlPlane,
) -> None:
    kubectl = control_plane.kubectl
    service = json.loads(kubectl("get", "service", "kubernetes", "-o", "json").stdout)
    assert service["spec"]["clusterIP"] == control_plane.gateway
    kubectl("create", "namespace", "service-check")
    # Reads the Service's address from the environment, as client libraries do.
    probe = (
        "import os, ssl, urllib.request\n"
        "ca = '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt'\n"
        "host = os.environ['KUBERNETES_SERVICE_HOST']\n"
        "port = os.environ['KUBERNETES_SERVICE_PORT']\n"
        "context = ssl.create_default_context(cafile=ca)\n"
        "print(urllib.request.urlopen(f'https://{host}:{port}/readyz', context=context).read())\n"
    )
    kubectl(
        "run",
        "probe",
        "-n",
        "service-check",
        "--restart=Never",
        "--image-pull-policy=Never",
        f"--image={control_plane.images.base.reference}",
        "--command",
        "--",
        "python3",
        "-c",
        probe,
    )
    deadline = time.monotonic() + 90
    while True:
        phase = kubectl(
            "get", "pod", "probe", "-n", "service-check", "-o", "jsonpath={.status.phase}"
        ).stdout
        if phase in ("Succeeded", "Failed"):
            break
        assert time.monotonic() < deadline, f"the probe Pod is still {phase}"
        time.sleep(0.5)
    logs = kubectl("logs", "probe", "-n", "service-check").stdout
    assert phase == "Succeeded", logs
    assert "b'ok'" in logs


def test_a_component_restarts_as_it_was_and_etcd_pauses(control_plane: ControlPlane) -> None:
    state_dir = control_plane.state_dir
    before = controlplane.component_pid(state_dir, "kube-apiserver")
    command = Path(f"/proc/{before}/cmdline").read_bytes()
    controlplane.restart_component(state_dir, "kube-apiserver", down_for=1)
    after = controlplane.component_pid(state_dir, "kube-apiserver")
    assert after != before
    assert not Path(f"/proc/{before}").exists()
    assert Path(f"/proc/{after}/cmdline").read_bytes() == command
    control_plane.kubectl("get", "namespaces")

    etcd = controlplane.component_pid(state_dir, "etcd")
    with controlplane.paused(state_dir, "etcd"):
        states = supervision.thread_states(etcd)
        assert len(states) > 1 and set(states) == {"T"}, states
        frozen = control_plane.kubectl(
            "create", "namespace", "while-etcd-sleeps", "--request-timeout=3s", check=False
        )
        assert frozen.returncode != 0
    assert "T" not in supervision.thread_states(etcd)
    control_plane.kubectl("get", "namespaces", "--request-timeout=30s")
    control_plane.kubectl(
        "delete", "namespace", "while-etcd-sleeps", "--ignore-not-found", "--wait=false"
    )
