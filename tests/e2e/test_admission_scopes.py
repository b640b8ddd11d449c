"""Scopes are visible ASCII (0x21-0x7E), at admission: nothing a tenant writes there
may drive the terminal that prints a refusal, a status or an Event quoting it."""

from __future__ import annotations

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

NOT_VISIBLE_ASCII = {
    "ESC": "read\x1b[2J",
    "BEL": "read\x07",
    "DEL": "read\x7f",
    "C1 CSI": "read\x9b31m",
    "no-break space": "no\u00a0break",
    "line separator": "two\u2028lines",
}
EVERY_VISIBLE_ASCII = "".join(chr(c) for c in range(0x21, 0x7F))


def _with_scopes(kind: str, namespace: str, scopes: list[str]) -> dict[str, Any]:
    """An otherwise valid object of `kind` whose scopes (or allowedScopes) are `scopes`."""
    if kind == "EgainToken":
        return egain_token(namespace, "scopes", {**VALID, "scopes": scopes})
    if kind == "EgainClient":
        return egain_client(namespace, "scopes", {**VALID_CLIENT, "allowedScopes": scopes})
    spec = {**VALID_CLIENT, **ALL_NAMESPACES, "allowedScopes": scopes}
    return cluster_egain_client(f"scopes-{namespace}", spec)


def _with_scope_prefix(kind: str, namespace: str, prefix: str) -> dict[str, Any]:
    """An otherwise valid AnonymousCustomer object of `kind` with `scopePrefix: prefix`."""
    # The AnonymousCustomer flow's own token URL (the default), with a tenant.
    anonymous = {"flow": "AnonymousCustomer", "tenantId": "T1", "tokenUrl": None}
    change = {**anonymous, "scopePrefix": prefix}
    if kind == "EgainToken":
        return egain_token(namespace, "prefix", merged(VALID, change))
    if kind == "EgainClient":
        return egain_client(namespace, "prefix", merged(VALID_CLIENT, change))
    spec = merged({**VALID_CLIENT, **ALL_NAMESPACES}, change)
    return cluster_egain_client(f"prefix-{namespace}", spec)


@pytest.mark.parametrize("scope", NOT_VISIBLE_ASCII.values(), ids=NOT_VISIBLE_ASCII.keys())
@pytest.mark.parametrize("kind", ["EgainToken", "EgainClient", "ClusterEgainClient"])
def test_admission_rejects_scopes_that_are_not_visible_ascii(
    cluster: Cluster, namespace: str, kind: str, scope: str
) -> None:
    field = "spec.scopes" if kind == "EgainToken" else "spec.allowedScopes"
    manifest = _with_scopes(kind, namespace, ["knowledge.portalmgr.read", scope])
    refusal = assert_rejected(
        cluster, manifest, f"{field}[1]", f"{field} items must be visible ASCII (0x21-0x7E)"
    )
    # The refusal names the item; it does not hand the character back to the terminal.
    assert all(c not in refusal for c in scope if not c.isprintable()), refusal


@pytest.mark.parametrize("kind", ["EgainToken", "EgainClient", "ClusterEgainClient"])
def test_admission_accepts_every_visible_ascii_character_in_scopes(
    cluster: Cluster, namespace: str, kind: str
) -> None:
    scopes = ["knowledge.portalmgr.read", "https://x.example/s?a=1", EVERY_VISIBLE_ASCII]
    assert_accepted(cluster, _with_scopes(kind, namespace, scopes))


@pytest.mark.parametrize(
    "prefix",
    [*(f"https://api.example/{scope}/" for scope in NOT_VISIBLE_ASCII.values()), "http://x/"],
    ids=[*NOT_VISIBLE_ASCII.keys(), "http"],
)
@pytest.mark.parametrize("kind", ["EgainToken", "EgainClient", "ClusterEgainClient"])
def test_admission_rejects_a_scope_prefix_not_https_and_visible_ascii(
    cluster: Cluster, namespace: str, kind: str, prefix: str
) -> None:
    manifest = _with_scope_prefix(kind, namespace, prefix)
    refusal = assert_rejected(
        cluster,
        manifest,
        "spec.scopePrefix",
        "spec.scopePrefix must be https:// followed by visible ASCII (0x21-0x7E)",
    )
    assert all(c not in refusal for c in prefix if not c.isprintable()), refusal


@pytest.mark.parametrize("kind", ["EgainToken", "EgainClient", "ClusterEgainClient"])
def test_admission_accepts_a_scope_prefix_of_every_visible_ascii_character(
    cluster: Cluster, namespace: str, kind: str
) -> None:
    assert_accepted(cluster, _with_scope_prefix(kind, namespace, f"https://{EVERY_VISIBLE_ASCII}"))
