"""A real node for the local control plane: containerd, runc, a bridge and a kubelet.

Pods run, mount Secrets and roll. Everything the node creates on the machine
is named after the control plane's state directory and removed by `stop`:

- a Linux bridge `egt<id>` with the gateway address of a /24 under 10.250/16
  picked free at start. Pods get an address on it and an on-link route only:
  no default route, so a Pod can reach the host's bridge address (where the
  API server and the Pod-facing eGain emulator listen) and nothing beyond it.
  The first address of that /24 is also the `kubernetes` Service's ClusterIP
  (the service range is the /26 at its start, Pods take addresses above it),
  so in-cluster clients reach the API server with no kube-proxy and no
  iptables rule at all;
- cgroups under `/egt<id>` in every cgroup v1 hierarchy (the kubelet's
  `cgroupRoot`), network namespaces `/run/netns/cni-*` made by containerd's
  CNI calls, mounts under the state directory (container root file systems,
  Secret volumes), CNI cache files under `/var/lib/cni`, shim sockets under
  `/run/containerd/s`, and `/var/log/containers` links.

`stop` first lets the kubelet tear Pods down (so CNI deletes what it added),
then kills whatever is left in the node's cgroups, unmounts, deletes the
namespaces, cgroups and bridge, and removes the files; it is safe to run on a
node that crashed half-way.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from testground import pki

NODE_NAME = "egt-node"
CGROUP_ROOT = Path("/sys/fs/cgroup")
NETNS_DIR = Path("/run/netns")
CNI_BIN_DIR = Path("/usr/lib/cni")
CNI_CACHE = Path("/var/lib/cni")
SHIM_SOCKETS = Path("/run/containerd")
CONTAINER_LOG_LINKS = Path("/var/log/containers")
APT_PACKAGES = ("containerd", "runc", "containernetworking-plugins")
# The kubelet's default is 1 m; a shorter loop makes Secret updates reach
# mounted files sooner (measured: 68-78 s at 1 m, 4-13 s at 10 s).
DEFAULT_SYNC_FREQUENCY = "10s"
# Under the state directory, what the node writes (removed before a start).
STATE_DIRECTORIES = ("cni", "containerd", "kubelet", "pod-logs", "volume-plugins")


@dataclass(frozen=True)
class Network:
    """The node's bridge and its addresses."""

    bridge: str
    gateway: str  # the host's address on the bridge: API server, kubelet, Pod-facing services
    prefix: int  # 10.250.<prefix>.0/24

    @property
    def subnet(self) -> str:
        return f"10.250.{self.prefix}.0/24"

    @property
    def service_range(self) -> str:
        """The /26 the Services take; its first address is `gateway`."""
        return f"10.250.{self.prefix}.0/26"

    @property
    def pod_range_start(self) -> str:
        return f"10.250.{self.prefix}.64"


@dataclass(frozen=True)
class NodeState:
    """What `stop` needs to undo a node, recorded before anything is created."""

    instance: str
    network: Network
    containerd_socket: str
    kubelet_root: str
    preexisting_netns: tuple[str, ...]
    created_paths: tuple[str, ...]  # machine paths that did not exist before the node

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> NodeState:
        network = Network(**data["network"])  # type: ignore[arg-type]
        return cls(
            instance=str(data["instance"]),
            network=network,
            containerd_socket=str(data["containerd_socket"]),
            kubelet_root=str(data["kubelet_root"]),
            preexisting_netns=tuple(data["preexisting_netns"]),  # type: ignore[arg-type]
            created_paths=tuple(data["created_paths"]),  # type: ignore[arg-type]
        )


def ensure_packages() -> None:
    """Install containerd, runc and the CNI plugins from Debian if any is missing."""
    missing = [
        package
        for package in APT_PACKAGES
        if subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
        ).stdout
        != "install ok installed"
    ]
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def instance_id(state_dir: Path) -> str:
    """Six hex digits naming this node's bridge and cgroups."""
    return hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:6]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _used_networks() -> list[ipaddress.IPv4Network]:
    used = []
    for line in _ip("-4", "-o", "addr", "show").stdout.splitlines():
        used.append(ipaddress.IPv4Interface(line.split()[3]).network)
    for line in _ip("-4", "route", "show").stdout.splitlines():
        target = line.split()[0]
        if target != "default":
            used.append(ipaddress.IPv4Network(target, strict=False))
    return used


@contextlib.contextmanager
def network_lock(timeout: float = 120) -> Iterator[None]:
    """Hold while choosing a /24 and creating its bridge: one cluster at a time.

    Clusters starting together would otherwise choose the same /24. The lock is
    an abstract Unix socket name, so nothing is left on disk and a killed
    process releases it.
    """
    lock = socket.socket(socket.AF_UNIX)
    deadline = time.monotonic() + timeout
    while True:
        try:
            lock.bind("\0egain-token-operator-testground-network")
            break
        except OSError:
            if time.monotonic() > deadline:
                lock.close()
                raise RuntimeError("another cluster held the network lock too long") from None
            time.sleep(0.1)
    try:
        yield
    finally:
        lock.close()


