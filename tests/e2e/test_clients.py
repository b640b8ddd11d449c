"""Shared clients: EgainTokens that name an EgainClient or a ClusterEgainClient.

The operator serves the test's namespace and is given a cluster resource
namespace of the test's own, where ClusterEgainClients' credentials live; both
are searched for leaks afterwards (`scanned_namespaces`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from testground.emulator import EgainEmulator
from tests.e2e.conftest import TENANT, EgainClient, MakeClient, StartOperator, successes
from tests.e2e.support import (
    Cluster,
    Hidden,
    OperatorProcess,
    cluster_egain_client,
    credentials_secret,
    egain_client,
    egain_token,
    wait_until,
)
from tests.e2e.test_cli import Ctl

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SCOPE = "knowledge.portalmgr.manage"


@pytest.fixture
def resource_namespace(
    cluster: Cluster, namespace: str, scanned_namespaces: list[str]
) -> Iterator[str]:
    """The cluster resource namespace given to the operator; not a served one."""
    name = f"{namespace}-cr"
    cluster.kubectl("create", "namespace", name)
    scanned_namespaces.append(name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
def cluster_clients(cluster: Cluster) -> Iterator[list[str]]:
    """Names of the ClusterEgainClients a test made; deleted after it."""
    made: list[str] = []
    yield made
    for name in made:
        cluster.kubectl("delete", "clusteregainclient", name, "--ignore-not-found", "--wait=false")


@pytest.fixture
def operator(start_operator: StartOperator, resource_namespace: str) -> OperatorProcess:
    """The operator serving every namespace (ClusterEgainClients are served by a
    cluster-wide install only), with its own cluster resource namespace."""
    return start_operator("--cluster-resource-namespace", resource_namespace, all_namespaces=True)


@pytest.fixture
def patient_operator(start_operator: StartOperator, resource_namespace: str) -> OperatorProcess:
    """`operator` with refusals backed off for 10 minutes: longer than any test, so
    only the change a test makes can end one."""
    return start_operator(
        "--cluster-resource-namespace",
        resource_namespace,
        "--permanent-failure-retry-delay",
        "600",
        all_namespaces=True,
    )


def client_spec(emulator: EgainEmulator, secret_name: str, **extra: Any) -> dict[str, Any]:
    return {
        "flow": "ClientApp",
        "tokenUrl": emulator.client_app_token_url(TENANT),
        "credentialsSecretRef": {"name": secret_name},
        **extra,
    }


def token_using(
    namespace: str, name: str, kind: str, client: str, scopes: tuple[str, ...] = (SCOPE,)
) -> dict[str, Any]:
    spec = {"clientRef": {"kind": kind, "name": client}, "scopes": list(scopes)}
    return egain_token(namespace, name, spec)


def get(cluster: Cluster, *args: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)
    return found


def client_ready(
    cluster: Cluster, args: tuple[str, ...], status: str, reason: str, tokens: int | None = None
) -> dict[str, Any]:
    """Wait until a client's status says Ready=`status` with `reason` (and `tokens`)."""

    def check() -> dict[str, Any] | None:
        found = get(cluster, *args)
        said = found.get("status") or {}
        conditions = said.get("conditions") or []
        ready: dict[str, Any] = next((c for c in conditions if c.get("type") == "Ready"), {})
        matches = (ready.get("status"), ready.get("reason")) == (status, reason)
        if tokens is not None:
            matches = matches and said.get("tokens") == tokens
        return found if matches else None

    return wait_until(check, f"{' '.join(args)} Ready={status} {reason} tokens={tokens}")


def cluster_client(
    cluster: Cluster,
    emulator: EgainEmulator,
    make_client: MakeClient,
    resource_namespace: str,
    made: list[str],
    name: str,
    **extra: Any,
) -> EgainClient:
    """An eGain client whose credentials are in the cluster resource namespace, and
    a ClusterEgainClient `name` for it."""
    client = make_client(write_secret=False)
    cluster.apply(
        credentials_secret(
            resource_namespace, "platform-client", client.client_id, client.used_secrets[0]
        ),
        cluster_egain_client(name, client_spec(emulator, "platform-client", **extra)),
    )
    made.append(name)
    return client


