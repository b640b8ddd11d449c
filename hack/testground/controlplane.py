"""A real, local single-node Kubernetes cluster.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler, with TLS from
a generated CA, client-certificate authentication, the Node and RBAC
authorizers, ServiceAccount token issuance and an audit log; and a node
(containerd, runc and a kubelet, `testground.node`) that runs Pods from the
locally built images (`testground.images`) or pulls them from the cluster's
OCI registry (`testground.registry`). The API server listens on the node
bridge's gateway address, port 443, which is also the `kubernetes` Service's
ClusterIP, so Pods reach it as they would in any cluster; the registry listens
on that address too; etcd and the controllers stay on loopback.

Here: the cluster's life (start, stop, restart or freeze a component). Its
certificates and kubeconfigs are `testground.clusterpki`'s, each component's
command line `testground.components`', and starting, watching and ending a
process `testground.supervision`'s.

    python -m testground.controlplane up [--state-dir DIR]   # prints `export KUBECONFIG=...`
    python -m testground.controlplane down [--state-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from testground import clusterpki, components, images, node, pki, registry, supervision
from testground.tools import ensure_tools

REPO = Path(__file__).resolve().parents[2]
DEFAULT_STATE_DIR = REPO / ".testground" / "cluster"
APISERVER_PORT = 443  # the `kubernetes` Service's port, so its ClusterIP needs no proxy
_READY_TIMEOUT = 120.0
_DRAIN_TIMEOUT = 20.0

_COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "registry",
    "containerd",
    "kubelet",
)


@dataclass(frozen=True)
class ControlPlane:
    """A running control plane and how to talk to it."""

    kubeconfig: Path
    server: str
    ca_file: Path
    audit_log: Path
    bin_dir: Path
    state_dir: Path
    gateway: str  # the host's address as Pods see it (the API server listens there)
    images: images.Images
    registry: registry.Registry  # the node's only registry

    @property
    def containerd_socket(self) -> Path:
        """The node's containerd (`ctr --address`, `testground.images`)."""
        return node.containerd_socket(self.state_dir)

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


def _state_file(state_dir: Path) -> Path:
    return state_dir / "state.json"


def _get(plane: ControlPlane, admin: pki.KeyPair, path: str) -> httpx.Response | None:
    """GET `path` as the admin; None when the API server does not answer."""
    try:
        return httpx.get(
            f"{plane.server}{path}", verify=_client_context(plane.ca_file, admin), timeout=2
        )
    except httpx.HTTPError:
        return None


def _ready(plane: ControlPlane, admin: pki.KeyPair) -> bool:
    response = _get(plane, admin, "/readyz")
    return response is not None and response.status_code == 200


def _client_context(ca: Path, client: pki.KeyPair) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(client.cert), str(client.key))
    return context


def _plane(state_dir: Path, gateway: str, bin_dir: Path, built: images.Images) -> ControlPlane:
    return ControlPlane(
        kubeconfig=state_dir / "admin.kubeconfig",
        server=f"https://{gateway}:{APISERVER_PORT}",
        ca_file=clusterpki.ca_file(state_dir),
        audit_log=state_dir / "audit.log",
        bin_dir=bin_dir,
        state_dir=state_dir,
        gateway=gateway,
        images=built,
        registry=registry.registry_of(state_dir, gateway),
    )


def _read_state(state_dir: Path) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads(_state_file(state_dir).read_text())
    except (OSError, ValueError):
        return None
    return state


def _running(state_dir: Path) -> ControlPlane | None:
    """The cluster recorded in `state_dir`, if all of it is alive and ready."""
    state = _read_state(state_dir)
    if state is None or set(state["pids"]) != set(_COMPONENTS):
        return None
    if not all(supervision.alive(pid) for pid in state["pids"].values()):
        return None
    built = images.ensure_images()
    plane = _plane(state_dir, state["node"]["network"]["gateway"], Path(state["bin_dir"]), built)
    if not _ready(plane, clusterpki.admin(state_dir)):
        return None
    images.import_images(state["node"]["containerd_socket"], built)
    return plane


def _wait(what: str, ready: Callable[[], bool], state_dir: Path, pids: dict[str, int]) -> None:
    why = supervision.wait_ready(ready, pids, _READY_TIMEOUT)
    if why is not None:
        stop(state_dir)
        raise RuntimeError(f"{what} ({why}); see the logs in {state_dir}")