def plan_network(state_dir: Path) -> Network:
    """A bridge name and a /24 under 10.250/16 that nothing on the machine uses."""
    used = _used_networks()
    for prefix in range(256):
        subnet = ipaddress.IPv4Network(f"10.250.{prefix}.0/24")
        if not any(subnet.overlaps(other) for other in used):
            return Network(f"egt{instance_id(state_dir)}", f"10.250.{prefix}.1", prefix)
    raise RuntimeError("no free /24 under 10.250.0.0/16 for the node's bridge")


def new_state(state_dir: Path, network: Network) -> NodeState:
    """Record, before the node starts, what exists already on the machine."""
    watched = (NETNS_DIR, CNI_CACHE, SHIM_SOCKETS, CONTAINER_LOG_LINKS)
    return NodeState(
        instance=instance_id(state_dir),
        network=network,
        containerd_socket=str(containerd_socket(state_dir)),
        kubelet_root=str(state_dir / "kubelet"),
        preexisting_netns=tuple(sorted(_netns())),
        created_paths=tuple(str(path) for path in watched if not path.exists()),
    )


def _netns() -> set[str]:
    return {path.name for path in NETNS_DIR.glob("*")} if NETNS_DIR.is_dir() else set()


def create_bridge(network: Network) -> None:
    """The bridge with the gateway address, up."""
    _ip("link", "add", network.bridge, "type", "bridge")
    _ip("addr", "add", f"{network.gateway}/24", "dev", network.bridge)
    _ip("link", "set", network.bridge, "up")


def _cgroup_dirs(instance: str) -> Iterator[Path]:
    """This node's cgroup root in every v1 hierarchy that is mounted."""
    for hierarchy in sorted(CGROUP_ROOT.iterdir()):
        if (hierarchy / "cgroup.procs").exists() and not hierarchy.is_symlink():
            yield hierarchy / f"egt{instance}"


def create_cgroups(instance: str) -> None:
    """The kubelet's cgroupRoot, which must exist before it starts."""
    for directory in _cgroup_dirs(instance):
        directory.mkdir(exist_ok=True)
        if directory.parent.name == "cpuset":  # a v1 cpuset starts empty: inherit
            for name in ("cpuset.cpus", "cpuset.mems"):
                (directory / name).write_text((directory.parent / name).read_text())


def write_cni_config(state_dir: Path, network: Network) -> Path:
    """A bridge network without gateway, masquerade or default route."""
    conf_dir = state_dir / "cni" / "net.d"
    conf_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "cniVersion": "1.0.0",
        "name": network.bridge,
        "plugins": [
            {
                "type": "bridge",
                "bridge": network.bridge,
                "isGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(state_dir / "cni" / "ipam"),
                    "ranges": [
                        [
                            {
                                "subnet": network.subnet,
                                "rangeStart": network.pod_range_start,
                                "gateway": network.gateway,
                            }
                        ]
                    ],
                },
            },
            {"type": "loopback"},
        ],
    }
    (conf_dir / "10-egt.conflist").write_text(json.dumps(config, indent=2))
    return conf_dir


def containerd_config(state_dir: Path, state: NodeState, sandbox_image: str) -> Path:
    """containerd's configuration: every path under `state_dir`, CRI on runc with cgroupfs."""
    base = state_dir / "containerd"
    base.mkdir(parents=True, exist_ok=True)
    conf_dir = write_cni_config(state_dir, state.network)
    cri = '[plugins."io.containerd.grpc.v1.cri"]'
    text = f"""\
version = 2
root = "{base / "root"}"
state = "{base / "state"}"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{state.containerd_socket}"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{base / "opt"}"

{cri}
  sandbox_image = "{sandbox_image}"
  # The VM lacks CAP_SYS_RESOURCE: without this runc cannot set oom_score_adj.
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  stream_server_address = "127.0.0.1"

{cri[:-1]}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

{cri[:-1]}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

{cri[:-1]}.containerd.runtimes.runc.options]
  SystemdCgroup = false

{cri[:-1]}.registry]
  config_path = "{registry_config_path(state_dir)}"

{cri[:-1]}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{conf_dir}"
  max_conf_num = 1
"""
    path = base / "config.toml"
    path.write_text(text)
    return path


def containerd_socket(state_dir: Path) -> Path:
    """Where the node's containerd listens (`ctr --address`)."""
    return state_dir / "containerd" / "containerd.sock"


def registry_config_path(state_dir: Path) -> Path:
    """The directory of containerd's registry host configurations (`<host>/hosts.toml`)."""
    return state_dir / "containerd" / "certs.d"