@pytest.mark.usefixtures("operator")
def test_a_token_through_an_egain_client_is_ready_and_counted(
    cluster: Cluster, namespace: str, emulator: EgainEmulator, make_client: MakeClient
) -> None:
    client = make_client(write_secret=False)
    cluster.apply(egain_client(namespace, "portal", client_spec(emulator, "portal-client")))
    client_args = ("egainclient", "portal", "-n", namespace)
    found = client_ready(cluster, client_args, "False", "CredentialsNotFound")
    assert "portal-client" in found["status"]["conditions"][0]["message"]
    cluster.wait_events(namespace, "CredentialsNotFound", "Warning")

    cluster.apply(
        credentials_secret(namespace, "portal-client", client.client_id, client.used_secrets[0]),
        token_using(namespace, "web", "EgainClient", "portal"),
        token_using(namespace, "api", "EgainClient", "portal"),
    )
    token = cluster.wait_ready(namespace, "web", "True", "TokenIssued")
    assert token["status"]["client"] == {"kind": "EgainClient", "name": "portal"}
    cluster.wait_ready(namespace, "api", "True", "TokenIssued")
    data = cluster.secret_data(namespace, "web")
    assert data is not None and data["scope"] == SCOPE
    found = client_ready(cluster, client_args, "True", "CredentialsFound", tokens=2)
    assert found["status"]["observedGeneration"] == found["metadata"]["generation"]

    cluster.delete("egaintoken", "api", namespace)
    client_ready(cluster, client_args, "True", "CredentialsFound", tokens=1)


@pytest.mark.usefixtures("operator")
def test_a_token_through_a_cluster_client_uses_the_cluster_resource_namespace(
    cluster: Cluster,
    namespace: str,
    resource_namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    cluster_clients: list[str],
) -> None:
    name = f"{namespace}-portal"
    client = cluster_client(
        cluster,
        emulator,
        make_client,
        resource_namespace,
        cluster_clients,
        name,
        allowedNamespaces={"names": [namespace]},
        allowedScopes=[SCOPE],
    )
    # Three EgainTokens asking the same: one request between them.
    sharers = ("web", "api", "jobs")
    cluster.apply(*(token_using(namespace, t, "ClusterEgainClient", name) for t in sharers))
    for sharer in sharers:
        token = cluster.wait_ready(namespace, sharer, "True", "TokenIssued")
        assert token["status"]["client"] == {"kind": "ClusterEgainClient", "name": name}
    assert successes(emulator, client) == 1
    client_ready(cluster, ("clusteregainclient", name), "True", "CredentialsFound", tokens=3)

    # Rotated credentials: every sharer gets a token of the new ones within
    # seconds, and still through one request.
    before = {t: cluster.secret_data(namespace, t) for t in sharers}
    assert all(data is not None for data in before.values())
    new_secret = emulator.rotate_secret(client.client_id)
    client.used_secrets.append(new_secret)
    rotated_at = time.time()
    cluster.apply(
        credentials_secret(resource_namespace, "platform-client", client.client_id, new_secret)
    )

    def new_tokens() -> set[Hidden] | None:
        held = set()
        for sharer, old in before.items():
            data = cluster.secret_data(namespace, sharer)
            if data is None or old is None or data["access_token"] == old["access_token"]:
                return None
            held.add(data["access_token"])
        return held

    held = wait_until(new_tokens, "tokens from the rotated credentials", timeout=15)
    assert len(held) == 1, "the sharers hold different tokens"
    info = emulator.token_info(held.pop().reveal())
    assert info is not None and info.issued_at.timestamp() >= rotated_at - 1
    assert successes(emulator, client) == 2


@pytest.mark.usefixtures("patient_operator")
def test_refusals_send_nothing_and_a_label_lets_the_namespace_in(
    cluster: Cluster,
    namespace: str,
    resource_namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    cluster_clients: list[str],
) -> None:
    name = f"{namespace}-portal"
    label = f"egain.cloud/{name}"
    client = cluster_client(
        cluster,
        emulator,
        make_client,
        resource_namespace,
        cluster_clients,
        name,
        allowedNamespaces={"selector": {"matchLabels": {label: "allowed"}}},
        allowedScopes=[SCOPE],
    )
    cluster.apply(
        token_using(namespace, "outside", "ClusterEgainClient", name),
        token_using(namespace, "greedy", "ClusterEgainClient", name, (SCOPE, "core.admin")),
    )
    token = cluster.wait_ready(namespace, "outside", "False", "ClientNotAllowed")
    assert namespace in token["status"]["conditions"][0]["message"]
    cluster.wait_events(namespace, "ClientNotAllowed", "Warning")

    cluster.kubectl("label", "namespace", namespace, f"{label}=allowed")
    # At the change: the refusal's backoff would look again only after 10 minutes.
    cluster.wait_ready(namespace, "outside", "True", "TokenIssued", timeout=15)
    token = cluster.wait_ready(namespace, "greedy", "False", "ScopeNotAllowed")
    assert "core.admin" in token["status"]["conditions"][0]["message"]
    cluster.wait_events(namespace, "ScopeNotAllowed", "Warning")
    assert successes(emulator, client) == 1
    assert len(emulator.requests(client.client_id)) == 1, "a refused token reached eGain"


