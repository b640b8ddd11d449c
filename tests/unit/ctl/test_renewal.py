"""`renew`: which tokens it selects, how each renewal ends, and what the bulk form asks
of the API server (one list and one watch per collection, one patch per token)."""

from __future__ import annotations

import argparse
import asyncio
import base64
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from egain_token_operator.ctl import command, main, renew
from egain_token_operator.ctl.renewal import Ending, Renewal
from egain_token_operator.decisions.clientref import (
    client_argument,
    recorded_client,
    requested_client,
    slashed,
    uses,
)
from egain_token_operator.decisions.clients import ClientKey, ClientKind, ClientRef
from tests.unit.fakes import FakeKube

NOW = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)
REQUEST = "2026-11-23T21:00:00.000000Z"

ANNOTATION = "egain.cloud/refresh-requested-at"


def token(
    name: str, namespace: str = "apps", client_ref: dict[str, str] | None = None, **status: Any
) -> dict[str, Any]:
    spec: dict[str, Any] = {"scopes": ["a"], "secretName": f"{name}-token"}
    if client_ref is None:
        spec["credentialsSecretRef"] = {"name": "egain-client"}
    else:
        spec["clientRef"] = client_ref
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
        "spec": spec,
        "status": status,
    }


def managed_secret(
    name: str, namespace: str = "apps", request: str | None = None, value: str = "t1"
) -> dict[str, Any]:
    annotations = {"egain.cloud/expires-at": "2026-11-23T22:00:00Z"}
    if request is not None:
        annotations[ANNOTATION] = request
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "egain-token-operator"},
            "annotations": annotations,
        },
        "data": {"access_token": base64.b64encode(value.encode()).decode()},
    }


def failed(reason: str, count: int = 1) -> dict[str, Any]:
    return {
        "consecutiveFailures": count,
        "lastFailure": {"time": f"t{count}", "reason": reason, "message": "HTTP 401"},
    }


# --- clientref ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("egc/portal", ClientKind.EGAIN_CLIENT),
        ("EgainClient/portal", ClientKind.EGAIN_CLIENT),
        ("egainclients/portal", ClientKind.EGAIN_CLIENT),
        ("cegc/portal", ClientKind.CLUSTER_EGAIN_CLIENT),
        ("ClusterEgainClient/portal", ClientKind.CLUSTER_EGAIN_CLIENT),
        ("clusteregainclient/portal", ClientKind.CLUSTER_EGAIN_CLIENT),
    ],
)
def test_client_kinds_as_kubectl_spells_them(text: str, kind: ClientKind) -> None:
    assert client_argument(text) == ClientRef(kind, "portal")


@pytest.mark.parametrize("text", ["portal", "egt/portal", "egc/", "cegc/a/b", "/portal"])
def test_not_a_client(text: str) -> None:
    with pytest.raises(ValueError, match="is not KIND/NAME"):
        client_argument(text)


def test_client_references_of_a_token() -> None:
    cluster = ClientKey(ClientKind.CLUSTER_EGAIN_CLIENT, "", "portal")
    local = ClientKey(ClientKind.EGAIN_CLIENT, "apps", "portal")
    # The kind defaults to EgainClient, of the token's own namespace.
    assert requested_client(token("a", client_ref={"name": "portal"})) == local
    by_cluster = token("b", client_ref={"kind": "ClusterEgainClient", "name": "portal"})
    assert requested_client(by_cluster) == cluster
    assert uses(by_cluster, cluster) and not uses(by_cluster, local)
    assert requested_client(token("c")) is None and not uses(token("c"), local)
    # The same name in another namespace is another EgainClient.
    elsewhere = token("d", "other", client_ref={"name": "portal"})
    assert not uses(elsewhere, local)
    assert uses(
        token("e", "other", client_ref={"kind": "ClusterEgainClient", "name": "portal"}), cluster
    )
    recorded = token("f", client={"kind": "ClusterEgainClient", "name": "portal"})
    assert recorded_client(recorded) == cluster and recorded_client(token("g")) is None
    assert slashed(cluster) == "ClusterEgainClient/portal"


# --- the selection -----------------------------------------------------------


