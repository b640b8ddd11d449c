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


# One case per rule of docs/api.md ("What the API server rejects"), with the
# field its message names. `None` removes a field.
REJECTED: list[tuple[dict[str, Any], str]] = [
    ({"flow": "Password"}, "spec.flow"),
    ({"grantType": "password"}, "spec.grantType"),
    ({"tokenUrl": None}, "spec.tokenUrl"),
    ({"flow": "AnonymousCustomer", "tokenUrl": None}, "spec.tenantId"),
    ({"tokenUrl": "http://ai.egain.cloud/x"}, "spec.tokenUrl"),
    ({"tokenUrl": "https://ai egain cloud/x"}, "spec.tokenUrl"),
    ({"tokenUrl": "https://ai.egain.cloud/" + "x" * 2030}, "spec.tokenUrl"),
    ({"scopes": None}, "spec.scopes"),
    ({"scopes": []}, "spec.scopes"),
    ({"scopes": [f"s{i}" for i in range(65)]}, "spec.scopes"),
    ({"scopes": [""]}, "spec.scopes[0]"),
    ({"scopes": ["s" * 513]}, "spec.scopes[0]"),
    ({"scopes": ["ok", "two words"]}, "spec.scopes[1]"),
    ({"scopes": ["tab\there"]}, "spec.scopes[0]"),
    ({"scopes": ["vertical\x0btab"]}, "spec.scopes[0]"),
    ({"scopes": ["no\u00a0break"]}, "spec.scopes[0]"),
    ({"scopes": ["ideographic\u3000space"]}, "spec.scopes[0]"),
    ({"scopePrefix": "https://" + "p" * 505}, "spec.scopePrefix"),
    ({"tenantId": "bad tenant!"}, "spec.tenantId"),
    ({"tenantId": ""}, "spec.tenantId"),
    ({"tenantId": "x" * 65}, "spec.tenantId"),
    ({"secretName": "Not_A_Name"}, "spec.secretName"),
    ({"secretName": "a" * 254}, "spec.secretName"),
    ({"credentialsSecretRef": None}, "spec.credentialsSecretRef"),
    ({"credentialsSecretRef": {"clientIdKey": "id"}}, "spec.credentialsSecretRef.name"),
    ({"credentialsSecretRef": {"name": "Bad_Name"}}, "spec.credentialsSecretRef.name"),
    (
        {"credentialsSecretRef": {"name": "c", "clientIdKey": "client id"}},
        "spec.credentialsSecretRef.clientIdKey",
    ),
    (
        {"credentialsSecretRef": {"name": "c", "clientSecretKey": "secret/key"}},
        "spec.credentialsSecretRef.clientSecretKey",
    ),
    ({"refreshBefore": "ten minutes"}, "spec.refreshBefore"),
    ({"refreshBefore": "1.5h"}, "spec.refreshBefore"),
    ({"refreshBefore": ""}, "spec.refreshBefore"),
    (
        {"rolloutRestartTargets": [{"kind": "CronJob", "name": "x"}]},
        "spec.rolloutRestartTargets[0].kind",
    ),
    (
        {"rolloutRestartTargets": [{"kind": "Deployment", "name": "Bad_Name"}]},
        "spec.rolloutRestartTargets[0].name",
    ),
    (
        {"rolloutRestartTargets": [{"kind": "Deployment", "name": f"d{i}"} for i in range(33)]},
        "spec.rolloutRestartTargets",
    ),
    ({"secretTemplate": {"labels": {"team": "x" * 64}}}, "spec.secretTemplate.labels.team"),
    ({"secretTemplate": {"labels": {"team": "two words"}}}, "spec.secretTemplate.labels.team"),
    ({"secretTemplate": {"labels": {"bad key": "x"}}}, "spec.secretTemplate.labels"),
    ({"secretTemplate": {"labels": {"x" * 64: "x"}}}, "spec.secretTemplate.labels"),
    (
        {"secretTemplate": {"labels": {f"l{i}": "x" for i in range(65)}}},
        "spec.secretTemplate.labels",
    ),
    ({"secretTemplate": {"annotations": {"a/b/c": "x"}}}, "spec.secretTemplate.annotations"),
    (
        {"secretTemplate": {"annotations": {"note": "x" * 4097}}},
        "spec.secretTemplate.annotations.note",
    ),
]


@pytest.mark.parametrize(("change", "field"), REJECTED)
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


def test_admission_rejects_a_name_too_long_for_a_label_value(
    cluster: Cluster, namespace: str
) -> None:
    manifest = egain_token(namespace, "n" * 64, VALID)
    result = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=json.dumps(manifest), check=False
    )
    assert result.returncode != 0
    assert "metadata.name must be at most 63 characters" in result.stderr, result.stderr


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
        (
            "valid",
            {
                **VALID,
                "scopes": ["s" * 512],
                "secretTemplate": {
                    "labels": {
                        "app.kubernetes.io/part-of": "portal",
                        "team": "",
                        "x" * 63: "y" * 63,
                    },
                    "annotations": {"example.com/note": "any text at all\n", "plain": ""},
                },
            },
        ),
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
