"""The two client-credentials flows: the exact Secret, status, printer columns and metrics."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from testground.emulator import EgainEmulator
from tests.e2e.conftest import TENANT, MakeReadyToken, parse_time
from tests.e2e.support import Cluster, Hidden, OperatorProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300), pytest.mark.usefixtures("operator")]


def test_client_app_flow_writes_the_exact_secret(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_ready_token: MakeReadyToken,
    operator: OperatorProcess,
) -> None:
    client, token = make_ready_token(
        "portal",
        reason="TokenIssued",
        client_options={"scopes": ("knowledge.portalmgr.manage", "core.aiservices.read")},
        scopes=["knowledge.portalmgr.manage", "core.aiservices.read"],
        secretName="portal-token",
        secretTemplate={"labels": {"team": "web"}, "annotations": {"owner": "support"}},
    )

    secret = cluster.get("secret", "portal-token", namespace)
    assert secret is not None
    assert secret["type"] == "Opaque"
    data = cluster.secret_data(namespace, "portal-token")
    assert data is not None
    assert set(data) == {"access_token", "token_type", "authorization", "expires_at", "scope"}
    assert emulator.is_issued_token(data["access_token"].reveal(), client_id=client.client_id)
    assert data["token_type"] == "Bearer"
    assert data["authorization"] == Hidden(f"Bearer {data['access_token'].reveal()}")
    assert data["scope"] == "knowledge.portalmgr.manage core.aiservices.read"
    status = token["status"]
    assert data["expires_at"] == status["expiresAt"]
    assert parse_time(data["expires_at"].reveal()) > datetime.now(UTC)

    metadata = secret["metadata"]
    assert metadata["labels"] == {
        "app.kubernetes.io/managed-by": "egain-token-operator",
        "egain.cloud/token": "portal",
        "team": "web",
    }
    assert metadata["annotations"]["owner"] == "support"
    assert metadata["annotations"]["egain.cloud/issued-at"] == status["issuedAt"]
    assert metadata["annotations"]["egain.cloud/expires-at"] == status["expiresAt"]
    (ref,) = metadata["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
        "EgainToken",
        "portal",
        token["metadata"]["uid"],
        True,
    )

    assert status["secretName"] == "portal-token"
    assert status["tokenType"] == "Bearer"
    assert status["scopes"] == ["knowledge.portalmgr.manage", "core.aiservices.read"]
    assert status["observedGeneration"] == token["metadata"]["generation"]
    assert status["consecutiveFailures"] == 0
    assert "lastFailure" not in status
    issued, expires = parse_time(status["issuedAt"]), parse_time(status["expiresAt"])
    refresh = parse_time(status["nextRefreshAt"])
    assert (expires - issued).total_seconds() == 3600
    # Default refreshBefore: a third of the lifetime, plus at most 10% jitter.
    assert 1200 <= (expires - refresh).total_seconds() <= 1320

    (request,) = emulator.requests(client.client_id)
    assert request.flow == "ClientApp"
    assert request.grant_type == "client_credentials"
    assert request.content_type == "application/x-www-form-urlencoded"
    assert request.scopes == ("knowledge.portalmgr.manage", "core.aiservices.read")

    table = cluster.kubectl("get", "egt", "-n", namespace).stdout
    header = table.splitlines()[0].split()
    assert header == ["NAME", "READY", "REASON", "SECRET", "EXPIRES", "AGE"]
    assert table.splitlines()[1].split()[:5] == [
        "portal",
        "True",
        "TokenIssued",
        "portal-token",
        status["expiresAt"],
    ]
    metrics = operator.metrics()
    for series in (
        'egain_token_expiration_timestamp_seconds{name="portal",namespace="%s"}',
        'egain_token_renewal_timestamp_seconds{name="portal",namespace="%s"}',
        'egain_token_ready_status{condition="True",name="portal",namespace="%s"} 1.0',
        'egain_token_ready_status{condition="False",name="portal",namespace="%s"} 0.0',
        'egain_token_refresh_total{name="portal",namespace="%s",'
        'reason="TokenIssued",result="success"} 1.0',
        'egain_token_consecutive_failures{name="portal",namespace="%s"} 0.0',
    ):
        assert series % namespace in metrics, series
    # Labelled by the allow-list entry the emulator's URL matched, not by its host.
    assert (
        'egain_token_request_duration_seconds_count{flow="ClientApp",'
        f'host="localhost:{emulator.port}",status_code="200"}}' in metrics
    )
    assert 'host="localhost"' not in metrics


def test_anonymous_customer_flow(
    cluster: Cluster, namespace: str, emulator: EgainEmulator, make_ready_token: MakeReadyToken
) -> None:
    client, _ = make_ready_token(
        "anonymous",
        reason="TokenIssued",
        client_options={"scopes": ("core.aiservices.read", "core.aiservices.manage")},
        flow="AnonymousCustomer",
        tokenUrl=emulator.anonymous_token_url(),
        tenantId=TENANT,
        scopes=[
            "core.aiservices.read",
            "https://api.ai.egain.cloud/auth/core.aiservices.manage",
        ],
    )
    data = cluster.secret_data(namespace, "anonymous")
    assert data is not None
    assert emulator.is_issued_token(data["access_token"].reveal(), client_id=client.client_id)
    (request,) = emulator.requests(client.client_id)
    assert request.flow == "AnonymousCustomer"
    assert (request.user_type, request.domain_hint) == ("customer", TENANT)
    assert request.scopes == (
        "https://api.ai.egain.cloud/auth/core.aiservices.read",
        "https://api.ai.egain.cloud/auth/core.aiservices.manage",
    )
