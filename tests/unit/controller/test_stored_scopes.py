"""An EgainToken or a client stored before the CRDs said scopes are visible ASCII:
the operator refuses it as InvalidSpec, naming the item without quoting it, and
sends nothing to eGain."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from egain_token_operator.controller.observe import TokenWorker
from egain_token_operator.decisions.clients import ClientKey
from tests.unit.controller.clients import (
    CLUSTER_CLIENT,
    EGAIN_CLIENT,
    client_body,
    credentials,
    token_body,
)
from tests.unit.controller.clients import look as look_through_client
from tests.unit.controller.clients import setup as setup_clients
from tests.unit.controller.support import BODY, controller, look, ready, setup

HOSTILE = ["read\x1b]52;c;cGF5bG9hZA==\x07", "read\x7f", "read\x9b31m", "no\u00a0break"]


@pytest.mark.parametrize("scope", HOSTILE)
def test_a_stored_token_scope_is_refused_and_nothing_is_sent(scope: str) -> None:
    kube, egain, clock = setup()
    body: dict[str, Any] = copy.deepcopy(BODY)
    body["spec"]["scopes"] = ["knowledge.portalmgr.manage", scope]
    kube.tokens[("ns", "portal")] = body
    made, events = controller(kube, egain, clock)
    look(made, TokenWorker(("ns", "portal"), body))
    assert egain.requests == 0
    assert ("ns", "portal") not in kube.secrets
    assert ready(kube) == ("False", "InvalidSpec")
    message = kube.statuses[-1]["conditions"][0]["message"]
    assert message.startswith("spec.scopes[1] must be visible ASCII (0x21-0x7E)")
    assert message.isascii() and message.isprintable()
    assert events == ["Warning InvalidSpec"]


@pytest.mark.parametrize(
    "key", [EGAIN_CLIENT, CLUSTER_CLIENT], ids=["EgainClient", "ClusterEgainClient"]
)
@pytest.mark.parametrize("scope", HOSTILE)
def test_a_stored_allowed_scope_is_refused_and_nothing_is_sent(scope: str, key: ClientKey) -> None:
    kube, egain, _, made, events = setup_clients()
    spec: dict[str, Any] = {"allowedScopes": ["knowledge.portalmgr.read", scope]}
    if not key.kind.namespaced:
        spec["allowedNamespaces"] = {"selector": {}}
    kube.clients[key] = client_body(key, **spec)
    kube.secrets[("team-a", "portal-client")] = credentials("team-a-id")
    kube.secrets[("egain-system", "portal-client")] = credentials("platform-id")
    look_through_client(made, token_body(kind=key.kind.value))
    assert egain.requests == 0
    assert ready(kube) == ("False", "InvalidSpec")
    message = kube.statuses[-1]["conditions"][0]["message"]
    assert ": spec.allowedScopes[1] must be visible ASCII (0x21-0x7E)" in message
    assert message.isascii() and message.isprintable()
    assert all(text.isascii() and text.isprintable() for _, _, text in events)
