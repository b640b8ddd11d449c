"""The local cluster's certificates and kubeconfigs: a CA, every serving and client
certificate the components present, the ServiceAccount signing key, and one
kubeconfig per client."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from testground import node, pki

_API_SERVER_NAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")
# The controller manager and the scheduler act as system:masters: without
# per-controller ServiceAccounts their bootstrap roles lack what they need,
# and a throwaway local cluster can be lax here. The kubelet is a real node
# (system:nodes, checked by the Node authorizer and NodeRestriction).
_COMPONENT_USERS = (
    ("kube-controller-manager", "system:kube-controller-manager", "system:masters"),
    ("kube-scheduler", "system:kube-scheduler", "system:masters"),
    ("kubelet", f"system:node:{node.NODE_NAME}", "system:nodes"),
)


@dataclass(frozen=True)
class ClusterPki:
    """Where a new cluster's certificates and kubeconfigs are."""

    directory: Path
    ca: pki.KeyPair
    apiserver_serving: pki.KeyPair
    apiserver_kubelet_client: pki.KeyPair  # the API server, calling the kubelet
    kubelet_serving: pki.KeyPair
    service_accounts: pki.KeyPair  # signs ServiceAccount tokens
    kubeconfigs: dict[str, Path]  # each component's, by component name


def ca_file(state_dir: Path) -> Path:
    """The cluster's CA certificate."""
    return state_dir / "pki" / "cluster-ca.crt"


def admin(state_dir: Path) -> pki.KeyPair:
    """The cluster admin's client certificate (system:masters)."""
    return pki.KeyPair(state_dir / "pki" / "admin.crt", state_dir / "pki" / "admin.key")


def create(state_dir: Path, gateway: str, server: str, admin_kubeconfig: Path) -> ClusterPki:
    """New certificates for a cluster whose API server is `server` on `gateway`
    (any of an earlier cluster are removed: it may have had another address),
    and a kubeconfig for the admin and each component."""
    certs = state_dir / "pki"
    shutil.rmtree(certs, ignore_errors=True)
    ca = pki.create_ca(certs, "cluster-ca")

    def client(name: str, common_name: str, *organizations: str) -> pki.KeyPair:
        return pki.issue(
            ca, certs, name, common_name=common_name, organizations=organizations, client=True
        )

    serving = pki.issue(
        ca,
        certs,
        "apiserver",
        common_name="kube-apiserver",
        dns_names=_API_SERVER_NAMES,
        ip_addresses=("127.0.0.1", gateway),
        server=True,
    )
    _write_kubeconfig(admin_kubeconfig, server, ca.cert, client("admin", "admin", "system:masters"))
    kubeconfigs = {}
    for component, common_name, organization in _COMPONENT_USERS:
        path = state_dir / f"{component}.kubeconfig"
        _write_kubeconfig(
            path, server, ca.cert, client(component, common_name, organization), component
        )
        kubeconfigs[component] = path
    return ClusterPki(
        directory=certs,
        ca=ca,
        apiserver_serving=serving,
        apiserver_kubelet_client=client(
            "apiserver-kubelet-client", "kube-apiserver", "system:masters"
        ),
        kubelet_serving=pki.issue(
            ca,
            certs,
            "kubelet-serving",
            common_name=node.NODE_NAME,
            dns_names=(node.NODE_NAME,),
            ip_addresses=(gateway,),
            server=True,
        ),
        service_accounts=pki.create_signing_key(certs, "service-accounts"),
        kubeconfigs=kubeconfigs,
    )


def _write_kubeconfig(
    path: Path, server: str, ca: Path, client: pki.KeyPair, user: str = "admin"
) -> None:
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
