"""The client policy checks of `policy.plan`: ClientNotFound, ClientNotAllowed,
ScopeNotAllowed, all found before anything is sent."""

from dataclasses import replace
from typing import Any

import pytest

from egain_token_operator.decisions.checks import (
    Snapshot,
    client_missing,
    client_not_allowed,
    client_refusal,
    scope_not_allowed,
)
from egain_token_operator.decisions.clients import ClientKind, ClientRef, ClientSpec, parse_client
from egain_token_operator.decisions.policy import Memory, plan
from egain_token_operator.decisions.reasons import LOCAL_REASONS, Reason
from egain_token_operator.decisions.schema import InvalidSpecError
from egain_token_operator.decisions.tokenspec import parse_spec
from tests.unit.samples import NOW, POLICY, token

ISSUER = {
    "tokenUrl": "https://ai.egain.cloud/system/auth/T-U/oauth2/token",
    "credentialsSecretRef": {"name": "portal-client"},
}


def cluster_client(**spec: Any) -> ClientSpec:
    found = {
        "metadata": {"name": "portal"},
        "spec": {**ISSUER, "allowedNamespaces": {"names": ["team-a"]}, **spec},
    }
    return parse_client(ClientKind.CLUSTER_EGAIN_CLIENT, found, "egain-system")


def snapshot(
    client: ClientSpec | None,
    *,
    namespace: str = "team-a",
    scopes: tuple[str, ...] = ("knowledge.portalmgr.read",),
    labels: dict[str, str] | None = None,
) -> Snapshot:
    """A look at a token naming ClusterEgainClient portal, as `observe` gathers it."""
    raw = {"clientRef": {"kind": "ClusterEgainClient", "name": "portal"}, "scopes": list(scopes)}
    return Snapshot(
        uid="uid-1",
        generation=1,
        refresh_request=None,
        spec=parse_spec("t", raw, client) if client is not None else None,
        namespace=namespace,
        client_ref=ClientRef(ClientKind.CLUSTER_EGAIN_CLIENT, "portal"),
        client=client,
        namespace_labels=labels,
    )


def test_the_new_reasons_are_local_and_permanent() -> None:
    assert {Reason.CLIENT_NOT_FOUND, Reason.CLIENT_NOT_ALLOWED, Reason.SCOPE_NOT_ALLOWED} <= (
        LOCAL_REASONS
    )


def test_a_missing_client_is_client_not_found() -> None:
    found = client_missing(snapshot(None))
    assert found == (Reason.CLIENT_NOT_FOUND, "ClusterEgainClient portal not found")
    assert client_missing(snapshot(cluster_client())) is None


def test_a_cluster_client_not_served_says_why() -> None:
    found = client_missing(replace(snapshot(None), client_unserved=True))
    assert found is not None and found[0] is Reason.CLIENT_NOT_FOUND
    assert found[1] == (
        "ClusterEgainClient portal not served: this operator is limited to namespaces "
        "(--namespace); ClusterEgainClients need a cluster-wide install"
    )


def test_a_namespace_outside_allowed_namespaces_is_client_not_allowed() -> None:
    client = cluster_client()
    found = client_not_allowed(snapshot(client, namespace="team-b"))
    assert found is not None
    assert found[0] is Reason.CLIENT_NOT_ALLOWED
    assert "namespace team-b" in found[1] and "ClusterEgainClient portal" in found[1]
    assert client_not_allowed(snapshot(client)) is None


def test_the_selector_decides_with_the_namespaces_labels() -> None:
    client = cluster_client(
        allowedNamespaces={"selector": {"matchLabels": {"egain.cloud/portal": "allowed"}}}
    )
    assert client_not_allowed(snapshot(client, labels={})) is not None
    allowed = {"egain.cloud/portal": "allowed"}
    assert client_not_allowed(snapshot(client, labels=allowed)) is None
    # Labels not known (the namespace is gone): not allowed.
    assert client_not_allowed(snapshot(client, labels=None)) is not None


