"""The examples, as shipped, work once pointed at the emulator instead of eGain."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from egain_token_operator.decisions.hosts import HostAllowList
from testground.emulator import EgainEmulator
from tests.e2e.conftest import TENANT, EgainClient, successes
from tests.e2e.support import REPO, Cluster, Hidden, OperatorProcess

pytestmark = pytest.mark.e2e

CLIENT_APP_URL = "https://ai.egain.cloud/system/auth/TMPRODB88619984-U/oauth2/token"
ANONYMOUS_URL = "https://api.ai.egain.cloud/core/authmgr/v3/oauth2/v2.0/anonymous/token"
B2C_URL = (
    "https://egaintenant.b2clogin.com/egaintenant.onmicrosoft.com/"
    "B2C_1A_CLIENT_CREDENTIALS/oauth2/v2.0/token"
)


def load_example(
    name: str, namespace: str, emulator: EgainEmulator, client: EgainClient
) -> list[dict[str, object]]:
    text = (REPO / "examples" / name).read_text()
    assert CLIENT_APP_URL in text or ANONYMOUS_URL in text or B2C_URL in text
    text = text.replace(CLIENT_APP_URL, emulator.client_app_token_url(TENANT))
    text = text.replace(B2C_URL, emulator.client_app_token_url(TENANT))
    text = text.replace(ANONYMOUS_URL, emulator.anonymous_token_url())
    return as_applied(text, namespace, client)


def as_applied(text: str, namespace: str, client: EgainClient) -> list[dict[str, object]]:
    """The example's objects in `namespace`, with `client`'s credentials."""
    documents = [d for d in yaml.safe_load_all(text) if d]
    for document in documents:
        document["metadata"]["namespace"] = namespace
        if document["kind"] == "Secret":
            document["stringData"] = {
                "client_id": client.client_id,
                "client_secret": client.used_secrets[0],
            }
    return documents


def test_both_flow_examples_become_ready(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: Callable[..., EgainClient],
    operator: OperatorProcess,
) -> None:
    scopes = ("knowledge.portalmgr.manage", "core.aiservices.read", "core.aiservices.manage")
    client = make_client(scopes=scopes, write_secret=False)
    for example in ("client-app.yaml", "anonymous-customer.yaml"):
        cluster.apply(*load_example(example, namespace, emulator, client))
    cluster.wait_ready(namespace, "knowledge-portal", "True", "TokenIssued")
    cluster.wait_ready(namespace, "anonymous-customer", "True", "TokenIssued")
    table = cluster.kubectl("get", "egt", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "REASON", "SECRET", "EXPIRES", "AGE"]
    rows = sorted(line.split()[:4] for line in table[1:])
    assert rows == [
        ["anonymous-customer", "True", "TokenIssued", "anonymous-customer"],
        ["knowledge-portal", "True", "TokenIssued", "knowledge-portal-token"],
    ]


def test_outputs_example_writes_each_format(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: Callable[..., EgainClient],
    operator: OperatorProcess,
) -> None:
    client = make_client(scopes=("knowledge.portalmgr.manage",), write_secret=False)
    cluster.apply(*load_example("outputs.yaml", namespace, emulator, client))
    cluster.wait_ready(namespace, "knowledge-portal-outputs", "True", "TokenIssued")
    data = cluster.secret_data(namespace, "knowledge-portal-outputs")
    assert data is not None
    authorization = data["authorization"]
    # Compared as `Hidden`: a failure never prints the token.
    lines = data["egain.env"].reveal().splitlines()
    assert Hidden(f"EGAIN_AUTHORIZATION={authorization.reveal()}") in map(Hidden, lines)
    assert Hidden(json.loads(data["token.json"].reveal())["authorization"]) == authorization
    assert data["credential"] == authorization
    config = yaml.safe_load(data["portal.yaml"].reveal())["egain"]
    assert Hidden(config["authorization"]) == authorization
    assert config["price_format"] == "$0.00"


def test_workload_examples_are_valid(cluster: Cluster, namespace: str) -> None:
    for example in ("deployment-volume.yaml", "rollout-restart.yaml", "dotenv-consumer.yaml"):
        documents = [d for d in yaml.safe_load_all((REPO / "examples" / example).read_text()) if d]
        for document in documents:
            document["metadata"]["namespace"] = namespace
        # Validated by the API server but not created: their images are not here.
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": documents})
        cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=body)


def test_b2c_example_needs_its_host_allowed(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: Callable[..., EgainClient],
    operator: OperatorProcess,
) -> None:
    text = (REPO / "examples" / "b2c-token-url.yaml").read_text()
    (token,) = [d for d in yaml.safe_load_all(text) if d and d["kind"] == "EgainToken"]
    assert token["spec"]["tokenUrl"] == B2C_URL
    # The values the example names allow its host; the default allow-list does not.
    values = yaml.safe_load((REPO / "examples" / "b2c-values.yaml").read_text())
    assert HostAllowList.parse(",".join(values["allowedTokenHosts"])).allows(B2C_URL)
    assert not HostAllowList.parse("*.egain.cloud").allows(B2C_URL)

    # As shipped, under an operator that does not allow the host: refused, nothing sent.
    client = make_client(scopes=("knowledge.portalmgr.manage",), write_secret=False)
    cluster.apply(*as_applied(text, namespace, client))
    cluster.wait_ready(namespace, "knowledge-portal-b2c", "False", "TokenUrlNotAllowed")
    assert emulator.requests(client.client_id) == []

    # Pointed at an allowed endpoint (the emulator standing in for the B2C host): Ready.
    cluster.apply(*load_example("b2c-token-url.yaml", namespace, emulator, client))
    cluster.wait_ready(namespace, "knowledge-portal-b2c", "True", "TokenIssued")
    assert cluster.secret_data(namespace, "knowledge-portal-b2c-token") is not None


SHARED_CLIENT = REPO / "examples" / "shared-client"
# The example's names, made unique per test: ClusterEgainClients and
# Namespaces are cluster-wide, and the session's cluster is shared.
PLATFORM_NAMESPACE, TEAM_A, TEAM_B, CLIENT = (
    "egain-token-operator",
    "team-a",
    "team-b",
    "support-portal",
)


def shared_client_example(
    emulator: EgainEmulator, client: EgainClient, suffix: str
) -> dict[str, list[dict[str, Any]]]:
    """Each file of `examples/shared-client/`, pointed at the emulator with
    `client`'s credentials, every cluster-wide name ending in `suffix`."""
    names = {PLATFORM_NAMESPACE: f"p-{suffix}", TEAM_A: f"a-{suffix}", TEAM_B: f"b-{suffix}"}
    loaded = {}
    for path in sorted(SHARED_CLIENT.glob("*.yaml")):
        text = path.read_text()
        assert CLIENT_APP_URL in text or "clientRef" in text, path.name
        text = text.replace(CLIENT_APP_URL, emulator.client_app_token_url(TENANT))
        documents = [d for d in yaml.safe_load_all(text) if d]
        for document in documents:
            metadata = document["metadata"]
            if document["kind"] == "Namespace":
                metadata["name"] = names[metadata["name"]]
            elif document["kind"] == "ClusterEgainClient":
                metadata["name"] = f"{CLIENT}-{suffix}"
            else:
                metadata["namespace"] = names[metadata["namespace"]]
            if document["kind"] == "EgainToken":
                assert document["spec"]["clientRef"]["name"] == CLIENT
                document["spec"]["clientRef"]["name"] = f"{CLIENT}-{suffix}"
            if document["kind"] == "Secret":
                document["stringData"] = {
                    "client_id": client.client_id,
                    "client_secret": client.used_secrets[0],
                }
        loaded[path.name] = documents
    assert sorted(loaded) == ["platform.yaml", "team-a.yaml", "team-b.yaml"]
    return loaded


