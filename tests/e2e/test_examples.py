"""The examples, as shipped, work once pointed at the emulator instead of eGain."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import yaml

from testground.emulator import EgainEmulator
from tests.e2e.conftest import TENANT, EgainClient
from tests.e2e.support import REPO, Cluster, OperatorProcess

pytestmark = pytest.mark.e2e

CLIENT_APP_URL = "https://ai.egain.cloud/system/auth/TMPRODB88619984-U/oauth2/token"
ANONYMOUS_URL = "https://api.ai.egain.cloud/core/authmgr/v3/oauth2/v2.0/anonymous/token"


def load_example(
    name: str, namespace: str, emulator: EgainEmulator, client: EgainClient
) -> list[dict[str, object]]:
    text = (REPO / "examples" / name).read_text()
    assert CLIENT_APP_URL in text or ANONYMOUS_URL in text
    text = text.replace(CLIENT_APP_URL, emulator.client_app_token_url(TENANT))
    text = text.replace(ANONYMOUS_URL, emulator.anonymous_token_url())
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


def test_workload_examples_are_valid(cluster: Cluster, namespace: str) -> None:
    for example in ("deployment-volume.yaml", "rollout-restart.yaml"):
        documents = [d for d in yaml.safe_load_all((REPO / "examples" / example).read_text()) if d]
        for document in documents:
            document["metadata"]["namespace"] = namespace
        # Validated by the API server but not created: their images are not here.
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": documents})
        cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=body)