def test_a_scope_outside_allowed_scopes_is_scope_not_allowed() -> None:
    client = cluster_client(allowedScopes=["knowledge.portalmgr.read"])
    found = scope_not_allowed(snapshot(client, scopes=("knowledge.portalmgr.read", "core.admin")))
    assert found == (
        Reason.SCOPE_NOT_ALLOWED,
        "scope core.admin is not allowed by ClusterEgainClient portal (allowedScopes)",
    )
    assert scope_not_allowed(snapshot(client)) is None


def test_the_first_refusal_wins() -> None:
    client = cluster_client(allowedScopes=["other"])
    refused = client_refusal(snapshot(client, namespace="team-b"))
    assert refused is not None and refused[0] is Reason.CLIENT_NOT_ALLOWED
    refused = client_refusal(snapshot(client))
    assert refused is not None and refused[0] is Reason.SCOPE_NOT_ALLOWED
    assert client_refusal(snapshot(cluster_client())) is None


@pytest.mark.parametrize(
    ("seen", "reason"),
    [
        (snapshot(None), Reason.CLIENT_NOT_FOUND),
        (snapshot(cluster_client(), namespace="team-b"), Reason.CLIENT_NOT_ALLOWED),
        (snapshot(cluster_client(allowedScopes=["other"])), Reason.SCOPE_NOT_ALLOWED),
    ],
)
def test_a_refusal_requests_nothing_backs_off_long_and_turns_a_valid_token_not_ready(
    seen: Snapshot, reason: Reason
) -> None:
    # The Secret still holds a valid token: it is kept (nothing deletes it), not reported Ready.
    held = token()
    made = plan(seen, Memory(held, None, looked=True), NOW, POLICY)
    assert not made.request_token
    assert (made.condition.status, made.condition.reason) == ("False", reason)
    assert made.failure is not None and made.failure_is_news
    assert made.wake_at == NOW + POLICY.permanent_delay
    assert made.token == held
    assert made.reported_token is None


def test_once_allowed_the_token_is_requested_at_once_despite_the_backoff() -> None:
    refused = plan(snapshot(cluster_client(), namespace="team-b"), Memory(), NOW, POLICY)
    allowed = replace(snapshot(cluster_client()), fingerprint="fp")
    made = plan(allowed, refused.memory, NOW, POLICY)
    assert made.request_token
    assert made.failure is None


# --- a client that requires sharing, and a request budget ----------------------


def test_a_token_opting_out_of_sharing_is_refused_by_a_client_requiring_it() -> None:
    requiring = cluster_client(tokenSharing="Required")
    raw = {
        "clientRef": {"kind": "ClusterEgainClient", "name": "portal"},
        "scopes": ["knowledge.portalmgr.read"],
        "tokenSharing": "Disabled",
    }
    seen = replace(snapshot(requiring), spec=parse_spec("t", raw, requiring))
    refused = client_refusal(seen)
    assert refused == (
        Reason.SHARING_REQUIRED,
        "ClusterEgainClient portal requires token sharing (tokenSharing: Required); "
        "spec.tokenSharing: Disabled is not allowed with it",
    )
    assert Reason.SHARING_REQUIRED in LOCAL_REASONS
    made = plan(replace(seen, fingerprint="fp"), Memory(), NOW, POLICY)
    assert not made.request_token
    assert (made.condition.status, made.condition.reason) == ("False", Reason.SHARING_REQUIRED)
    # Sharing tokens pass; so does opting out where the client does not require sharing.
    assert client_refusal(snapshot(requiring)) is None
    optional = cluster_client()
    assert client_refusal(replace(seen, client=optional)) is None


def test_the_budget_and_sharing_fields_are_read_and_bounded() -> None:
    assert cluster_client().requests_per_minute is None
    assert not cluster_client().sharing_required
    assert cluster_client(requestsPerMinute=6).requests_per_minute == 6
    assert cluster_client(tokenSharing="Optional").sharing_required is False
    for bad in (0, 10001, True, "6", 2.5):
        with pytest.raises(InvalidSpecError, match=r"spec\.requestsPerMinute must be a whole"):
            cluster_client(requestsPerMinute=bad)
    with pytest.raises(InvalidSpecError, match=r"spec\.tokenSharing must be Optional or Required"):
        cluster_client(tokenSharing="Disabled")
