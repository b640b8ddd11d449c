"""The managed Secret: restored when deleted or edited, never taken over, deleted with its owner."""

from __future__ import annotations

import json
import time

import pytest

from testground.emulator import EgainEmulator
from tests.e2e.conftest import MakeClient, MakeReadyToken, client_app_spec, successes
from tests.e2e.support import Cluster, egain_token, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300), pytest.mark.usefixtures("operator")]


def test_deleted_or_edited_secret_is_restored(
    cluster: Cluster, namespace: str, emulator: EgainEmulator, make_ready_token: MakeReadyToken
) -> None:
    ready = make_ready_token("restored")
    original = cluster.secret_data(namespace, "restored")
    assert original is not None

    cluster.kubectl("delete", "secret", "restored", "-n", namespace)
    wait_until(
        lambda: cluster.secret_data(namespace, "restored") == original,
        "the deleted Secret back",
        15,
    )

    patch = json.dumps(
        {"data": {"access_token": "aGFja2Vk"}, "metadata": {"labels": {"egain.cloud/token": "x"}}}
    )
    cluster.kubectl("patch", "secret", "restored", "-n", namespace, "--type=merge", "-p", patch)
    wait_until(
        lambda: cluster.secret_data(namespace, "restored") == original,
        "the edited Secret restored",
        15,
    )
    secret = cluster.get("secret", "restored", namespace)
    assert secret is not None
    assert secret["metadata"]["labels"]["egain.cloud/token"] == "restored"
    assert successes(emulator, ready.client) == 1, "restoring should reuse the still-valid token"


def test_foreign_secret_is_never_overwritten(
    cluster: Cluster, namespace: str, emulator: EgainEmulator, make_client: MakeClient
) -> None:
    client = make_client()
    foreign = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "taken", "namespace": namespace},
        "stringData": {"mine": "keep me"},
    }
    cluster.apply(foreign)
    before = cluster.get("secret", "taken", namespace)
    cluster.apply(
        egain_token(namespace, "conflicted", client_app_spec(emulator, client, secretName="taken"))
    )
    cluster.wait_ready(namespace, "conflicted", "False", "SecretConflict")
    time.sleep(2)
    after = cluster.get("secret", "taken", namespace)
    assert after == before
    assert emulator.requests(client.client_id) == [], (
        "no token should be requested for a Secret it cannot write"
    )

    cluster.kubectl("delete", "secret", "taken", "-n", namespace)
    cluster.wait_ready(namespace, "conflicted", "True", "TokenIssued", timeout=15)


def test_deleting_the_egaintoken_deletes_its_secret(
    cluster: Cluster, namespace: str, make_ready_token: MakeReadyToken
) -> None:
    make_ready_token("doomed")
    cluster.kubectl("delete", "egt", "doomed", "-n", namespace)
    wait_until(
        lambda: cluster.get("secret", "doomed", namespace) is None, "garbage collection", timeout=60
    )