def _namespaces_first(cluster: Cluster, loaded: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Create the example's namespaces (the platform's, which the chart creates, too)."""
    platform = loaded["platform.yaml"]
    [secret] = [d for d in platform if d["kind"] == "Secret"]
    created = [secret["metadata"]["namespace"]]
    cluster.kubectl("create", "namespace", created[0])
    namespaces = [d for d in platform if d["kind"] == "Namespace"]
    cluster.apply(*namespaces)
    return created + [d["metadata"]["name"] for d in namespaces]


def test_shared_client_example_is_accepted(
    cluster: Cluster, emulator: EgainEmulator, make_client: Callable[..., EgainClient]
) -> None:
    client = make_client(write_secret=False)
    loaded = shared_client_example(emulator, client, uuid.uuid4().hex[:8])
    namespaces = _namespaces_first(cluster, loaded)
    try:
        every = [d for documents in loaded.values() for d in documents]
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": every})
        # Validated by the API server (the CRDs' schemas and rules) but not created.
        applied = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=body)
        assert "clusteregainclient.egain.cloud/support-portal-" in applied.stdout
        assert applied.stdout.count("egaintoken.egain.cloud/knowledge-portal") == 2
    finally:
        for name in namespaces:
            cluster.kubectl("delete", "namespace", name, "--wait=false")


def test_shared_client_example_one_team_allowed_one_not(
    cluster: Cluster,
    emulator: EgainEmulator,
    make_client: Callable[..., EgainClient],
    start_operator: Callable[..., OperatorProcess],
) -> None:
    client = make_client(scopes=("knowledge.portalmgr.read",), write_secret=False)
    suffix = uuid.uuid4().hex[:8]
    loaded = shared_client_example(emulator, client, suffix)
    namespaces = _namespaces_first(cluster, loaded)
    platform, team_a, team_b = namespaces
    try:
        # The platform namespace stands for the operator's own.
        start_operator("--cluster-resource-namespace", platform, all_namespaces=True)
        for name in ("platform.yaml", "team-a.yaml", "team-b.yaml"):
            cluster.apply(*loaded[name])
        cluster.wait_ready(team_a, "knowledge-portal", "True", "TokenIssued")
        cluster.wait_ready(team_b, "knowledge-portal", "False", "ClientNotAllowed")
        assert cluster.secret_data(team_a, "knowledge-portal-token") is not None
        assert cluster.secret_data(team_b, "knowledge-portal-token") is None
        assert successes(emulator, client) == 1  # nothing was sent for team-b

        rows = [
            line.split()[:4]
            for line in cluster.kubectl("get", "egt", "-A").stdout.splitlines()[1:]
            if line.split()[0] in (team_a, team_b)
        ]
        assert sorted(rows) == [
            [team_a, "knowledge-portal", "True", "TokenIssued"],
            [team_b, "knowledge-portal", "False", "ClientNotAllowed"],
        ]
        cegc = cluster.kubectl("get", "cegc", f"{CLIENT}-{suffix}").stdout.splitlines()
        assert cegc[0].split() == ["NAME", "READY", "REASON", "TOKENS", "AGE"]
        assert cegc[1].split()[1:4] == ["True", "CredentialsFound", "2"]
    finally:
        cluster.kubectl("delete", "clusteregainclient", f"{CLIENT}-{suffix}", "--wait=false")
        for name in namespaces:
            cluster.kubectl("delete", "namespace", name, "--wait=false")
