"""The command line's views: pure, with a fixed `now`."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from egain_token_operator.ctl import clientviews, readout, reports, views
from egain_token_operator.ctl.renewal import token_digest
from egain_token_operator.ctl.reports import Finding, Outcome
from egain_token_operator.decisions.issuer import DEFAULT_ANONYMOUS_TOKEN_URL, DEFAULT_SCOPE_PREFIX

NOW = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)
TOKEN_VALUE = "eyJ-the-token-itself"


def at(seconds: float) -> str:
    return (NOW + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def egain_token(name: str = "portal", namespace: str = "apps", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
        "spec": {"credentialsSecretRef": {"name": "egain-client"}, "scopes": ["a"]},
        "status": status,
    }


def ready(status: str = "True", reason: str = "TokenIssued", message: str = "ok") -> Any:
    condition = {"type": "Ready", "status": status, "reason": reason, "message": message}
    return [condition | {"lastTransitionTime": at(-300)}]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0s"),
        (45, "45s"),
        (119, "119s"),
        (120, "2m"),
        (270, "4m30s"),
        (42 * 60 + 10, "42m"),
        (179 * 60, "179m"),
        (5 * 3600 + 10 * 60, "5h10m"),
        (5 * 3600, "5h"),
        (30 * 3600, "30h"),
        (3 * 86400 + 4 * 3600, "3d4h"),
        (9 * 86400, "9d"),
        (-90, "90s"),
    ],
)
def test_human_duration(seconds: int, shown: str) -> None:
    assert readout.human_duration(timedelta(seconds=seconds)) == shown


def test_time_until_and_ago() -> None:
    assert readout.time_until(at(3600), NOW, "expired {} ago") == "60m"
    assert readout.time_until(at(-180), NOW, "expired {} ago") == "expired 3m ago"
    assert readout.time_until(at(-1), NOW, "due") == "due"
    assert readout.time_until(None, NOW, "due") == "-"
    assert readout.time_until("not a time", NOW, "due") == "-"
    assert readout.time_ago(at(-30), NOW) == "30s ago"
    assert readout.time_ago(None, NOW) == "-"


def test_status_table_one_row_per_token_sorted() -> None:
    healthy = egain_token(
        "portal",
        conditions=ready(),
        secretName="portal-token",
        expiresAt=at(3600),
        nextRefreshAt=at(2400),
        consecutiveFailures=0,
    )
    failing = egain_token(
        "chat",
        conditions=ready("False", "InvalidCredentials", "HTTP 401"),
        secretName="chat",
        nextRefreshAt=at(600),
        consecutiveFailures=3,
        lastFailure={"time": at(-30), "reason": "InvalidCredentials", "message": "HTTP 401"},
    )
    pending = egain_token("new")
    pending.pop("status")

    text = views.status_table([healthy, failing, pending], NOW, with_namespace=False)

    assert text.splitlines() == [
        "NAME     READY     REASON               SECRET         EXPIRES IN   NEXT REFRESH IN"
        "   FAILURES   LAST FAILURE",
        "chat     False     InvalidCredentials   chat           -            10m"
        "               3          InvalidCredentials 30s ago",
        "new      Unknown   -                    -              -            -"
        "                 0          -",
        "portal   True      TokenIssued          portal-token   60m          40m"
        "               0          -",
    ]
    assert (
        readout.is_ready(healthy)
        and not readout.is_ready(failing)
        and not readout.is_ready(pending)
    )


def test_status_table_across_namespaces() -> None:
    tokens = [egain_token("b", "zeta"), egain_token("a", "alpha"), egain_token("c", "alpha")]
    lines = views.status_table(tokens, NOW, with_namespace=True).splitlines()
    assert lines[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert [line.split()[:2] for line in lines[1:]] == [
        ["alpha", "a"],
        ["alpha", "c"],
        ["zeta", "b"],
    ]


def secret(owner_uid: str | None, **data: str) -> dict[str, Any]:
    references = (
        [{"kind": "EgainToken", "name": "portal", "uid": owner_uid, "controller": True}]
        if owner_uid
        else []
    )
    return {
        "metadata": {
            "name": "portal-token",
            "labels": {"app.kubernetes.io/managed-by": "egain-token-operator"},
            "annotations": {"egain.cloud/issued-at": at(-60), "egain.cloud/expires-at": at(3540)},
            "ownerReferences": references,
        },
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def test_details_show_keys_and_owner_never_values() -> None:
    token = egain_token(
        conditions=ready(), secretName="portal-token", issuedAt=at(-60), expiresAt=at(3540)
    )
    managed = secret(
        "uid-portal",
        access_token=TOKEN_VALUE,
        authorization=f"Bearer {TOKEN_VALUE}",
        token_type="Bearer",
        expires_at=at(3540),
        scope="a",
    )
    events = [
        {"type": "Normal", "reason": "TokenIssued", "message": f"n{i}", "lastTimestamp": at(-i)}
        for i in range(12)
    ]

    text = views.describe_token(token, "portal-token", managed, events, NOW)

    assert TOKEN_VALUE not in text
    assert managed["data"]["access_token"] not in text
    lines = text.splitlines()
    assert "Keys:          access_token, authorization, expires_at, scope, token_type" in text
    assert "Owner:         this EgainToken (portal)" in text
    assert f"Expires at:      {at(3540)} (in 59m)" in lines
    assert "Ready:           True (TokenIssued)" in lines
    # The ten most recent Events, oldest first.
    shown = [line.split()[-1] for line in lines[lines.index("Events:") + 2 :]]
    assert shown == [f"n{i}" for i in range(9, -1, -1)]


def test_secret_owner_other_or_none() -> None:
    token = egain_token()
    assert views.secret_owner(secret("uid-portal"), token) == "this EgainToken (portal)"
    assert views.secret_owner(secret("uid-other"), token).startswith(
        "EgainToken/portal, not this EgainToken"
    )
    assert views.secret_owner(secret(None), token).startswith("nobody")


def test_details_without_secret_status_or_events() -> None:
    text = views.describe_token(egain_token(), "portal", None, [], NOW)
    assert "Secret:          portal (not found: not written yet)" in text.splitlines()
    assert "Events:          <none>" in text.splitlines()
    assert "Ready:           Unknown (no status yet)" in text.splitlines()


def test_check_report_counts_failures() -> None:
    passed = reports.check_report("apps", "portal", [Finding(Outcome.OK, "spec valid")])
    assert passed.splitlines() == [
        "EgainToken apps/portal",
        "  ok    spec valid",
        "all checks passed",
    ]
    failed = reports.check_report(
        "apps",
        "portal",
        [Finding(Outcome.FAIL, "credentials"), Finding(Outcome.INFO, "x")],
    )
    assert failed.splitlines()[1:] == ["  FAIL  credentials", "  info  x", "1 check(s) failed"]


def test_token_digest_tells_tokens_apart_without_holding_them() -> None:
    first = token_digest(secret("u", access_token=TOKEN_VALUE))
    assert first is not None and TOKEN_VALUE not in first
    assert first != token_digest(secret("u", access_token="another"))
    assert token_digest(None) is None


def test_details_name_the_client_a_token_uses() -> None:
    def client_line(token: dict[str, Any]) -> str:
        text = views.describe_token(token, "portal", None, [], NOW)
        [line] = [line for line in text.splitlines() if line.startswith("Client:")]
        return line

    inline = egain_token()
    assert client_line(inline) == "Client:          inline"
    by_ref = egain_token()
    by_ref["spec"] = {"clientRef": {"kind": "ClusterEgainClient", "name": "shared"}}
    assert client_line(by_ref) == (
        "Client:          ClusterEgainClient/shared (spec.clientRef; not used yet)"
    )
    by_ref["status"] = {"client": {"kind": "ClusterEgainClient", "name": "shared"}}
    assert client_line(by_ref) == "Client:          ClusterEgainClient/shared"
    local = egain_token(client={"kind": "EgainClient", "name": "team-client"})
    assert client_line(local) == "Client:          EgainClient/team-client"


def test_label_selectors_as_kubectl_takes_them() -> None:
    selector = {
        "matchLabels": {"b": "2", "a": "1"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["x", "y"]},
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "team", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    assert (
        clientviews.label_selector(selector) == "a=1,b=2,tier in (x,y),env notin (dev),team,!legacy"
    )
    assert clientviews.label_selector({}) == ""


def cluster_client(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "egain.cloud/v1alpha1",
        "kind": "ClusterEgainClient",
        "metadata": {"name": "support-portal", "uid": "uid-c"},
        "spec": {
            "flow": "ClientApp",
            "tokenUrl": "https://ai.egain.cloud/system/auth/T-U/oauth2/token",
            "credentialsSecretRef": {"name": "support-portal-client"},
            **spec,
        },
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "CredentialsFound",
                    "message": "Secret support-portal-client has client_id and client_secret",
                    "lastTransitionTime": at(-600),
                }
            ],
            "tokens": 2,
        },
    }


def test_a_cluster_client_its_policy_and_its_tokens() -> None:
    client = cluster_client(
        allowedScopes=["knowledge.portalmgr.read"],
        allowedNamespaces={
            "names": ["support-apps"],
            "selector": {"matchLabels": {"egain.cloud/support-portal": "allowed"}},
        },
    )
    tokens = [
        egain_token("b", "team-b", conditions=ready("False", "ClientNotAllowed", "no")),
        egain_token("a", "team-a", conditions=ready()),
    ]

    lines = clientviews.describe_client(client, tokens, None, NOW).splitlines()

    assert lines[:9] == [
        "Name:            support-portal",
        "Kind:            ClusterEgainClient",
        "Ready:           True (CredentialsFound)",
        "Message:         Secret support-portal-client has client_id and client_secret",
        "Flow:            ClientApp",
        "Token URL:       https://ai.egain.cloud/system/auth/T-U/oauth2/token",
        "Credentials:     Secret support-portal-client in the operator's cluster resource "
        "namespace, keys client_id and client_secret",
        "Tokens:          2",
        "Policy:",
    ]
    assert "  Namespaces:    names support-apps; or labels egain.cloud/support-portal=allowed" in (
        lines
    )
    assert "  Scopes:        knowledge.portalmgr.read" in lines
    conditions = lines.index("Conditions:")
    assert lines[conditions + 2].split()[:4] == ["Ready", "True", "CredentialsFound", "10m"]
    at_tokens = lines.index("EgainTokens using it, in every namespace:")
    assert [line.split() for line in lines[at_tokens + 1 :]] == [
        ["NAMESPACE", "NAME", "READY", "REASON"],
        ["team-a", "a", "True", "TokenIssued"],
        ["team-b", "b", "False", "ClientNotAllowed"],
    ]


def test_a_namespaced_anonymous_client_with_defaults_and_no_tokens() -> None:
    client = cluster_client(flow="AnonymousCustomer", tenantId="TMPROD")
    client["kind"] = "EgainClient"
    client["metadata"]["namespace"] = "team-a"
    del client["spec"]["tokenUrl"]
    client["spec"]["credentialsSecretRef"]["clientSecretKey"] = "secret"
    client.pop("status")

    text = clientviews.describe_client(client, [], "team-a", NOW)
    lines = text.splitlines()

    assert "Namespace:       team-a" in lines
    assert "Ready:           Unknown (no status yet)" in lines
    assert f"Token URL:       {DEFAULT_ANONYMOUS_TOKEN_URL} (default)" in lines
    assert "Tenant:          TMPROD" in lines
    assert f"Scope prefix:    {DEFAULT_SCOPE_PREFIX} (default)" in lines
    assert (
        "Credentials:     Secret support-portal-client in namespace team-a, keys client_id "
        "and secret" in lines
    )
    assert "  Namespaces:    team-a only (an EgainClient serves its own namespace)" in lines
    assert "  Scopes:        any scope the client has" in lines
    assert lines[-2:] == ["EgainTokens using it, in namespace team-a:", "  <none>"]


def test_a_cluster_client_open_to_every_namespace() -> None:
    client = cluster_client(allowedNamespaces={"selector": {}})
    assert (
        "  Namespaces:    every namespace (selector {})"
        in clientviews.describe_client(client, [], "team-a", NOW).splitlines()
    )


def test_details_list_the_rendered_keys_by_name_never_their_values() -> None:
    token = egain_token(conditions=ready(), secretName="portal-token")
    token["spec"]["secretTemplate"] = {"data": {"app.conf": "token: ${accessToken}\n"}}
    token["spec"]["outputFormats"] = [
        {"type": "DotEnv"},
        {"type": "JSON", "key": "config.json"},
        {"type": "EnvoyGatewayCredential"},
    ]
    rendered = {
        "app.conf": f"token: {TOKEN_VALUE}\n",
        "egain.env": f"EGAIN_ACCESS_TOKEN={TOKEN_VALUE}\n",
        "config.json": f'{{"accessToken": "{TOKEN_VALUE}"}}',
        "credential": f"Bearer {TOKEN_VALUE}",
    }
    managed = secret("uid-portal", access_token=TOKEN_VALUE, **rendered)

    text = views.describe_token(token, "portal-token", managed, [], NOW)

    assert (
        "Secret keys:     access_token, token_type, authorization, expires_at, scope, "
        "app.conf, egain.env, config.json, credential"
    ) in text.splitlines()
    assert TOKEN_VALUE not in text
    assert not any(encoded in text for encoded in managed["data"].values())


def test_details_say_why_no_key_is_rendered_and_escape_what_they_quote() -> None:
    token = egain_token()
    token["spec"]["secretTemplate"] = {"data": {"app.conf": "$HOME"}}
    lines = views.describe_token(token, "portal", None, [], NOW).splitlines()
    assert (
        "Secret keys:     access_token, token_type, authorization, expires_at, scope; "
        "spec invalid: spec.secretTemplate.data[app.conf] holds a $ that is neither $$ "
        "nor a placeholder"
    ) in lines
    # Keys that are not Secret keys are never quoted: nothing of them reaches a terminal.
    token["spec"]["secretTemplate"] = {"data": {"a\x1b[2Jb": "x"}}
    token["spec"]["outputFormats"] = [{"type": "JSON", "key": "x\x07"}]
    text = views.describe_token(token, "portal", None, [], NOW)
    assert "\x1b" not in text and "\x07" not in text
    assert "spec invalid: spec.secretTemplate.data: a key must be a Secret key" in text
