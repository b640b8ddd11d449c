"""What the API server refuses, accepts and defaults, by the CRD's schema alone."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.support import Cluster, egain_token

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


VALID = {
    "tokenUrl": "https://ai.egain.cloud/system/auth/T-U/oauth2/token",
    "scopes": ["s"],
    "credentialsSecretRef": {"name": "c"},
}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"flow": "Password"}, "spec.flow"),
        ({"grantType": "password"}, "spec.grantType"),
        ({"tokenUrl": None}, "spec.tokenUrl"),
        ({"flow": "AnonymousCustomer", "tokenUrl": None}, "spec.tenantId"),
        ({"tokenUrl": "http://ai.egain.cloud/x"}, "spec.tokenUrl"),
        ({"scopes": []}, "spec.scopes"),
        ({"scopes": [f"s{i}" for i in range(65)]}, "spec.scopes"),
        ({"scopes": ["two words"]}, "spec.scopes[0]"),
        ({"tenantId": "bad tenant!"}, "spec.tenantId"),
        ({"tenantId": "x" * 65}, "spec.tenantId"),
        ({"secretName": "Not_A_Name"}, "spec.secretName"),
        ({"credentialsSecretRef": {"name": "Bad_Name"}}, "spec.credentialsSecretRef.name"),
        ({"refreshBefore": "ten minutes"}, "spec.refreshBefore"),
        ({"refreshBefore": "1.5h"}, "spec.refreshBefore"),
        (
            {"rolloutRestartTargets": [{"kind": "CronJob", "name": "x"}]},
            "spec.rolloutRestartTargets[0].kind",
        ),
    ],
)
def test_admission_rejects_invalid_specs(
    cluster: Cluster, namespace: str, change: dict[str, Any], field: str
) -> None:
    spec = {k: v for k, v in {**VALID, **change}.items() if v is not None}
    manifest = egain_token(namespace, "invalid", spec)
    result = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=json.dumps(manifest), check=False
    )
    assert result.returncode != 0
    assert field in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("name", "change"),
    [("portal", {"secretName": "c"}), ("c", {})],
    ids=["secretName", "metadata.name"],
)
def test_admission_rejects_a_token_secret_that_is_the_credentials_secret(
    cluster: Cluster, namespace: str, name: str, change: dict[str, Any]
) -> None:
    manifest = egain_token(namespace, name, {**VALID, **change})
    result = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=json.dumps(manifest), check=False
    )
    assert result.returncode != 0
    assert "must not be the credentials Secret spec.credentialsSecretRef.name" in result.stderr
    assert "would overwrite the credentials" in result.stderr


@pytest.mark.parametrize(
    ("name", "spec"),
    [
        ("valid", VALID),
        ("valid", {**VALID, "refreshBefore": "1h30m", "secretName": "a.b-c"}),
        # Named like its credentials Secret, but writing its token elsewhere.
        ("c", {**VALID, "secretName": "c-token"}),
    ],
)
def test_admission_accepts_valid_specs(
    cluster: Cluster, namespace: str, name: str, spec: dict[str, Any]
) -> None:
    manifest = egain_token(namespace, name, spec)
    cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(manifest))


def test_admission_defaults(cluster: Cluster, namespace: str) -> None:
    cluster.apply(egain_token(namespace, "defaults", VALID))
    spec = cluster.token(namespace, "defaults")["spec"]
    assert spec["flow"] == "ClientApp"
    assert spec["grantType"] == "client_credentials"
    assert spec["credentialsSecretRef"] == {
        "name": "c",
        "clientIdKey": "client_id",
        "clientSecretKey": "client_secret",
    }