def _node_ready(plane: ControlPlane, admin: pki.KeyPair) -> bool:
    response = _get(plane, admin, f"/api/v1/nodes/{node.NODE_NAME}")
    if response is None or response.status_code != 200:
        return False
    conditions = response.json().get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def start(state_dir: Path, sync_frequency: str = node.DEFAULT_SYNC_FREQUENCY) -> ControlPlane:
    """Start a cluster keeping its state in `state_dir`, or return the running one.

    `sync_frequency` is the kubelet's pod sync period: how soon a changed
    Secret reaches the files of the Pods that mount it.
    """
    state_dir = state_dir.resolve()
    running = _running(state_dir)
    if running is not None:
        return running
    stop(state_dir)
    bin_dir = ensure_tools()
    node.ensure_packages()
    built = images.ensure_images()
    started = time.monotonic()
    state_dir.mkdir(parents=True, exist_ok=True)
    with node.network_lock():
        network = node.plan_network(state_dir)
        node_state = node.new_state(state_dir, network)
        pids: dict[str, int] = {}
        record = functools.partial(_record, state_dir, pids, bin_dir, node_state)
        record()  # before anything is created, so that `stop` can undo a half start
        node.create_bridge(network)
    node.create_cgroups(node_state.instance)
    plane = _plane(state_dir, network.gateway, bin_dir, built)
    certs = clusterpki.create(state_dir, network.gateway, plane.server, plane.kubeconfig)
    for leftover in ("etcd-data", *node.STATE_DIRECTORIES):  # of an earlier cluster here
        shutil.rmtree(state_dir / leftover, ignore_errors=True)
    plane.audit_log.unlink(missing_ok=True)
    _start_components(plane, node_state, certs, pids, record, sync_frequency)
    print(
        f"cluster ready in {time.monotonic() - started:.1f}s ({plane.server})",
        file=sys.stderr,
    )
    return plane


def _start_components(
    plane: ControlPlane,
    node_state: node.NodeState,
    certs: clusterpki.ClusterPki,
    pids: dict[str, int],
    record: Callable[[], None],
    sync_frequency: str,
) -> None:
    """Start the components in order, each group once the one before is ready; record
    every pid as it is started, so that `stop` can end a half-started cluster."""
    state_dir, bin_dir, network = plane.state_dir, plane.bin_dir, node_state.network
    admin = clusterpki.admin(state_dir)

    def launch(what: str, ready: Callable[[], bool], *group: components.Component) -> None:
        for component in group:
            pids[component.name] = supervision.spawn(
                component.command, component.log, component.env
            )
        record()
        _wait(what, ready, state_dir, pids)

    etcd, etcd_url = components.etcd(bin_dir, state_dir)
    apiserver = components.apiserver(
        bin_dir, state_dir, network, APISERVER_PORT, etcd_url, certs, plane.audit_log
    )
    launch("the API server did not become ready", lambda: _ready(plane, admin), etcd, apiserver)
    local_registry = registry.prepare(state_dir, network.gateway, certs.ca)
    launch(
        "the registry did not start",
        local_registry.ready,
        components.controller_manager(bin_dir, state_dir, certs),
        components.scheduler(bin_dir, state_dir, certs),
        components.registry(bin_dir, local_registry),
    )
    containerd_config = node.containerd_config(state_dir, node_state, plane.images.pause.reference)
    registry.hosts_config(local_registry, node.registry_config_path(state_dir))
    launch(
        "containerd did not start",
        Path(node_state.containerd_socket).is_socket,
        components.containerd(state_dir, containerd_config, network),
    )
    images.import_images(node_state.containerd_socket, plane.images)
    kubelet_port = supervision.free_port()
    kubelet_config = node.kubelet_config(
        state_dir, node_state, certs.kubelet_serving, certs.ca, kubelet_port, sync_frequency
    )
    launch(
        "the node did not become Ready",
        lambda: _node_ready(plane, admin),
        components.kubelet(bin_dir, state_dir, kubelet_config, certs, node_state),
    )


def _record(
    state_dir: Path, pids: dict[str, int], bin_dir: Path, node_state: node.NodeState
) -> None:
    state = {"pids": pids, "bin_dir": str(bin_dir), "node": node_state.to_json()}
    _state_file(state_dir).write_text(json.dumps(state))


