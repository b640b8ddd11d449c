"""A real, local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager.

Loopback only, on free ports, with TLS from a generated CA, client-certificate
authentication, RBAC, ServiceAccount token issuance, an audit log, and the
controllers that make namespaces and ownerReference cascades real (namespace,
garbage collector, service accounts). No kubelet and no scheduler: pods never run.

    python -m testground.controlplane up [--state-dir DIR]   # prints `export KUBECONFIG=...`
    python -m testground.controlplane down [--state-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from testground import pki
from testground.tools import ensure_tools

REPO = Path(__file__).resolve().parents[2]
DEFAULT_STATE_DIR = REPO / ".testground" / "cluster"
SERVICE_IP = "10.0.0.1"  # first address of the service range: the `kubernetes` Service
ISSUER = "https://kubernetes.default.svc"
_READY_TIMEOUT = 120.0
_STOP_GRACE = 15.0  # seconds a process gets for each of SIGTERM and SIGKILL

_AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
"""


@dataclass(frozen=True)
class ControlPlane:
    """A running control plane and how to talk to it."""

    kubeconfig: Path
    server: str
    ca_file: Path
    audit_log: Path
    bin_dir: Path
    state_dir: Path

    def env(self) -> dict[str, str]:
        """This process's environment, pointed at the control plane and its tools."""
        path = f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PATH": path}

    def _run(
        self,
        tool: str,
        args: tuple[str, ...],
        input: str | None,
        check: bool,
        kubeconfig: Path | None,
    ) -> subprocess.CompletedProcess[str]:
        env = self.env()
        if kubeconfig is not None:
            env["KUBECONFIG"] = str(kubeconfig)
        result = subprocess.run(
            [str(self.bin_dir / tool), *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against the control plane."""
        return self._run("kubectl", args, input, check, kubeconfig)

    def helm(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the built helm against the control plane."""
        return self._run("helm", args, input, check, kubeconfig)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _kubeconfig(path: Path, server: str, ca: Path, client: pki.KeyPair, user: str) -> None:
    # JSON is YAML: no YAML writer needed.
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "local", "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate": str(client.cert), "client-key": str(client.key)},
            }
        ],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