def kubelet_config(
    state_dir: Path,
    state: NodeState,
    serving: pki.KeyPair,
    ca: pki.KeyPair,
    port: int,
    sync_frequency: str,
) -> Path:
    """The kubelet's configuration: no host iptables, cgroup v1 allowed, files under state."""
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": state.network.gateway,
        "port": port,
        "readOnlyPort": 0,
        "healthzPort": 0,
        "tlsCertFile": str(serving.cert),
        "tlsPrivateKeyFile": str(serving.key),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(ca.cert)},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "containerRuntimeEndpoint": f"unix://{state.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/egt{state.instance}",
        "failCgroupV1": False,
        "failSwapOn": False,
        # Otherwise the kubelet adds host iptables rules (among them a DROP
        # for 127.0.0.0/8 traffic) that would outlive the node.
        "makeIPTablesUtilChains": False,
        "syncFrequency": sync_frequency,
        "resolvConf": "",
        "podLogsDir": str(state_dir / "pod-logs"),
        "volumePluginDir": str(state_dir / "volume-plugins"),
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%"},
        "serializeImagePulls": False,
    }
    path = state_dir / "kubelet-config.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path


# --- stopping -----------------------------------------------------------------------


def _kill_cgroup_processes(instance: str) -> None:
    """SIGKILL every process left in the node's cgroups (containers, pause)."""
    for directory in _cgroup_dirs(instance):
        if not directory.is_dir():
            continue
        for procs in directory.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                for pid in procs.read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if text.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
    return found


def shims(state: NodeState) -> list[int]:
    """containerd's shims for this node: they outlive containerd by design, and name its socket."""
    return _processes_mentioning(state.containerd_socket)


def _kill_shims(state: NodeState) -> None:
    for pid in shims(state):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while shims(state) and time.monotonic() < deadline:
        time.sleep(0.05)


def mounts_under(*roots: str) -> list[str]:
    """Mount points at or below any of `roots`, deepest first."""
    points = []
    for line in Path("/proc/mounts").read_text().splitlines():
        point = line.split()[1].encode().decode("unicode_escape")
        if any(point == root or point.startswith(root.rstrip("/") + "/") for root in roots):
            points.append(point)
    return sorted(set(points), key=len, reverse=True)


def _unmount_all(*roots: str) -> None:
    for _ in range(5):  # a mount can hide another at the same point
        points = mounts_under(*roots)
        if not points:
            return
        for point in points:
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def running_tasks(state: NodeState) -> list[str]:
    """The containers (Pod sandboxes included) that containerd still runs."""
    result = subprocess.run(
        ["ctr", f"--address={state.containerd_socket}", "--namespace=k8s.io", "tasks", "ls", "-q"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.stdout.split()


def node_netns(state: NodeState) -> list[str]:
    """Network namespaces created while the node ran."""
    return sorted(_netns() - set(state.preexisting_netns))


def _remove_cgroups(instance: str) -> None:
    for directory in _cgroup_dirs(instance):
        if not directory.is_dir():
            continue
        children = sorted(
            (path for path in directory.rglob("*") if path.is_dir()),
            key=lambda path: len(path.parts),
            reverse=True,
        )
        for child in [*children, directory]:
            for _ in range(50):  # a killed process leaves its cgroup a moment later
                try:
                    child.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)


def cgroups_left(instance: str) -> list[str]:
    return [str(directory) for directory in _cgroup_dirs(instance) if directory.exists()]


def sweep(state_dir: Path, state: NodeState) -> None:
    """Remove everything the node created on the machine, whatever state it is in."""
    _kill_cgroup_processes(state.instance)
    _kill_shims(state)
    _unmount_all(str(state_dir))
    for name in node_netns(state):
        _ip("netns", "delete", name, check=False)
    _remove_cgroups(state.instance)
    if _ip("link", "show", state.network.bridge, check=False).returncode == 0:
        _ip("link", "delete", state.network.bridge, check=False)
    for cached in (CNI_CACHE / "results").glob(f"{state.network.bridge}-*"):
        cached.unlink(missing_ok=True)
    if CONTAINER_LOG_LINKS.is_dir():
        pod_logs = str(state_dir / "pod-logs")
        for link in CONTAINER_LOG_LINKS.iterdir():
            if link.is_symlink() and os.readlink(link).startswith(pod_logs):
                link.unlink()
    for path in map(Path, state.created_paths):
        _remove_empty_dirs(path)


def _remove_empty_dirs(top: Path) -> None:
    """Remove `top` and the directories below it that are empty (another node may share them)."""
    if not top.is_dir():
        return
    for directory, _, _ in sorted(os.walk(top), key=lambda entry: len(entry[0]), reverse=True):
        with contextlib.suppress(OSError):
            os.rmdir(directory)