def stop(state_dir: Path) -> None:
    """Stop everything recorded in `state_dir` and undo what it made (safe when nothing runs)."""
    # Absolute, as the mount points the sweep looks for under it are.
    state_dir = state_dir.resolve()
    state = _read_state(state_dir)
    if state is None:
        return
    pids: dict[str, int] = state["pids"]
    node_state = node.NodeState.from_json(state["node"])
    # The controllers first, so that nothing recreates the Pods the kubelet is
    # then asked to tear down; etcd last: an API server that loses etcd while
    # shutting down hangs instead of exiting.
    for name in ("kube-scheduler", "kube-controller-manager"):
        if name in pids:
            supervision.terminate(pids[name])
    needed = ("kube-apiserver", "kubelet", "containerd")
    if all(name in pids and supervision.alive(pids[name]) for name in needed):
        _drain(state_dir, Path(state["bin_dir"]), node_state)
    for name in ("kubelet", "containerd", "registry", "kube-apiserver", "etcd"):
        if name in pids:
            supervision.terminate(pids[name])
    node.sweep(state_dir, node_state)
    _state_file(state_dir).unlink(missing_ok=True)


def component_pid(state_dir: Path, name: str) -> int:
    """The process id of one running component (`etcd`, `kube-apiserver`, ...)."""
    state = _read_state(state_dir.resolve())
    if state is None or name not in state["pids"]:
        raise RuntimeError(f"no {name} recorded in {state_dir}")
    pid: int = state["pids"][name]
    return pid


def restart_component(state_dir: Path, name: str, down_for: float = 0.0) -> None:
    """Stop one component, and after `down_for` seconds start it again as it was started.

    The same command line and environment (read from /proc), the same log file.
    Returns once the API server answers ready again.
    """
    state_dir = state_dir.resolve()
    pid = component_pid(state_dir, name)
    proc = Path(f"/proc/{pid}")
    command = [arg.decode() for arg in proc.joinpath("cmdline").read_bytes().split(b"\0")[:-1]]
    env = dict(
        entry.decode().partition("=")[::2]
        for entry in proc.joinpath("environ").read_bytes().split(b"\0")
        if entry
    )
    supervision.terminate(pid)
    time.sleep(down_for)
    state = _read_state(state_dir)
    assert state is not None
    state["pids"][name] = supervision.spawn(command, state_dir / f"{name}.log", env)
    _state_file(state_dir).write_text(json.dumps(state))
    kubectl = [
        str(Path(state["bin_dir"]) / "kubectl"),
        f"--kubeconfig={state_dir / 'admin.kubeconfig'}",
        "get",
        "--raw=/readyz",
        "--request-timeout=2s",
    ]
    deadline = time.monotonic() + _READY_TIMEOUT
    while subprocess.run(kubectl, capture_output=True, timeout=30, check=False).returncode:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the API server not ready after restarting {name}")
        time.sleep(0.2)


@contextlib.contextmanager
def paused(state_dir: Path, name: str) -> Iterator[None]:
    """Freeze one component (SIGSTOP) for the body of the `with`, then let it go on (SIGCONT).

    A signal is delivered asynchronously, and a multi-threaded process is
    stopped only once each of its threads is: the body starts when every
    thread is, and the `with` ends when every thread runs again.
    """
    pid = component_pid(state_dir, name)
    os.kill(pid, signal.SIGSTOP)
    try:
        supervision.await_threads(pid, stopped=True, what=name)
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
        supervision.await_threads(pid, stopped=False, what=name)


def _drain(state_dir: Path, bin_dir: Path, node_state: node.NodeState) -> None:
    """Delete every Pod and give the kubelet a moment to stop their sandboxes."""
    subprocess.run(
        [
            str(bin_dir / "kubectl"),
            f"--kubeconfig={state_dir / 'admin.kubeconfig'}",
            "delete",
            "pods",
            "--all",
            "--all-namespaces",
            "--force",
            "--grace-period=0",
            "--wait=false",
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    deadline = time.monotonic() + _DRAIN_TIMEOUT
    while time.monotonic() < deadline and (
        node.running_tasks(node_state) or node.node_netns(node_state)
    ):
        time.sleep(0.2)


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