def _alive(pid: int) -> bool:
    """Whether `pid` still runs; a zombie (exited, not yet reaped) does not."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # The state follows the command name, which is in parentheses.
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _state_file(state_dir: Path) -> Path:
    return state_dir / "state.json"


def _spawn(command: list[str], log: Path) -> int:
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return process.pid


def _ready(plane: ControlPlane, admin: pki.KeyPair) -> bool:
    try:
        response = httpx.get(
            f"{plane.server}/readyz",
            verify=_client_context(plane.ca_file, admin),
            timeout=2,
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def _client_context(ca: Path, client: pki.KeyPair) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(client.cert), str(client.key))
    return context


def _plane(state_dir: Path, port: int, bin_dir: Path) -> ControlPlane:
    return ControlPlane(
        kubeconfig=state_dir / "admin.kubeconfig",
        server=f"https://127.0.0.1:{port}",
        ca_file=state_dir / "pki" / "cluster-ca.crt",
        audit_log=state_dir / "audit.log",
        bin_dir=bin_dir,
        state_dir=state_dir,
    )


def _running(state_dir: Path) -> ControlPlane | None:
    """The control plane recorded in `state_dir`, if all of it is alive and ready."""
    try:
        state = json.loads(_state_file(state_dir).read_text())
    except (OSError, ValueError):
        return None
    if not all(_alive(pid) for pid in state["pids"].values()):
        return None
    plane = _plane(state_dir, state["apiserver_port"], Path(state["bin_dir"]))
    admin = pki.KeyPair(state_dir / "pki" / "admin.crt", state_dir / "pki" / "admin.key")
    return plane if _ready(plane, admin) else None


def start(state_dir: Path) -> ControlPlane:
    """Start a control plane keeping its state in `state_dir`, or return the running one."""
    state_dir = state_dir.resolve()
    running = _running(state_dir)
    if running is not None:
        return running
    stop(state_dir)
    bin_dir = ensure_tools()
    started = time.monotonic()
    state_dir.mkdir(parents=True, exist_ok=True)
    certs = state_dir / "pki"
    ca = pki.create_ca(certs, "cluster-ca")
    serving = pki.issue(
        ca,
        certs,
        "apiserver",
        common_name="kube-apiserver",
        dns_names=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
        ip_addresses=("127.0.0.1", SERVICE_IP),
        server=True,
    )
    admin = pki.issue(
        ca, certs, "admin", common_name="admin", organizations=("system:masters",), client=True
    )
    manager = pki.issue(
        ca,
        certs,
        "controller-manager",
        common_name="system:kube-controller-manager",
        # Without per-controller ServiceAccounts its bootstrap role lacks what
        # the controllers need; a throwaway local plane can be lax here.
        organizations=("system:masters",),
        client=True,
    )
    sa_key = pki.create_signing_key(certs, "service-accounts")

    etcd_port, peer_port, apiserver_port = _free_port(), _free_port(), _free_port()
    plane = _plane(state_dir, apiserver_port, bin_dir)
    _kubeconfig(plane.kubeconfig, plane.server, ca.cert, admin, "admin")
    manager_kubeconfig = state_dir / "controller-manager.kubeconfig"
    _kubeconfig(manager_kubeconfig, plane.server, ca.cert, manager, "controller-manager")
    audit_policy = state_dir / "audit-policy.yaml"
    audit_policy.write_text(_AUDIT_POLICY)
    shutil.rmtree(state_dir / "etcd-data", ignore_errors=True)
    plane.audit_log.unlink(missing_ok=True)

    etcd_url, peer_url = f"http://127.0.0.1:{etcd_port}", f"http://127.0.0.1:{peer_port}"
    pids = {
        "etcd": _spawn(
            [
                str(bin_dir / "etcd"),
                "--name=local",
                f"--data-dir={state_dir / 'etcd-data'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=local={peer_url}",
                "--listen-metrics-urls=",
                "--unsafe-no-fsync",  # throwaway data: speed over durability
                "--log-level=warn",
            ],
            state_dir / "etcd.log",
        )
    }
    pids["kube-apiserver"] = _spawn(
        [
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            f"--secure-port={apiserver_port}",
            f"--advertise-address={SERVICE_IP}",
            "--endpoint-reconciler-type=none",
            f"--cert-dir={certs}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={ca.cert}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={ISSUER}",
            f"--api-audiences={ISSUER}",
            f"--service-account-key-file={sa_key.cert}",
            f"--service-account-signing-key-file={sa_key.key}",
            "--service-cluster-ip-range=10.0.0.0/24",
            f"--audit-policy-file={audit_policy}",
            f"--audit-log-path={plane.audit_log}",
            "--audit-log-mode=blocking",  # each request is in the log when it returns
        ],
        state_dir / "kube-apiserver.log",
    )
    _record(state_dir, pids, apiserver_port, bin_dir)
    deadline = time.monotonic() + _READY_TIMEOUT
    while not _ready(plane, admin):
        if time.monotonic() > deadline or not all(_alive(p) for p in pids.values()):
            stop(state_dir)
            raise RuntimeError(
                f"the control plane did not become ready; see the logs in {state_dir}"
            )
        time.sleep(0.3)
    pids["kube-controller-manager"] = _spawn(
        [
            str(bin_dir / "kube-controller-manager"),
            f"--kubeconfig={manager_kubeconfig}",
            f"--authentication-kubeconfig={manager_kubeconfig}",
            f"--authorization-kubeconfig={manager_kubeconfig}",
            "--controllers=garbagecollector,namespace,serviceaccount,serviceaccount-token,root-ca-cert-publisher",
            f"--service-account-private-key-file={sa_key.key}",
            f"--root-ca-file={ca.cert}",
            "--use-service-account-credentials=false",
            "--leader-elect=false",
            "--secure-port=0",
        ],
        state_dir / "kube-controller-manager.log",
    )
    _record(state_dir, pids, apiserver_port, bin_dir)
    print(
        f"control plane ready in {time.monotonic() - started:.1f}s ({plane.server})",
        file=sys.stderr,
    )
    return plane


def _record(state_dir: Path, pids: dict[str, int], port: int, bin_dir: Path) -> None:
    state = {"pids": pids, "apiserver_port": port, "bin_dir": str(bin_dir)}
    _state_file(state_dir).write_text(json.dumps(state))


def stop(state_dir: Path) -> None:
    """Stop every process recorded in `state_dir` (safe when nothing runs)."""
    try:
        state = json.loads(_state_file(state_dir).read_text())
    except (OSError, ValueError):
        return
    pids: dict[str, int] = state["pids"]
    # One at a time, the controller manager first and etcd last: an API server
    # that loses etcd while shutting down hangs instead of exiting.
    for pid in reversed(list(pids.values())):
        _terminate(pid)
    _state_file(state_dir).unlink(missing_ok=True)


def _terminate(pid: int) -> None:
    for sig, grace in ((signal.SIGTERM, _STOP_GRACE), (signal.SIGKILL, _STOP_GRACE)):
        if not _alive(pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + grace
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    if _alive(pid):
        raise RuntimeError(f"process {pid} survived SIGKILL")


def main(argv: list[str] | None = None) -> None:
    """`up` or `down`."""
    parser = argparse.ArgumentParser(prog="python -m testground.controlplane")
    parser.add_argument("command", choices=("up", "down"))
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    args = parser.parse_args(argv)
    if args.command == "up":
        plane = start(args.state_dir)
        print(f"export KUBECONFIG={plane.kubeconfig}")
    else:
        stop(args.state_dir)
        print("control plane stopped", file=sys.stderr)


if __name__ == "__main__":
    main()
