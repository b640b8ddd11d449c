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
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from testground import images, node, pki, procfs, registry
from testground.tools import ensure_tools

REPO = Path(__file__).resolve().parents[2]
DEFAULT_STATE_DIR = REPO / ".testground" / "cluster"
ISSUER = "https://kubernetes.default.svc"
APISERVER_PORT = 443  # the `kubernetes` Service's port, so its ClusterIP needs no proxy
_READY_TIMEOUT = 120.0
_DRAIN_TIMEOUT = 20.0
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
_NO_REGISTRY = "http://127.0.0.1:9"  # the discard port: nothing listens
_STOP_GRACE = 15.0  # seconds a process gets for each of SIGTERM and SIGKILL
_SIGNAL_TIMEOUT = 10.0  # seconds for a SIGSTOP or SIGCONT to reach every thread

# Deployments, ReplicaSets and the other workloads roll for real; ownerReference
# cascades and namespace deletion are real.
_CONTROLLERS = (
    # Folds the chart's -edit and -view ClusterRoles into admin, edit and view.
    "clusterrole-aggregation-controller",
    "daemonset-controller",
    "deployment-controller",
    "disruption-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "node-lifecycle-controller",  # lifts the node's not-ready taint
    "pod-garbage-collector-controller",
    "replicaset-controller",
    "root-ca-certificate-publisher-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "statefulset-controller",
)
_COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "registry",
    "containerd",
    "kubelet",
)

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
        state = procfs.stat_fields(Path(f"/proc/{pid}/stat"))[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def _state_file(state_dir: Path) -> Path:
    return state_dir / "state.json"


def _spawn(command: list[str], log: Path, env: dict[str, str] | None = None) -> int:
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return process.pid


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
        ca_file=state_dir / "pki" / "cluster-ca.crt",
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
    if not all(_alive(pid) for pid in state["pids"].values()):
        return None
    built = images.ensure_images()
    plane = _plane(state_dir, state["node"]["network"]["gateway"], Path(state["bin_dir"]), built)
    if not _ready(plane, _admin(state_dir)):
        return None
    images.import_images(state["node"]["containerd_socket"], built)
    return plane


def _admin(state_dir: Path) -> pki.KeyPair:
    return pki.KeyPair(state_dir / "pki" / "admin.crt", state_dir / "pki" / "admin.key")


def _wait(what: str, ready: Callable[[], bool], state_dir: Path, pids: dict[str, int]) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT
    while not ready():
        dead = [name for name, pid in pids.items() if not _alive(pid)]
        if time.monotonic() > deadline or dead:
            stop(state_dir)
            why = f"{', '.join(dead)} exited" if dead else "timed out"
            raise RuntimeError(f"{what} ({why}); see the logs in {state_dir}")
        time.sleep(0.2)


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

    certs = state_dir / "pki"
    shutil.rmtree(certs, ignore_errors=True)  # a new cluster, maybe on another address
    ca = pki.create_ca(certs, "cluster-ca")
    serving = pki.issue(
        ca,
        certs,
        "apiserver",
        common_name="kube-apiserver",
        dns_names=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
        ip_addresses=("127.0.0.1", network.gateway),
        server=True,
    )

    def client(name: str, common_name: str, *organizations: str) -> pki.KeyPair:
        return pki.issue(
            ca, certs, name, common_name=common_name, organizations=organizations, client=True
        )

    admin = client("admin", "admin", "system:masters")
    plane = _plane(state_dir, network.gateway, bin_dir, built)
    _kubeconfig(plane.kubeconfig, plane.server, ca.cert, admin, "admin")
    kubeconfigs = {}
    # The controller manager and the scheduler act as system:masters: without
    # per-controller ServiceAccounts their bootstrap roles lack what they need,
    # and a throwaway local cluster can be lax here. The kubelet is a real node
    # (system:nodes, checked by the Node authorizer and NodeRestriction).
    for component, common_name, organization in (
        ("kube-controller-manager", "system:kube-controller-manager", "system:masters"),
        ("kube-scheduler", "system:kube-scheduler", "system:masters"),
        ("kubelet", f"system:node:{node.NODE_NAME}", "system:nodes"),
    ):
        path = state_dir / f"{component}.kubeconfig"
        _kubeconfig(
            path, plane.server, ca.cert, client(component, common_name, organization), component
        )
        kubeconfigs[component] = path
    kubelet_client = client("apiserver-kubelet-client", "kube-apiserver", "system:masters")
    kubelet_serving = pki.issue(
        ca,
        certs,
        "kubelet-serving",
        common_name=node.NODE_NAME,
        dns_names=(node.NODE_NAME,),
        ip_addresses=(network.gateway,),
        server=True,
    )
    sa_key = pki.create_signing_key(certs, "service-accounts")
    audit_policy = state_dir / "audit-policy.yaml"
    audit_policy.write_text(_AUDIT_POLICY)
    for leftover in ("etcd-data", *node.STATE_DIRECTORIES):  # of an earlier cluster here
        shutil.rmtree(state_dir / leftover, ignore_errors=True)
    plane.audit_log.unlink(missing_ok=True)

    etcd_port, peer_port = _free_port(), _free_port()
    etcd_url, peer_url = f"http://127.0.0.1:{etcd_port}", f"http://127.0.0.1:{peer_port}"
    pids["etcd"] = _spawn(
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
    pids["kube-apiserver"] = _spawn(
        [
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            f"--bind-address={network.gateway}",
            f"--secure-port={APISERVER_PORT}",
            f"--advertise-address={network.gateway}",
            "--endpoint-reconciler-type=none",
            f"--cert-dir={certs}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={ca.cert}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--kubelet-client-certificate={kubelet_client.cert}",
            f"--kubelet-client-key={kubelet_client.key}",
            f"--kubelet-certificate-authority={ca.cert}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--service-account-issuer={ISSUER}",
            f"--api-audiences={ISSUER}",
            f"--service-account-key-file={sa_key.cert}",
            f"--service-account-signing-key-file={sa_key.key}",
            f"--service-cluster-ip-range={network.service_range}",
            f"--audit-policy-file={audit_policy}",
            f"--audit-log-path={plane.audit_log}",
            "--audit-log-mode=blocking",  # each request is in the log when it returns
            # One file for the test ground's life: its readers follow it by offset,
            # and a large benchmark writes more than the default 100 MB.
            "--audit-log-maxsize=0",
        ],
        state_dir / "kube-apiserver.log",
    )
    record()
    _wait("the API server did not become ready", lambda: _ready(plane, admin), state_dir, pids)
    pids["kube-controller-manager"] = _spawn(
        [
            str(bin_dir / "kube-controller-manager"),
            f"--kubeconfig={kubeconfigs['kube-controller-manager']}",
            f"--authentication-kubeconfig={kubeconfigs['kube-controller-manager']}",
            f"--authorization-kubeconfig={kubeconfigs['kube-controller-manager']}",
            f"--controllers={','.join(_CONTROLLERS)}",
            f"--service-account-private-key-file={sa_key.key}",
            f"--root-ca-file={ca.cert}",
            "--use-service-account-credentials=false",
            "--leader-elect=false",
            "--secure-port=0",
        ],
        state_dir / "kube-controller-manager.log",
    )
    pids["kube-scheduler"] = _spawn(
        [
            str(bin_dir / "kube-scheduler"),
            f"--kubeconfig={kubeconfigs['kube-scheduler']}",
            f"--authentication-kubeconfig={kubeconfigs['kube-scheduler']}",
            f"--authorization-kubeconfig={kubeconfigs['kube-scheduler']}",
            "--leader-elect=false",
            "--secure-port=0",
        ],
        state_dir / "kube-scheduler.log",
    )
    local_registry = registry.prepare(state_dir, network.gateway, ca)
    pids["registry"] = _spawn(
        [str(bin_dir / "registry"), "serve", str(local_registry.config)],
        local_registry.log,
        # It would otherwise export traces to an OTLP collector on loopback.
        env={**os.environ, "OTEL_TRACES_EXPORTER": "none"},
    )
    record()
    _wait("the registry did not start", local_registry.ready, state_dir, pids)
    containerd_config = node.containerd_config(state_dir, node_state, built.pause.reference)
    registry.hosts_config(local_registry, node.registry_config_path(state_dir))
    pids["containerd"] = _spawn(
        ["containerd", f"--config={containerd_config}", "--log-level=warn"],
        state_dir / "containerd.log",
        # Images come from the local build and the local registry only: a Pod
        # naming any other image makes containerd try a registry, which must
        # fail at once, here, without even a DNS lookup (a proxy is asked for
        # the whole URL). The local registry is reached directly.
        env={
            **os.environ,
            **dict.fromkeys(_PROXY_VARIABLES, _NO_REGISTRY),
            "NO_PROXY": network.gateway,
        },
    )
    record()
    socket_path = Path(node_state.containerd_socket)
    _wait("containerd did not start", socket_path.is_socket, state_dir, pids)
    images.import_images(node_state.containerd_socket, built)
    kubelet_config = node.kubelet_config(
        state_dir, node_state, kubelet_serving, ca, _free_port(), sync_frequency
    )
    pids["kubelet"] = _spawn(
        [
            str(bin_dir / "kubelet"),
            f"--config={kubelet_config}",
            f"--kubeconfig={kubeconfigs['kubelet']}",
            f"--root-dir={node_state.kubelet_root}",
            f"--hostname-override={node.NODE_NAME}",
            f"--node-ip={network.gateway}",
        ],
        state_dir / "kubelet.log",
    )
    record()
    _wait("the node did not become Ready", lambda: _node_ready(plane, admin), state_dir, pids)
    print(
        f"cluster ready in {time.monotonic() - started:.1f}s ({plane.server})",
        file=sys.stderr,
    )
    return plane


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
            _terminate(pids[name])
    if all(
        name in pids and _alive(pids[name]) for name in ("kube-apiserver", "kubelet", "containerd")
    ):
        _drain(state_dir, Path(state["bin_dir"]), node_state)
    for name in ("kubelet", "containerd", "registry", "kube-apiserver", "etcd"):
        if name in pids:
            _terminate(pids[name])
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
    _terminate(pid)
    time.sleep(down_for)
    state = _read_state(state_dir)
    assert state is not None
    state["pids"][name] = _spawn(command, state_dir / f"{name}.log", env)
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


def thread_states(pid: int) -> list[str]:
    """The state letter of every thread of `pid` (`R`, `S`, `T`...); [] when it is gone."""
    states = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            states.append(procfs.stat_fields(task / "stat")[0])
    return states


def _await_threads(pid: int, stopped: bool, what: str) -> None:
    """Wait until every thread of `pid` is stopped (`T`), or none is."""
    deadline = time.monotonic() + _SIGNAL_TIMEOUT
    while True:
        states = thread_states(pid)
        if not states:
            raise RuntimeError(f"{what} (pid {pid}) is gone")
        if all(state == "T" for state in states) if stopped else "T" not in states:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{what} (pid {pid}) not {'stopped' if stopped else 'running'} "
                f"{_SIGNAL_TIMEOUT:.0f} s after the signal; thread states {''.join(states)}"
            )
        time.sleep(0.01)


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
        _await_threads(pid, stopped=True, what=name)
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
        _await_threads(pid, stopped=False, what=name)


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
