"""How each component of the local cluster is run: its command line, log file and environment.

etcd and the controllers stay on loopback; the API server listens on the
node bridge's gateway address. Nothing here starts anything: `controlplane`
starts these in order and supervises them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from testground import node
from testground.clusterpki import ClusterPki
from testground.registry import Registry
from testground.supervision import free_port

ISSUER = "https://kubernetes.default.svc"
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
_NO_REGISTRY = "http://127.0.0.1:9"  # the discard port: nothing listens

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

_AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
"""


@dataclass(frozen=True)
class Component:
    """One process of the cluster, as it is to be started."""

    name: str
    command: list[str]
    log: Path
    env: dict[str, str] | None = None  # None: this process's environment


def etcd(bin_dir: Path, state_dir: Path) -> tuple[Component, str]:
    """etcd on two free loopback ports, and the URL its clients use."""
    url, peer_url = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    command = [
        str(bin_dir / "etcd"),
        "--name=local",
        f"--data-dir={state_dir / 'etcd-data'}",
        f"--listen-client-urls={url}",
        f"--advertise-client-urls={url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=local={peer_url}",
        "--listen-metrics-urls=",
        "--unsafe-no-fsync",  # throwaway data: speed over durability
        "--log-level=warn",
    ]
    return Component("etcd", command, state_dir / "etcd.log"), url


def apiserver(
    bin_dir: Path,
    state_dir: Path,
    network: node.Network,
    port: int,
    etcd_url: str,
    certs: ClusterPki,
    audit_log: Path,
) -> Component:
    """The API server on `network`'s gateway, authenticating client certificates and
    ServiceAccount tokens, authorizing by Node and RBAC, auditing every request to `audit_log`."""
    audit_policy = state_dir / "audit-policy.yaml"
    audit_policy.write_text(_AUDIT_POLICY)
    command = [
        str(bin_dir / "kube-apiserver"),
        f"--etcd-servers={etcd_url}",
        f"--bind-address={network.gateway}",
        f"--secure-port={port}",
        f"--advertise-address={network.gateway}",
        "--endpoint-reconciler-type=none",
        f"--cert-dir={certs.directory}",
        f"--tls-cert-file={certs.apiserver_serving.cert}",
        f"--tls-private-key-file={certs.apiserver_serving.key}",
        f"--client-ca-file={certs.ca.cert}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        f"--kubelet-client-certificate={certs.apiserver_kubelet_client.cert}",
        f"--kubelet-client-key={certs.apiserver_kubelet_client.key}",
        f"--kubelet-certificate-authority={certs.ca.cert}",
        "--kubelet-preferred-address-types=InternalIP",
        f"--service-account-issuer={ISSUER}",
        f"--api-audiences={ISSUER}",
        f"--service-account-key-file={certs.service_accounts.cert}",
        f"--service-account-signing-key-file={certs.service_accounts.key}",
        f"--service-cluster-ip-range={network.service_range}",
        f"--audit-policy-file={audit_policy}",
        f"--audit-log-path={audit_log}",
        "--audit-log-mode=blocking",  # each request is in the log when it returns
        # One file for the test ground's life: its readers follow it by offset,
        # and a large benchmark writes more than the default 100 MB.
        "--audit-log-maxsize=0",
    ]
    return Component("kube-apiserver", command, state_dir / "kube-apiserver.log")


def controller_manager(bin_dir: Path, state_dir: Path, certs: ClusterPki) -> Component:
    """The controllers that make workloads, garbage collection and ServiceAccounts real."""
    kubeconfig = certs.kubeconfigs["kube-controller-manager"]
    command = [
        str(bin_dir / "kube-controller-manager"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--controllers={','.join(_CONTROLLERS)}",
        f"--service-account-private-key-file={certs.service_accounts.key}",
        f"--root-ca-file={certs.ca.cert}",
        "--use-service-account-credentials=false",
        "--leader-elect=false",
        "--secure-port=0",
    ]
    return Component("kube-controller-manager", command, state_dir / "kube-controller-manager.log")


def scheduler(bin_dir: Path, state_dir: Path, certs: ClusterPki) -> Component:
    """The scheduler, which binds Pods to the one node."""
    kubeconfig = certs.kubeconfigs["kube-scheduler"]
    command = [
        str(bin_dir / "kube-scheduler"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--leader-elect=false",
        "--secure-port=0",
    ]
    return Component("kube-scheduler", command, state_dir / "kube-scheduler.log")


def registry(bin_dir: Path, local_registry: Registry) -> Component:
    """The cluster's OCI registry, serving `local_registry`'s configuration."""
    return Component(
        "registry",
        [str(bin_dir / "registry"), "serve", str(local_registry.config)],
        local_registry.log,
        # It would otherwise export traces to an OTLP collector on loopback.
        env={**os.environ, "OTEL_TRACES_EXPORTER": "none"},
    )


def containerd(state_dir: Path, config: Path, network: node.Network) -> Component:
    """The node's containerd, which may reach no registry but the local one."""
    return Component(
        "containerd",
        ["containerd", f"--config={config}", "--log-level=warn"],
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


def kubelet(
    bin_dir: Path, state_dir: Path, config: Path, certs: ClusterPki, node_state: node.NodeState
) -> Component:
    """The node's kubelet, with its configuration `config`, as the node's user."""
    command = [
        str(bin_dir / "kubelet"),
        f"--config={config}",
        f"--kubeconfig={certs.kubeconfigs['kubelet']}",
        f"--root-dir={node_state.kubelet_root}",
        f"--hostname-override={node.NODE_NAME}",
        f"--node-ip={node_state.network.gateway}",
    ]
    return Component("kubelet", command, state_dir / "kubelet.log")