@pytest.mark.usefixtures("operator")
def test_a_namespace_never_allowed_sends_no_request_at_all(
    cluster: Cluster,
    namespace: str,
    resource_namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    cluster_clients: list[str],
) -> None:
    name = f"{namespace}-portal"
    client = cluster_client(
        cluster,
        emulator,
        make_client,
        resource_namespace,
        cluster_clients,
        name,
        allowedNamespaces={"names": ["somewhere-else"]},
    )
    cluster.apply(token_using(namespace, "outside", "ClusterEgainClient", name))
    cluster.wait_ready(namespace, "outside", "False", "ClientNotAllowed")
    cluster.wait_events(namespace, "ClientNotAllowed", "Warning")
    assert emulator.requests(client.client_id) == []


@pytest.mark.usefixtures("patient_operator")
def test_a_missing_client_then_created(
    cluster: Cluster, namespace: str, emulator: EgainEmulator, make_client: MakeClient
) -> None:
    client = make_client(secret_name="portal-client")
    cluster.apply(token_using(namespace, "web", "EgainClient", "portal"))
    token = cluster.wait_ready(namespace, "web", "False", "ClientNotFound")
    assert "EgainClient portal" in token["status"]["conditions"][0]["message"]
    cluster.wait_events(namespace, "ClientNotFound", "Warning")
    assert emulator.requests(client.client_id) == []
    cluster.apply(egain_client(namespace, "portal", client_spec(emulator, "portal-client")))
    # At the change: the refusal's backoff would look again only after 10 minutes.
    cluster.wait_ready(namespace, "web", "True", "TokenIssued", timeout=15)


@pytest.mark.usefixtures("operator")
def test_a_namespace_no_longer_allowed_keeps_its_secret(
    cluster: Cluster,
    namespace: str,
    resource_namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    cluster_clients: list[str],
) -> None:
    name = f"{namespace}-portal"
    client = cluster_client(
        cluster,
        emulator,
        make_client,
        resource_namespace,
        cluster_clients,
        name,
        allowedNamespaces={"names": [namespace]},
    )
    cluster.apply(token_using(namespace, "web", "ClusterEgainClient", name))
    cluster.wait_ready(namespace, "web", "True", "TokenIssued")
    issued = cluster.secret_data(namespace, "web")
    assert issued is not None

    cluster.apply(
        cluster_egain_client(
            name,
            client_spec(
                emulator, "platform-client", allowedNamespaces={"names": ["somewhere-else"]}
            ),
        )
    )
    cluster.wait_ready(namespace, "web", "False", "ClientNotAllowed", timeout=15)
    assert cluster.secret_data(namespace, "web") == issued, "the Secret was changed or deleted"
    assert successes(emulator, client) == 1


def test_check_reports_the_clients_verdict_and_sends_nothing(
    cluster: Cluster,
    namespace: str,
    resource_namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    cluster_clients: list[str],
) -> None:
    name = f"{namespace}-portal"
    client = cluster_client(
        cluster,
        emulator,
        make_client,
        resource_namespace,
        cluster_clients,
        name,
        allowedNamespaces={"names": [namespace]},
        allowedScopes=[SCOPE],
    )
    cluster.apply(
        token_using(namespace, "fine", "ClusterEgainClient", name),
        token_using(namespace, "greedy", "ClusterEgainClient", name, (SCOPE, "core.admin")),
    )
    ctl = Ctl(cluster, emulator)
    settings = [
        f"--allowed-token-hosts=localhost:{emulator.port}",
        f"--ca-bundle={emulator.ca_file}",
        f"--cluster-resource-namespace={resource_namespace}",
    ]
    refused = ctl("check", "greedy", "-n", namespace, *settings)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "scope core.admin is not allowed" in refused.stdout
    assert "(ScopeNotAllowed)" in refused.stdout
    passed = ctl("check", "fine", "-n", namespace, *settings)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert f"credentials found: Secret {resource_namespace}/platform-client" in passed.stdout
    assert emulator.requests(client.client_id) == []
