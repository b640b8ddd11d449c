"""The local control plane is a real one: TLS, RBAC, ServiceAccount tokens, garbage collection."""

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

from testground import controlplane
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


def test_cli_up_and_down_leave_nothing_running(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(controlplane.__file__).parents[1])}
    command = [sys.executable, "-m", "testground.controlplane"]
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
    pids = json.loads((tmp_path / "state.json").read_text())["pids"].values()
    subprocess.run(
        [*command, "down", "--state-dir", str(tmp_path)], env=env, check=True, capture_output=True
    )
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )
