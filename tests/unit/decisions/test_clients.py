"""Shared clients, parsed: clientRef, EgainClient and ClusterEgainClient specs,
the combined spec, label selectors and the scope-prefix comparison."""

from typing import Any

import pytest

from egain_token_operator.decisions.clients import (
    ClientKey,
    ClientKind,
    ClientRef,
    parse_client,
    parse_client_ref,
    referenced_credentials,
)
from egain_token_operator.decisions.issuer import DEFAULT_SCOPE_PREFIX, CredentialsRef, Flow
from egain_token_operator.decisions.labelselector import InvalidSelectorError, parse_selector
from egain_token_operator.decisions.schema import InvalidSpecError
from egain_token_operator.decisions.tokenspec import parse_spec

CLIENT_APP = {
    "tokenUrl": "https://ai.egain.cloud/system/auth/T-U/oauth2/token",
    "credentialsSecretRef": {"name": "portal-client", "clientIdKey": "id"},
}
ANONYMOUS = {
    "flow": "AnonymousCustomer",
    "tenantId": "TMPRODB88619984",
    "credentialsSecretRef": {"name": "portal-client"},
}


def body(kind: ClientKind, spec: dict[str, Any], namespace: str = "team-a") -> dict[str, Any]:
    metadata = {"name": "portal", "generation": 2}
    if kind.namespaced:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "egain.cloud/v1alpha1",
        "kind": kind.value,
        "metadata": metadata,
        "spec": spec,
    }


def cluster_client(**spec: Any) -> dict[str, Any]:
    return body(ClientKind.CLUSTER_EGAIN_CLIENT, {**CLIENT_APP, **spec})


class TestClientRef:
    def test_kind_defaults_to_egain_client(self) -> None:
        assert parse_client_ref({"clientRef": {"name": "portal"}}) == ClientRef(
            ClientKind.EGAIN_CLIENT, "portal"
        )

    def test_absent_means_inline(self) -> None:
        assert parse_client_ref({"scopes": ["a"]}) is None

    @pytest.mark.parametrize(
        ("ref", "field"),
        [
            ({"kind": "Issuer", "name": "portal"}, "spec.clientRef.kind"),
            ({"kind": "ClusterEgainClient"}, "spec.clientRef.name"),
            ({"name": "Not_A_Name"}, "spec.clientRef.name"),
            ("portal", "spec.clientRef"),
        ],
    )
    def test_malformed_refs_name_the_field(self, ref: Any, field: str) -> None:
        with pytest.raises(InvalidSpecError, match=field):
            parse_client_ref({"clientRef": ref})
        assert parse_client_ref({"clientRef": ref}, lenient=True) is None

    @pytest.mark.parametrize("field", ["flow", "tokenUrl", "tenantId", "credentialsSecretRef"])
    def test_inline_issuer_fields_beside_a_client_ref_are_invalid(self, field: str) -> None:
        spec = {"clientRef": {"name": "portal"}, field: {**CLIENT_APP, **ANONYMOUS}[field]}
        with pytest.raises(InvalidSpecError, match=f"spec.{field} must not be set"):
            parse_client_ref(spec)

    def test_a_client_key_is_namespaced_for_egain_clients_only(self) -> None:
        assert ClientRef(ClientKind.EGAIN_CLIENT, "p").key("team-a") == ClientKey(
            ClientKind.EGAIN_CLIENT, "team-a", "p"
        )
        assert ClientRef(ClientKind.CLUSTER_EGAIN_CLIENT, "p").key("team-a") == ClientKey(
            ClientKind.CLUSTER_EGAIN_CLIENT, "", "p"
        )


