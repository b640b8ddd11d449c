"""What is granted, not only what is asked: a token response granting a scope
outside the client's `allowedScopes` is refused, and nothing is written."""

from __future__ import annotations

import time

import pytest

from testground.emulator import EgainEmulator, FaultKind
from tests.e2e.conftest import FORCEABLE, TENANT, MakeClient, successes
from tests.e2e.support import Cluster, credentials_secret, egain_client, egain_token, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SCOPE = "knowledge.portalmgr.manage"
BROADER = f"{SCOPE} core.admin"


def force_refresh(cluster: Cluster, namespace: str, value: str) -> None:
    cluster.kubectl(
        "annotate",
        "egt",
        "web",
        "-n",
        namespace,
        "--overwrite",
        f"egain.cloud/refresh-requested-at={value}",
    )


def last_failure_reason(cluster: Cluster, namespace: str) -> str | None:
    failure = cluster.token(namespace, "web").get("status", {}).get("lastFailure") or {}
    reason = failure.get("reason")
    return reason if isinstance(reason, str) else None


@pytest.mark.usefixtures("operator")
def test_a_token_granting_more_than_allowed_is_refused_and_nothing_written(
    cluster: Cluster, namespace: str, emulator: EgainEmulator, make_client: MakeClient
) -> None:
    client = make_client(write_secret=False, lifetime=FORCEABLE)
    emulator.set_fault(
        FaultKind.GRANTED_SCOPE, value=BROADER, client_id=client.client_id, count=None
    )
    spec = {
        "flow": "ClientApp",
        "tokenUrl": emulator.client_app_token_url(TENANT),
        "credentialsSecretRef": {"name": "portal-client"},
        "allowedScopes": [SCOPE],
    }
    cluster.apply(
        credentials_secret(namespace, "portal-client", client.client_id, client.used_secrets[0]),
        egain_client(namespace, "portal", spec),
        egain_token(
            namespace,
            "web",
            {"clientRef": {"kind": "EgainClient", "name": "portal"}, "scopes": [SCOPE]},
        ),
    )
    token = cluster.wait_ready(namespace, "web", "False", "ScopeNotAllowed")
    assert "grants scope core.admin" in token["status"]["conditions"][0]["message"]
    assert successes(emulator, client) == 1  # issued by eGain, refused by the operator
    assert cluster.secret_data(namespace, "web") is None
    cluster.wait_events(namespace, "ScopeNotAllowed", "Warning")
    # A permanent failure: not asked again on its own within seconds.
    time.sleep(5)
    assert len(emulator.requests(client.client_id)) == 1

    # eGain fixed: a forced refresh gets a token at once.
    emulator.clear_faults()
    force_refresh(cluster, namespace, "r1")
    cluster.wait_ready(namespace, "web", "True", "TokenIssued")
    issued = cluster.secret_data(namespace, "web")
    assert issued is not None and issued["scope"] == SCOPE

    # Granting more again: the valid token stays in the Secret, the refusal is recorded.
    emulator.set_fault(
        FaultKind.GRANTED_SCOPE, value=BROADER, client_id=client.client_id, count=None
    )
    force_refresh(cluster, namespace, "r2")
    wait_until(
        lambda: last_failure_reason(cluster, namespace) == "ScopeNotAllowed",
        "lastFailure ScopeNotAllowed",
    )
    assert successes(emulator, client) == 3
    assert cluster.secret_data(namespace, "web") == issued
    cluster.wait_ready(namespace, "web", "True", "TokenIssued")