def renew_args(*argv: str) -> argparse.Namespace:
    return main.build_parser("p", {}).parse_args(["renew", *argv])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "exactly one of"),
        (("a", "--all"), "exactly one of"),
        (("--all", "-l", "x=y"), "exactly one of"),
        (("-l", "x=y", "--client", "cegc/c"), "exactly one of"),
        (("a", "-A"), "NAME cannot be combined"),
        (("--client", "egc/c", "-A"), "an EgainClient serves its own namespace"),
        (("--client", "portal"), "is not KIND/NAME"),
    ],
)
def test_renew_takes_exactly_one_selection(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(command.CommandError, match=message) as raised:
        renew._selection(renew_args(*argv))
    assert raised.value.exit_code == command.EXIT_USAGE


def test_renew_selections() -> None:
    assert renew._selection(renew_args("a")) == renew.Selection(name="a")
    assert renew._selection(renew_args("--all", "-A")) == renew.Selection(every_namespace=True)
    assert renew._selection(renew_args("-l", "team=a")) == renew.Selection(label_selector="team=a")
    assert renew._selection(renew_args("--client", "cegc/c", "-A")) == renew.Selection(
        every_namespace=True, client=ClientRef(ClientKind.CLUSTER_EGAIN_CLIENT, "c")
    )


# --- how one renewal ends ----------------------------------------------------


def test_renewed_when_the_secret_answers_the_request() -> None:
    renewal = Renewal(REQUEST)
    renewal.add(token("a"), "a-token", managed_secret("a-token"))
    renewal.add(token("b"), "b-token", managed_secret("b-token"))
    # Another request's answer, or another Secret, is not this one's.
    assert renewal.saw_secret(managed_secret("a-token", request="earlier", value="t2"), NOW) == []
    assert renewal.saw_secret(managed_secret("x-token", request=REQUEST), NOW) == []
    [step] = renewal.saw_secret(managed_secret("a-token", request=REQUEST, value="t2"), NOW)
    assert step.key == ("apps", "a") and step.ending is Ending.RENEWED
    assert step.text == "new token in Secret a-token, valid until 2026-11-23T22:00:00Z (60m)"
    # eGain may answer with the token the Secret held already.
    [same] = renewal.saw_secret(managed_secret("b-token", request=REQUEST, value="t1"), NOW)
    assert same.text.startswith("same token again in Secret b-token")
    assert renewal.waiting == [] and renewal.endings == {
        ("apps", "a"): Ending.RENEWED,
        ("apps", "b"): Ending.RENEWED,
    }
    # Ended is ended: a later event changes nothing.
    assert renewal.saw_secret(managed_secret("a-token", request=REQUEST), NOW) == []


def test_failures_permanent_end_it_transient_are_told_once() -> None:
    renewal = Renewal(REQUEST)
    renewal.add(token("a", **failed("InvalidCredentials")), "a-token", None)
    renewal.add(token("b"), "b-token", None)
    # The failure recorded before the request is not this request's.
    assert renewal.saw_token(token("a", **failed("InvalidCredentials"))) == []
    [note] = renewal.saw_token(token("b", **failed("TokenEndpointUnavailable")))
    assert note.ending is None
    assert (
        note.text
        == "the operator's request failed (TokenEndpointUnavailable: HTTP 401); it retries"
    )
    assert renewal.saw_token(token("b", **failed("RateLimited", 2))) == []
    # A failure cleared by a success is not one: the Secret tells which request it answered.
    assert renewal.saw_token(token("a", consecutiveFailures=0)) == []
    [refused] = renewal.saw_token(token("a", **failed("InvalidCredentials", 2)))
    assert refused.ending is Ending.FAILED
    assert refused.text == "the operator could not renew the token: InvalidCredentials: HTTP 401"
    assert renewal.waiting == [("apps", "b")]
    assert renewal.unanswered(("apps", "b")) == (
        "Secret b-token holds no token for this refresh request yet (Ready=Unknown )"
    )
    [gone] = renewal.deleted(("apps", "b"))
    assert gone.ending is Ending.DELETED and renewal.waiting == []


# --- the bulk form against a fake API server ---------------------------------


Server = TypeVar("Server", bound=FakeKube)


def holding(kube: Server, tokens: list[dict[str, Any]], secrets: list[dict[str, Any]]) -> Server:
    """`kube`, an API server, now holding `tokens` and `secrets`."""
    for body in tokens:
        kube.tokens[(body["metadata"]["namespace"], body["metadata"]["name"])] = body
    for body in secrets:
        kube.secrets[(body["metadata"]["namespace"], body["metadata"]["name"])] = body
    return kube


def reacting(
    kube: FakeKube, answer: Callable[[dict[str, Any], str], list[tuple[str, dict[str, Any]]]]
) -> None:
    """Make `kube` send what the operator does when a token is annotated: the
    changes `answer` gives, to the watches of their kind."""

    def react(body: dict[str, Any]) -> None:
        for change, changed in answer(body, body["metadata"]["annotations"][ANNOTATION]):
            kube.send("secrets" if "data" in changed else "egaintokens", change, changed)

    kube.on_annotate = react


def run_many(kube: FakeKube, *argv: str, seconds: float = 5.0) -> tuple[int, list[str], str]:
    out: list[str] = []
    args = renew_args(*argv, "--timeout", str(seconds))
    selection = renew._selection(args)
    try:
        code = asyncio.run(
            renew._renew_many(kube, "apps", selection, seconds, out.append, lambda: NOW)
        )
        error = ""
    except command.CommandError as exc:
        code, error = exc.exit_code, str(exc)
    return code, out, error


def answered(body: dict[str, Any], request: str) -> list[tuple[str, dict[str, Any]]]:
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    return [("MODIFIED", managed_secret(f"{name}-token", namespace, request, value="t2"))]


def test_bulk_renew_lists_once_patches_each_and_watches_once() -> None:
    tokens = [token(f"t{i}") for i in range(40)]
    kube = holding(FakeKube(), tokens, [managed_secret(f"t{i}-token") for i in range(40)])
    reacting(kube, answered)

    code, out, error = run_many(kube, "--all")

    assert (code, error) == (command.EXIT_OK, "")
    assert [c.resource for c in kube.listed] == ["egaintokens", "secrets"]
    assert sorted(c.resource for c in kube.watched) == ["egaintokens", "secrets"]
    assert all(c.namespace == "apps" for c in kube.listed + kube.watched)
    assert kube.listed[1].label_selector == "app.kubernetes.io/managed-by=egain-token-operator"
    assert sorted(kube.annotated) == sorted(("apps", f"t{i}") for i in range(40))
    assert out[0].startswith(f"refresh requested ({ANNOTATION}=")
    assert "on 40 EgainTokens in namespace apps" in out[0]
    assert sum(": new token in Secret" in line for line in out) == 40
    assert out[-1] == "40 EgainToken(s): 40 renewed, 0 failed, 0 timed out"


def test_bulk_renew_a_refusal_outweighs_a_timeout() -> None:
    unnamed = token("unnamed")
    unnamed["spec"]["secretName"] = 5  # stored under a looser schema: no Secret to look at
    tokens = [token("good"), token("bad"), token("slow"), token("gone"), unnamed]
    kube = holding(FakeKube(), tokens, [])
    # Listed, then deleted before its refresh request is sent.
    kube.lists["egaintokens"] = [list(kube.tokens.values())]
    del kube.tokens[("apps", "gone")]

    def answer(body: dict[str, Any], request: str) -> list[tuple[str, dict[str, Any]]]:
        name = body["metadata"]["name"]
        if name == "good":
            return answered(body, request)
        if name == "bad":
            return [("MODIFIED", token("bad", **failed("InvalidCredentials")))]
        return []

    reacting(kube, answer)
    code, out, error = run_many(kube, "-l", "team=a", seconds=0.5)

    assert code == command.EXIT_NOT_READY and error == "2 EgainToken(s) could not be renewed"
    assert "apps/unnamed: EgainToken unnamed: spec.secretName must be a string" in out
    assert ("apps", "unnamed") not in kube.annotated
    assert kube.listed[0].label_selector == "team=a"
    assert "apps/gone: deleted meanwhile; nothing to renew" in out
    assert "apps/bad: the operator could not renew the token: InvalidCredentials: HTTP 401" in out
    assert (
        "apps/slow: timed out: Secret slow-token holds no token for this refresh request yet"
        " (Ready=Unknown )" in out
    )
    assert out[-1] == "5 EgainToken(s): 1 renewed, 2 failed, 1 timed out, 1 deleted meanwhile"

    kube = holding(FakeKube(), [token("slow")], [])
    code, out, error = run_many(kube, "--all", "-A", seconds=0.2)
    assert code == command.EXIT_TIMEOUT
    assert error.startswith("timed out after 0.2s: 1 EgainToken(s) not renewed yet")
    assert "serving namespace(s) apps?" in error
    assert kube.listed[0].namespace is None  # -A: every namespace


def test_bulk_renew_by_client_renews_only_its_tokens() -> None:
    cluster = ClientKey(ClientKind.CLUSTER_EGAIN_CLIENT, "", "portal")
    by_client = {"kind": "ClusterEgainClient", "name": "portal"}
    tokens = [
        token("mine", client_ref=by_client),
        token("local", client_ref={"name": "portal"}),  # an EgainClient of the same name
        token("inline"),
    ]
    kube = holding(FakeKube(), tokens, [])
    reacting(kube, answered)

    missing = run_many(kube, "--client", "cegc/portal")
    assert missing[0] == command.EXIT_NOT_FOUND
    assert missing[2] == 'ClusterEgainClient "portal" not found'

    kube.clients[cluster] = {"kind": "ClusterEgainClient", "metadata": {"name": "portal"}}
    code, out, _ = run_many(kube, "--client", "cegc/portal")
    assert code == command.EXIT_OK and kube.annotated == [("apps", "mine")]
    assert "on 1 EgainTokens using ClusterEgainClient/portal in namespace apps" in out[0]

    kube = holding(FakeKube(), [token("inline")], [])
    kube.clients[cluster] = {}
    code, out, _ = run_many(kube, "--client", "cegc/portal")
    assert code == command.EXIT_OK and kube.annotated == [] and kube.watched == []
    assert out == ["No EgainTokens using ClusterEgainClient/portal in namespace apps."]