class TestClients:
    def test_an_egain_client_reads_credentials_in_its_own_namespace(self) -> None:
        client = parse_client(
            ClientKind.EGAIN_CLIENT, body(ClientKind.EGAIN_CLIENT, CLIENT_APP), "egain-system"
        )
        assert client.key == ClientKey(ClientKind.EGAIN_CLIENT, "team-a", "portal")
        assert client.issuer.credentials == CredentialsRef(
            "portal-client", "id", "client_secret", "team-a"
        )
        assert client.allowed_scopes is None
        assert client.allowed_namespaces is None

    def test_a_cluster_client_reads_credentials_in_the_cluster_resource_namespace_only(
        self,
    ) -> None:
        found = cluster_client(allowedNamespaces={"names": ["team-a"]})
        # A namespace in the stored object (there is none for a cluster-scoped kind) is ignored.
        found["metadata"]["namespace"] = "team-b"
        client = parse_client(ClientKind.CLUSTER_EGAIN_CLIENT, found, "egain-system")
        assert client.key == ClientKey(ClientKind.CLUSTER_EGAIN_CLIENT, "", "portal")
        assert client.issuer.credentials.namespace == "egain-system"

    def test_the_issuer_is_parsed_and_defaulted_as_inline(self) -> None:
        client = parse_client(
            ClientKind.EGAIN_CLIENT, body(ClientKind.EGAIN_CLIENT, ANONYMOUS), "egain-system"
        )
        inline = parse_spec("t", {**ANONYMOUS, "scopes": ["a"]})
        assert client.issuer.flow is Flow.ANONYMOUS_CUSTOMER
        assert client.issuer.scope_prefix == DEFAULT_SCOPE_PREFIX
        assert (client.issuer.token_url, client.issuer.tenant_id) == (
            inline.token_url,
            inline.tenant_id,
        )

    @pytest.mark.parametrize(
        ("spec", "field"),
        [
            ({**CLIENT_APP, "tokenUrl": "http://ai.egain.cloud/x"}, "spec.tokenUrl"),
            ({**CLIENT_APP, "credentialsSecretRef": None}, "spec.credentialsSecretRef"),
            ({**ANONYMOUS, "tenantId": None}, "spec.tenantId"),
            ({**CLIENT_APP, "allowedScopes": []}, "spec.allowedScopes"),
            ({**CLIENT_APP, "allowedScopes": ["a b"]}, "spec.allowedScopes"),
        ],
    )
    def test_invalid_client_specs_name_the_field(self, spec: dict[str, Any], field: str) -> None:
        with pytest.raises(InvalidSpecError, match=field):
            parse_client(ClientKind.EGAIN_CLIENT, body(ClientKind.EGAIN_CLIENT, spec), "x")

    @pytest.mark.parametrize(
        "allowed",
        [None, "all", {"names": "team-a"}, {"selector": {"matchExpressions": [{"key": "a"}]}}],
    )
    def test_a_cluster_client_needs_well_formed_allowed_namespaces(self, allowed: Any) -> None:
        with pytest.raises(InvalidSpecError, match=r"spec\.allowedNamespaces"):
            parse_client(
                ClientKind.CLUSTER_EGAIN_CLIENT, cluster_client(allowedNamespaces=allowed), "x"
            )

    def test_referenced_credentials_come_from_the_raw_spec(self) -> None:
        key = ClientKey(ClientKind.CLUSTER_EGAIN_CLIENT, "", "portal")
        assert referenced_credentials(key, {"credentialsSecretRef": {"name": "c"}}, "ops") == (
            "ops",
            "c",
        )
        namespaced = ClientKey(ClientKind.EGAIN_CLIENT, "team-a", "portal")
        assert referenced_credentials(namespaced, CLIENT_APP, "ops") == ("team-a", "portal-client")
        assert referenced_credentials(key, {}, "ops") is None


class TestCombinedSpec:
    def test_the_token_keeps_its_own_fields_and_takes_the_clients_issuer(self) -> None:
        client = parse_client(
            ClientKind.CLUSTER_EGAIN_CLIENT,
            cluster_client(allowedNamespaces={"names": ["team-a"]}),
            "egain-system",
        )
        spec = parse_spec(
            "portal-token",
            {
                "clientRef": {"kind": "ClusterEgainClient", "name": "portal"},
                "scopes": ["knowledge.portalmgr.read"],
                "secretName": "out",
                "refreshBefore": "10m",
                "rolloutRestartTargets": [{"kind": "Deployment", "name": "web"}],
            },
            client,
        )
        assert spec.issuer == client.issuer
        assert spec.token_url == CLIENT_APP["tokenUrl"]
        assert spec.credentials.namespace == "egain-system"
        assert spec.client == ClientRef(ClientKind.CLUSTER_EGAIN_CLIENT, "portal")
        assert (spec.scopes, spec.secret_name) == (("knowledge.portalmgr.read",), "out")
        assert spec.refresh_before is not None and len(spec.rollout_targets) == 1

    def test_a_client_ref_needs_the_client_it_names(self) -> None:
        other = parse_client(
            ClientKind.EGAIN_CLIENT, body(ClientKind.EGAIN_CLIENT, CLIENT_APP), "x"
        )
        spec = {"clientRef": {"kind": "ClusterEgainClient", "name": "portal"}, "scopes": ["a"]}
        with pytest.raises(ValueError, match="served with the client it names"):
            parse_spec("t", spec, other)

    def test_inline_tokens_read_credentials_in_their_own_namespace(self) -> None:
        spec = parse_spec("t", {**CLIENT_APP, "scopes": ["a"]})
        assert spec.client is None
        assert spec.credentials.namespace is None


class TestScopePrefix:
    def anonymous(self, allowed: list[str], prefix: str | None = None) -> Any:
        spec: dict[str, Any] = {**ANONYMOUS, "allowedScopes": allowed}
        if prefix:
            spec["scopePrefix"] = prefix
        return parse_client(ClientKind.EGAIN_CLIENT, body(ClientKind.EGAIN_CLIENT, spec), "x")

    def test_short_and_absolute_forms_compare_equal_for_anonymous_customers(self) -> None:
        client = self.anonymous(["knowledge.portalmgr.read", f"{DEFAULT_SCOPE_PREFIX}core.read"])
        requested = (f"{DEFAULT_SCOPE_PREFIX}knowledge.portalmgr.read", "core.read")
        assert client.scopes_not_allowed(requested) == ()

    def test_another_prefix_is_another_scope(self) -> None:
        client = self.anonymous(["knowledge.portalmgr.read"], prefix="https://other.example/")
        requested = (f"{DEFAULT_SCOPE_PREFIX}knowledge.portalmgr.read", "knowledge.portalmgr.read")
        assert client.scopes_not_allowed(requested) == (requested[0],)

    def test_client_app_scopes_compare_as_written(self) -> None:
        spec = {**CLIENT_APP, "allowedScopes": ["knowledge.portalmgr.read"]}
        client = parse_client(ClientKind.EGAIN_CLIENT, body(ClientKind.EGAIN_CLIENT, spec), "x")
        absolute = f"{DEFAULT_SCOPE_PREFIX}knowledge.portalmgr.read"
        assert client.scopes_not_allowed(("knowledge.portalmgr.read", absolute)) == (absolute,)

    def test_without_allowed_scopes_any_scope_is_allowed(self) -> None:
        client = parse_client(
            ClientKind.EGAIN_CLIENT, body(ClientKind.EGAIN_CLIENT, CLIENT_APP), "x"
        )
        assert client.scopes_not_allowed(("anything",)) == ()


LABELS = {"team": "support", "tier": "gold"}


class TestSelectors:
    @pytest.mark.parametrize(
        ("selector", "matches"),
        [
            ({}, True),
            ({"matchLabels": {"team": "support"}}, True),
            ({"matchLabels": {"team": "support", "tier": "silver"}}, False),
            ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold"]}]}, True),
            ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["x"]}]}, False),
            ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["x"]}]}, False),
            ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["x"]}]}, True),
            (
                {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["gold"]}]},
                False,
            ),
            # NotIn holds where the key is absent, as the API server has it.
            ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["x"]}]}, True),
            ({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, True),
            ({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, False),
            ({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, True),
            ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, False),
            (
                {
                    "matchLabels": {"team": "support"},
                    "matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}],
                },
                False,
            ),
        ],
    )
    def test_matching(self, selector: dict[str, Any], matches: bool) -> None:
        assert parse_selector(selector).matches(LABELS) is matches

    @pytest.mark.parametrize(
        ("selector", "message"),
        [
            ({"matchLabels": {"a": 1}}, "matchLabels"),
            ({"matchExpressions": [{"operator": "Exists"}]}, r"matchExpressions\[0\].key"),
            ({"matchExpressions": [{"key": "a", "operator": "Near"}]}, "operator"),
            ({"matchExpressions": [{"key": "a", "operator": "In"}]}, "must not be empty"),
            (
                {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
                "must be empty",
            ),
        ],
    )
    def test_malformed_selectors_are_refused(self, selector: Any, message: str) -> None:
        with pytest.raises(InvalidSelectorError, match=message):
            parse_selector(selector)

    def test_allowed_namespaces_by_name_or_selector(self) -> None:
        client = parse_client(
            ClientKind.CLUSTER_EGAIN_CLIENT,
            cluster_client(
                allowedNamespaces={"names": ["team-a"], "selector": {"matchLabels": {"x": "y"}}}
            ),
            "ops",
        )
        assert client.allows_namespace("team-a", None)
        assert client.allows_namespace("team-b", {"x": "y"})
        assert not client.allows_namespace("team-b", {"x": "z"})
        assert not client.allows_namespace("team-b", None)

    def test_an_empty_selector_allows_every_namespace_and_no_selector_none_unnamed(self) -> None:
        every = parse_client(
            ClientKind.CLUSTER_EGAIN_CLIENT, cluster_client(allowedNamespaces={"selector": {}}), "o"
        )
        named = parse_client(
            ClientKind.CLUSTER_EGAIN_CLIENT, cluster_client(allowedNamespaces={"names": ["a"]}), "o"
        )
        assert every.allows_namespace("anything", {})
        assert not named.allows_namespace("b", {})
        assert not named.needs_namespace_labels and every.needs_namespace_labels

    def test_an_egain_client_allows_its_own_namespace_only(self) -> None:
        client = parse_client(
            ClientKind.EGAIN_CLIENT, body(ClientKind.EGAIN_CLIENT, CLIENT_APP), "ops"
        )
        assert client.allows_namespace("team-a", None)
        assert not client.allows_namespace("team-b", {})
