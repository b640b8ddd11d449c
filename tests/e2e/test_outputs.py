"""The Secret's extra keys on a real cluster: a Pod on the node reads the DotEnv and
JSON formats and sees each new token; editing the outputs rewrites the keys with
no token request at eGain; EgainTokens sharing one token each write their own."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest

from testground import incluster
from testground.emulator import EgainEmulator
from tests.e2e.conftest import MakeClient, MakeReadyToken, client_app_spec, successes
from tests.e2e.support import Cluster, Hidden, egain_token, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300), pytest.mark.usefixtures("operator")]

DOTENV_AND_JSON = [{"type": "DotEnv"}, {"type": "JSON"}]
# Prints what it reads from the mounted Secret every second, as fingerprints:
# the DotEnv file's access token, and the whole JSON document.
READER = """
while true; do
  token=$(printf %s "$(sed -n 's/^EGAIN_ACCESS_TOKEN=//p' /var/run/egain/egain.env)" \\
    | sha256sum | cut -c1-16)
  document=$(sha256sum /var/run/egain/token.json | cut -c1-16)
  echo "read sha256:$token sha256:$document"
  sleep 1
done
"""
# The node's kubelet syncs Pods every 10 s (testground.node): a changed Secret
# reaches a mounted file within this.
ALLOWANCE = 30


def fingerprint(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]


def rendered(cluster: Cluster, namespace: str, name: str) -> dict[str, Hidden]:
    data = cluster.secret_data(namespace, name)
    assert data is not None
    return data


def test_a_pod_reads_each_new_token_from_the_dotenv_and_json_keys(
    cluster: Cluster, namespace: str, emulator: EgainEmulator, make_ready_token: MakeReadyToken
) -> None:
    ready = make_ready_token("portal", outputFormats=DOTENV_AND_JSON)
    plane = cluster.control_plane
    cluster.apply(incluster.consumer_pod(plane, "reader", namespace, READER, "portal"))
    cluster.kubectl("wait", "--for=condition=Ready", "pod/reader", "-n", namespace, "--timeout=60s")

    def reads(data: dict[str, Hidden]) -> bool:
        wanted = (
            f"read {fingerprint(data['access_token'].reveal())} "
            f"{fingerprint(data['token.json'].reveal())}"
        )
        logs = cluster.kubectl("logs", "reader", "-n", namespace).stdout
        return wanted in logs.splitlines()

    first = rendered(cluster, namespace, "portal")
    wait_until(lambda: reads(first), "the Pod to read the first token", ALLOWANCE)

    requested = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    cluster.kubectl(
        "annotate",
        "egt",
        "portal",
        "-n",
        namespace,
        f"egain.cloud/refresh-requested-at={requested}",
    )
    wait_until(lambda: successes(emulator, ready.client) == 2, "the refresh", 30)

    def new_token() -> dict[str, Hidden] | None:
        data = rendered(cluster, namespace, "portal")
        return data if data["access_token"] != first["access_token"] else None

    second = wait_until(new_token, "the new token in the Secret", 15)
    assert json.loads(second["token.json"].reveal())["accessToken"] == second["access_token"]
    wait_until(lambda: reads(second), "the Pod to read the new token", ALLOWANCE)


def test_editing_the_outputs_rewrites_the_keys_with_no_token_request(
    cluster: Cluster, namespace: str, emulator: EgainEmulator, make_ready_token: MakeReadyToken
) -> None:
    ready = make_ready_token("portal", outputFormats=DOTENV_AND_JSON)
    before = rendered(cluster, namespace, "portal")
    assert {"egain.env", "token.json"} <= set(before)

    spec = client_app_spec(
        emulator,
        ready.client,
        outputFormats=[{"type": "EnvoyGatewayCredential"}],
        secretTemplate={"data": {"app.conf": "auth=${authorization}\nprice=$$1\n"}},
    )
    cluster.apply(egain_token(namespace, "portal", spec))

    def new_keys() -> dict[str, Hidden] | None:
        data = rendered(cluster, namespace, "portal")
        return data if "credential" in data else None

    after = wait_until(new_keys, "the new keys", 15)
    assert "egain.env" not in after and "token.json" not in after
    assert after["credential"] == before["authorization"]
    assert after["app.conf"] == f"auth={before['authorization'].reveal()}\nprice=$1\n"
    assert after["access_token"] == before["access_token"]
    assert successes(emulator, ready.client) == 1
    assert len(emulator.requests(ready.client.client_id)) == 1


def test_a_shared_token_rendered_in_two_formats_for_two_sharers(
    cluster: Cluster, namespace: str, emulator: EgainEmulator, make_client: MakeClient
) -> None:
    client = make_client()
    formats = {"dotenv": [{"type": "DotEnv", "prefix": "APP_"}], "json": [{"type": "JSON"}]}
    for name, outputs in formats.items():
        cluster.apply(
            egain_token(namespace, name, client_app_spec(emulator, client, outputFormats=outputs))
        )
    for name in formats:
        cluster.wait_ready(namespace, name, "True")
    dotenv, as_json = rendered(cluster, namespace, "dotenv"), rendered(cluster, namespace, "json")
    assert successes(emulator, client) == 1
    token = dotenv["access_token"]
    assert as_json["access_token"] == token
    assert set(dotenv) - set(as_json) == {"egain.env"}
    assert set(as_json) - set(dotenv) == {"token.json"}
    lines = dotenv["egain.env"].reveal().splitlines()
    assert Hidden(f"APP_ACCESS_TOKEN={token.reveal()}") in map(Hidden, lines)
    assert Hidden(json.loads(as_json["token.json"].reveal())["accessToken"]) == token
