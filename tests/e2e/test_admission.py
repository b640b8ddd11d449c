"""What the API server refuses, accepts and defaults, by the CRDs' schemas alone."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.admission_support import (
    ALL_NAMESPACES,
    VALID,
    VALID_CLIENT,
    assert_accepted,
    assert_rejected,
    merged,
)
from tests.e2e.support import Cluster, cluster_egain_client, egain_client, egain_token

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


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
        {"secretTemplate": {"annotations": {f"a{i}": "x" for i in range(33)}}},
        "spec.secretTemplate.annotations",
    ),
    (
        {"secretTemplate": {"annotations": {"note": "x" * 4097}}},
        "spec.secretTemplate.annotations.note",
    ),
]


# The client fields: inline in an EgainToken, or in an EgainClient or a
# ClusterEgainClient, which validate them by the same rules.
CLIENT_FIELDS = ("flow", "grantType", "tokenUrl", "tenantId", "scopePrefix", "credentialsSecretRef")
CLIENT_REJECTED = [
    (change, field) for change, field in REJECTED if change.keys() <= set(CLIENT_FIELDS)
]

# A token that uses a shared client: the inline client fields are left out.
BY_REFERENCE = {"clientRef": {"name": "shared"}, "scopes": ["s"]}

CLIENT_REF_REJECTED: list[tuple[dict[str, Any], str]] = [
    ({"clientRef": {}}, "spec.clientRef.name"),
    ({"clientRef": {"name": "Bad_Name"}}, "spec.clientRef.name"),
    ({"clientRef": {"kind": "Issuer", "name": "shared"}}, "spec.clientRef.kind"),
    ({"tokenSharing": "Never"}, "spec.tokenSharing"),
]

ALLOWED_SCOPES_REJECTED: list[tuple[dict[str, Any], str]] = [
    ({"allowedScopes": []}, "spec.allowedScopes"),
    ({"allowedScopes": ["ok", "two words"]}, "spec.allowedScopes[1]"),
    ({"allowedScopes": [""]}, "spec.allowedScopes[0]"),
    ({"allowedScopes": ["s", "s"]}, "spec.allowedScopes[1]"),
    ({"allowedScopes": ["s" * 513]}, "spec.allowedScopes[0]"),
    ({"allowedScopes": [f"s{i}" for i in range(257)]}, "spec.allowedScopes"),
]

ALLOWED_NAMESPACES_REJECTED: list[tuple[dict[str, Any], str]] = [
    ({"allowedNamespaces": None}, "spec.allowedNamespaces"),
    ({"allowedNamespaces": {}}, "spec.allowedNamespaces"),
    ({"allowedNamespaces": {"names": []}}, "spec.allowedNamespaces.names"),
    ({"allowedNamespaces": {"names": ["Bad_Namespace"]}}, "spec.allowedNamespaces.names[0]"),
    ({"allowedNamespaces": {"names": ["a" * 64]}}, "spec.allowedNamespaces.names[0]"),
    ({"allowedNamespaces": {"names": ["a", "a"]}}, "spec.allowedNamespaces.names[1]"),
    (
        {"allowedNamespaces": {"names": [f"n{i}" for i in range(257)]}},
        "spec.allowedNamespaces.names",
    ),
    (
        {"allowedNamespaces": {"selector": {"matchLabels": {"bad key": "x"}}}},
        "spec.allowedNamespaces.selector.matchLabels",
    ),
    (
        {"allowedNamespaces": {"selector": {"matchLabels": {"team": "two words"}}}},
        "spec.allowedNamespaces.selector.matchLabels.team",
    ),
    (
        {
            "allowedNamespaces": {
                "selector": {"matchExpressions": [{"key": "team", "operator": "Is"}]}
            }
        },
        "spec.allowedNamespaces.selector.matchExpressions[0].operator",
    ),
    (
        {
            "allowedNamespaces": {
                "selector": {"matchExpressions": [{"key": "team", "operator": "In"}]}
            }
        },
        "spec.allowedNamespaces.selector.matchExpressions[0].values",
    ),
    (
        {
            "allowedNamespaces": {
                "selector": {
                    "matchExpressions": [{"key": "team", "operator": "Exists", "values": ["a"]}]
                }
            }
        },
        "spec.allowedNamespaces.selector.matchExpressions[0].values",
    ),
]


@pytest.mark.parametrize(("change", "field"), REJECTED)
def test_admission_rejects_invalid_specs(
    cluster: Cluster, namespace: str, change: dict[str, Any], field: str
) -> None:
    assert_rejected(cluster, egain_token(namespace, "invalid", merged(VALID, change)), field)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("flow", "ClientApp"),
        ("grantType", "client_credentials"),
        ("tokenUrl", VALID["tokenUrl"]),
        ("tenantId", "TMPRODB88619984"),
        ("scopePrefix", "https://api.ai.egain.cloud/auth/"),
        ("credentialsSecretRef", {"name": "c"}),
    ],
)
@pytest.mark.parametrize("kind", ["EgainClient", "ClusterEgainClient"])
def test_admission_rejects_inline_client_fields_with_a_client_reference(
    cluster: Cluster, namespace: str, kind: str, field: str, value: Any
) -> None:
    # Each value is valid inline, and even equal to the default: with a
    # reference the client defines it, so any value is refused.
    spec = {**BY_REFERENCE, "clientRef": {"kind": kind, "name": "shared"}, field: value}
    assert_rejected(
        cluster,
        egain_token(namespace, "both", spec),
        f"spec.{field}: Forbidden: spec.{field} must not be set with spec.clientRef",
    )


@pytest.mark.parametrize(("change", "field"), CLIENT_REF_REJECTED)
def test_admission_rejects_invalid_client_references(
    cluster: Cluster, namespace: str, change: dict[str, Any], field: str
) -> None:
    manifest = egain_token(namespace, "invalid", merged(BY_REFERENCE, change))
    assert_rejected(cluster, manifest, field)


@pytest.mark.parametrize(("change", "field"), CLIENT_REJECTED + ALLOWED_SCOPES_REJECTED)
def test_admission_rejects_invalid_egain_clients(
    cluster: Cluster, namespace: str, change: dict[str, Any], field: str
) -> None:
    manifest = egain_client(namespace, "invalid", merged(VALID_CLIENT, change))
    assert_rejected(cluster, manifest, field)


@pytest.mark.parametrize(
    ("change", "field"),
    CLIENT_REJECTED + ALLOWED_SCOPES_REJECTED + ALLOWED_NAMESPACES_REJECTED,
)
def test_admission_rejects_invalid_cluster_egain_clients(
    cluster: Cluster, change: dict[str, Any], field: str
) -> None:
    spec = merged({**VALID_CLIENT, **ALL_NAMESPACES}, change)
    assert_rejected(cluster, cluster_egain_client("invalid", spec), field)


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


@pytest.mark.parametrize(
    "spec",
    [
        BY_REFERENCE,
        {**BY_REFERENCE, "clientRef": {"kind": "ClusterEgainClient", "name": "shared.portal"}},
        {
            **BY_REFERENCE,
            "tokenSharing": "Disabled",
            "secretName": "shared",
            "refreshBefore": "10m",
            "secretTemplate": {"labels": {"team": "support"}},
            "rolloutRestartTargets": [{"kind": "Deployment", "name": "web"}],
        },
    ],
)
def test_admission_accepts_tokens_that_reference_a_client(
    cluster: Cluster, namespace: str, spec: dict[str, Any]
) -> None:
    assert_accepted(cluster, egain_token(namespace, "by-reference", spec))


@pytest.mark.parametrize(
    "spec",
    [
        VALID_CLIENT,
        {**VALID_CLIENT, "allowedScopes": ["knowledge.portalmgr.read", "https://x.example/s"]},
        {
            "flow": "AnonymousCustomer",
            "tenantId": "TMPRODB88619984",
            "scopePrefix": "https://api.ai.egain.cloud/auth/",
            "credentialsSecretRef": {"name": "c", "clientIdKey": "id", "clientSecretKey": "secret"},
        },
    ],
)
def test_admission_accepts_valid_egain_clients(
    cluster: Cluster, namespace: str, spec: dict[str, Any]
) -> None:
    assert_accepted(cluster, egain_client(namespace, "valid", spec))


@pytest.mark.parametrize(
    "allowed",
    [
        {"selector": {}},
        {"names": ["support-apps", "billing"]},
        {
            "names": ["support-apps"],
            "selector": {
                "matchLabels": {"egain.cloud/support-portal": "allowed"},
                "matchExpressions": [
                    {"key": "team", "operator": "In", "values": ["a", "b"]},
                    {"key": "sandbox", "operator": "DoesNotExist"},
                ],
            },
        },
    ],
)
def test_admission_accepts_valid_cluster_egain_clients(
    cluster: Cluster, allowed: dict[str, Any]
) -> None:
    spec = {**VALID_CLIENT, "allowedNamespaces": allowed}
    assert_accepted(cluster, cluster_egain_client("valid", spec))


def test_admission_defaults(cluster: Cluster, namespace: str) -> None:
    cluster.apply(egain_token(namespace, "defaults", VALID))
    spec = cluster.token(namespace, "defaults")["spec"]
    # flow and grantType have no schema default (the operator applies
    # ClientApp and client_credentials): one would collide with clientRef.
    assert "flow" not in spec
    assert "grantType" not in spec
    assert spec["tokenSharing"] == "Shared"
    assert spec["credentialsSecretRef"] == {
        "name": "c",
        "clientIdKey": "client_id",
        "clientSecretKey": "client_secret",
    }


def test_admission_defaults_a_client_reference(cluster: Cluster, namespace: str) -> None:
    cluster.apply(egain_token(namespace, "by-reference", BY_REFERENCE))
    spec = cluster.token(namespace, "by-reference")["spec"]
    assert spec == {
        "clientRef": {"kind": "EgainClient", "name": "shared"},
        "scopes": ["s"],
        "tokenSharing": "Shared",
    }


def test_admission_defaults_clients(cluster: Cluster, namespace: str) -> None:
    name = f"defaults-{namespace}"
    cluster.apply(
        egain_client(namespace, "defaults", VALID_CLIENT),
        cluster_egain_client(name, {**VALID_CLIENT, **ALL_NAMESPACES}),
    )
    try:
        namespaced = json.loads(
            cluster.kubectl("get", "egainclient", "defaults", "-n", namespace, "-o", "json").stdout
        )
        cluster_wide = json.loads(
            cluster.kubectl("get", "clusteregainclient", name, "-o", "json").stdout
        )
    finally:
        cluster.kubectl("delete", "clusteregainclient", name, "--wait=false")
    for client in (namespaced, cluster_wide):
        assert client["spec"]["flow"] == "ClientApp"
        assert client["spec"]["grantType"] == "client_credentials"
        assert client["spec"]["credentialsSecretRef"] == {
            "name": "c",
            "clientIdKey": "client_id",
            "clientSecretKey": "client_secret",
        }


@pytest.mark.parametrize(
    "spec",
    [
        # What the previous CRD stored: its schema defaulted flow and grantType.
        {
            **VALID,
            "flow": "ClientApp",
            "grantType": "client_credentials",
            "credentialsSecretRef": {
                "name": "c",
                "clientIdKey": "client_id",
                "clientSecretKey": "client_secret",
            },
        },
        {
            "flow": "AnonymousCustomer",
            "grantType": "client_credentials",
            "tenantId": "TMPRODB88619984",
            "scopes": ["knowledge.portalmgr.read"],
            "credentialsSecretRef": {
                "name": "c",
                "clientIdKey": "client_id",
                "clientSecretKey": "client_secret",
            },
        },
    ],
    ids=["ClientApp", "AnonymousCustomer"],
)
def test_admission_keeps_an_existing_inline_token_unchanged(
    cluster: Cluster, namespace: str, spec: dict[str, Any]
) -> None:
    manifest = egain_token(namespace, "inline", spec)
    cluster.apply(manifest)
    # An update that does not touch the spec, as any controller or user makes.
    manifest["metadata"]["labels"] = {"team": "support"}
    cluster.apply(manifest)
    stored = cluster.token(namespace, "inline")["spec"]
    assert stored == {**spec, "tokenSharing": "Shared"}
