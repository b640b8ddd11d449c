"""Scopes are visible ASCII (0x21-0x7E), in EgainTokens and in clients' allowedScopes:
the operator refuses any other as InvalidSpec, naming the item without quoting it,
by the same rule and bounds as the CRDs' schemas."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from egain_token_operator.decisions.clients import ClientKind, parse_client
from egain_token_operator.decisions.schema import InvalidSpecError, scope_list
from egain_token_operator.decisions.tokenspec import parse_spec

CRDS = Path(__file__).resolve().parents[3] / "crds"

INLINE = {
    "tokenUrl": "https://ai.egain.cloud/system/auth/T-U/oauth2/token",
    "credentialsSecretRef": {"name": "c"},
}

# What a tenant could have stored before the CRDs said visible ASCII.
REFUSED = {
    "ESC": "read\x1b[2J",
    "BEL": "read\x07",
    "DEL": "read\x7f",
    "C1 CSI": "read\x9b31m",
    "NEL": "read\x85",
    "no-break space": "no\u00a0break",
    "line separator": "two\u2028lines",
    "right-to-left override": "read\u202e",
    "space": "two words",
    "tab": "tab\there",
    "non-ASCII letter": "lecture.portée",
}


def client(kind: ClientKind, allowed: list[Any]) -> dict[str, Any]:
    metadata = {"name": "portal", "namespace": "team-a"} if kind.namespaced else {"name": "portal"}
    spec: dict[str, Any] = {**INLINE, "allowedScopes": allowed}
    if not kind.namespaced:
        spec["allowedNamespaces"] = {"selector": {}}
    return {"kind": kind.value, "metadata": metadata, "spec": spec}


def refusal(parse: Any) -> str:
    with pytest.raises(InvalidSpecError) as refused:
        parse()
    return str(refused.value)


@pytest.mark.parametrize("scope", REFUSED.values(), ids=REFUSED.keys())
def test_a_token_scope_that_is_not_visible_ascii_is_refused_by_its_item(scope: str) -> None:
    message = refusal(lambda: parse_spec("t", {**INLINE, "scopes": ["ok", scope]}))
    assert message.startswith("spec.scopes[1] must be visible ASCII (0x21-0x7E)")
    # Named, never quoted: the message goes to statuses, Events and terminals.
    assert message.isascii() and message.isprintable()


@pytest.mark.parametrize("kind", list(ClientKind))
@pytest.mark.parametrize("scope", REFUSED.values(), ids=REFUSED.keys())
def test_an_allowed_scope_that_is_not_visible_ascii_is_refused_by_its_item(
    kind: ClientKind, scope: str
) -> None:
    message = refusal(lambda: parse_client(kind, client(kind, ["ok", scope]), "egain-system"))
    assert message.startswith("spec.allowedScopes[1] must be visible ASCII (0x21-0x7E)")
    assert message.isascii() and message.isprintable()


def test_visible_ascii_is_every_scope_character_and_the_only_one() -> None:
    every = "".join(chr(c) for c in range(0x21, 0x7F))
    scopes = ["https://api.ai.egain.cloud/auth/knowledge.portalmgr.read", every, "s" * 512]
    assert parse_spec("t", {**INLINE, "scopes": scopes}).scopes == tuple(scopes)
    parsed = parse_client(ClientKind.EGAIN_CLIENT, client(ClientKind.EGAIN_CLIENT, scopes), "x")
    assert parsed.allowed_scopes == tuple(scopes)
    for code in [*range(0x21), *range(0x7F, 0x100), 0x2028, 0x3000, 0xFEFF]:
        with pytest.raises(InvalidSpecError, match=r"spec\.scopes\[0\] must be visible ASCII"):
            scope_list([f"s{chr(code)}"], "spec.scopes", 64)


@pytest.mark.parametrize(
    "scopes", [["ok", ""], ["ok", "s" * 513], ["ok", 5]], ids=["empty", "too long", "not text"]
)
def test_the_bounds_of_a_scope_name_the_item(scopes: list[Any]) -> None:
    message = refusal(lambda: parse_spec("t", {**INLINE, "scopes": scopes}))
    assert message == "spec.scopes[1] must be a string of 1 to 512 characters"


def _scope_items(crd: str, field: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The schema of `spec.<field>` in the CRD file `crd`, and of its items."""
    loaded = yaml.safe_load((CRDS / crd).read_text())
    schema = loaded["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    array: dict[str, Any] = schema["properties"]["spec"]["properties"][field]
    return array, array["items"]


@pytest.mark.parametrize(
    ("crd", "field", "most"),
    [
        ("egaintokens.egain.cloud.yaml", "scopes", 64),
        ("egainclients.egain.cloud.yaml", "allowedScopes", 256),
        ("clusteregainclients.egain.cloud.yaml", "allowedScopes", 256),
    ],
)
def test_the_crds_refuse_at_admission_what_the_operator_refuses(
    crd: str, field: str, most: int
) -> None:
    array, items = _scope_items(crd, field)
    assert (array["minItems"], array["maxItems"]) == (1, most)
    assert (items["minLength"], items["maxLength"]) == (1, 512)
    [rule] = items["x-kubernetes-validations"]
    # The message names the field: the API server prefixes the item's path.
    assert rule["message"].startswith(f"spec.{field} items must be visible ASCII (0x21-0x7E)")
    # Refused: a scope holding a character the pattern matches. CEL's regular
    # expressions are RE2's; an unanchored character class reads the same in re.
    matched = re.fullmatch(r"!self\.matches\('(\[[^']+\])'\)", rule["rule"])
    assert matched is not None, rule["rule"]
    pattern = re.compile(matched.group(1))
    for code in [*range(0x3000), 0xFEFF, 0xFFFD, 0x1F600, 0xE0001, 0x10FFFF]:
        character = chr(code)
        try:
            scope_list([character], "spec.x", 1)
            operator_accepts = True
        except InvalidSpecError:
            operator_accepts = False
        assert (pattern.search(character) is None) is operator_accepts, hex(code)


@pytest.mark.parametrize(
    "prefix",
    [*(f"https://x.example/{scope}/" for scope in REFUSED.values()), "http://x.example/", "x/"],
    ids=[*REFUSED.keys(), "http", "relative"],
)
def test_a_scope_prefix_not_https_and_visible_ascii_is_refused(prefix: str) -> None:
    spec = {**INLINE, "flow": "AnonymousCustomer", "tenantId": "T", "scopes": ["s"]}
    message = refusal(lambda: parse_spec("t", {**spec, "scopePrefix": prefix}))
    assert message.startswith(
        "spec.scopePrefix must be https:// followed by visible ASCII (0x21-0x7E)"
    )
    assert message.isascii() and message.isprintable()


def test_the_crds_refuse_at_admission_the_scope_prefix_the_operator_refuses() -> None:
    every = "".join(chr(c) for c in range(0x21, 0x7F))
    spec = {**INLINE, "flow": "AnonymousCustomer", "tenantId": "T", "scopes": ["s"]}
    for crd in CRDS.glob("*.yaml"):
        loaded = yaml.safe_load(crd.read_text())
        schema = loaded["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        field = schema["properties"]["spec"]["properties"]["scopePrefix"]
        [rule] = field["x-kubernetes-validations"]
        assert rule["message"].startswith("spec.scopePrefix must be https:// followed by")
        matched = re.fullmatch(r"self\.matches\('(\^[^']+\$)'\)", rule["rule"])
        assert matched is not None, rule["rule"]
        pattern = re.compile(matched.group(1))
        for prefix in ["https://", f"https://{every}", "https://x/\x7f", "https://x/\u00a0"]:
            try:
                parse_spec("t", {**spec, "scopePrefix": prefix})
                operator_accepts = True
            except InvalidSpecError:
                operator_accepts = False
            assert (pattern.search(prefix) is not None) is operator_accepts, (crd.name, prefix)
        assert field["maxLength"] == 512
        parse_spec("t", {**spec, "scopePrefix": "https://" + "x" * 504})
        refusal(lambda: parse_spec("t", {**spec, "scopePrefix": "https://" + "x" * 505}))
