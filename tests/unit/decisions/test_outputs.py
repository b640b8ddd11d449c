"""The Secret's extra keys: `secretTemplate.data` rendered by substitution only,
and the DotEnv, JSON and EnvoyGatewayCredential formats, each read back by its
reader as exactly the token's values."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dotenv import dotenv_values

from egain_token_operator.decisions.outputs import (
    MAX_DATA_ENTRIES,
    MAX_PLACEHOLDERS_PER_TEXT,
    MAX_TEXT_LENGTH,
    parse_outputs,
    rendered_keys,
)
from egain_token_operator.decisions.render import Owner, render_secret, secret_is_current
from egain_token_operator.decisions.schedule import StoredToken
from egain_token_operator.decisions.schema import InvalidSpecError
from egain_token_operator.decisions.tokenspec import parse_spec
from egain_token_operator.egain.request import (
    ClientCredentials,
    CredentialsOrigin,
    build_request,
)

NOW = datetime(2026, 11, 23, 21, 10, tzinfo=UTC)
TOKEN = StoredToken(
    access_token="eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl",
    token_type="Bearer",
    scopes=("knowledge.portalmgr.read", "https://api.egain.cloud/auth/.default"),
    issued_at=NOW,
    expires_at=NOW + timedelta(hours=1),
    fingerprint="f" * 64,
    refresh_request=None,
)
# Every character the brief names, where a token can hold it (response.py: the
# access token is visible ASCII and space, its type an HTTP token).
HOSTILE = {
    "double quote": replace(TOKEN, access_token='abc"def"'),
    "single quote": replace(TOKEN, access_token="it's", token_type="O'Auth"),
    "equals": replace(TOKEN, access_token="a=b==", token_type="x=y"),
    "hash": replace(TOKEN, access_token="a#b", token_type="#Tok#"),
    "backslash": replace(TOKEN, access_token="a\\nb\\", token_type="B\\"),
    "spaces": replace(TOKEN, access_token="a b  c"),
    "all at once": replace(TOKEN, access_token='x"\'=#\\ y z="', token_type="T'#=!"),
    "no scopes": replace(TOKEN, scopes=()),
}
VALUES = {
    "ACCESS_TOKEN": "access_token",
    "TOKEN_TYPE": "token_type",
    "AUTHORIZATION": "authorization",
    "EXPIRES_AT": "expires_at",
    "ISSUED_AT": "issued_at",
    "SCOPE": "scope",
}
FORMATS = {
    "outputFormats": [{"type": "DotEnv"}, {"type": "JSON"}, {"type": "EnvoyGatewayCredential"}]
}


def _original(token: StoredToken) -> dict[str, str]:
    return {
        "access_token": token.access_token,
        "token_type": token.token_type,
        "authorization": f"{token.token_type} {token.access_token}",
        "expires_at": "2026-11-23T22:10:00Z",
        "issued_at": "2026-11-23T21:10:00Z",
        "scope": " ".join(token.scopes),
    }


def docker_env_file(text: str) -> dict[str, str]:
    """`text` read as Docker's `--env-file` reads it (docker/cli opts/parse.go):
    per line, leading whitespace trimmed; empty lines and lines starting with `#`
    skipped; the name is what precedes the first `=` and must hold no whitespace;
    the value is everything after it, taken literally: no unquoting, no escapes."""
    variables = {}
    for line in text.removeprefix("\ufeff").splitlines():
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        assert name and not any(c.isspace() for c in name), line
        variables[name] = value
    return variables


def outputs(spec: dict[str, Any]) -> Any:
    return parse_outputs(spec)


def render(token: StoredToken, spec: dict[str, Any]) -> dict[str, str]:
    return rendered_keys(token, parse_outputs(spec))


def test_each_placeholder_and_dollars_render_by_substitution() -> None:
    texts = {
        "a": "${accessToken}",
        "t": "${tokenType}",
        "h": "Authorization: ${authorization}",
        "e": "${expiresAt}",
        "i": "${issuedAt}",
        "s": "[${scope}]",
        "d": "$$ $$$$ $${accessToken} cost: 5$$",
        "plain": "no placeholders {here}\n",
    }
    assert render(TOKEN, {"secretTemplate": {"data": texts}}) == {
        "a": TOKEN.access_token,
        "t": "Bearer",
        "h": f"Authorization: Bearer {TOKEN.access_token}",
        "e": "2026-11-23T22:10:00Z",
        "i": "2026-11-23T21:10:00Z",
        "s": "[knowledge.portalmgr.read https://api.egain.cloud/auth/.default]",
        "d": "$ $$ ${accessToken} cost: 5$",
        "plain": "no placeholders {here}\n",
    }


def test_a_value_holding_placeholder_syntax_is_not_expanded_again() -> None:
    token = replace(TOKEN, access_token="${tokenType}$$")
    assert render(token, {"secretTemplate": {"data": {"k": "${accessToken}"}}}) == {
        "k": "${tokenType}$$"
    }


@pytest.mark.parametrize(
    "text",
    [
        "$",
        "5$",
        "$accessToken",
        "${accesstoken}",
        "${ accessToken}",
        "${accessToken",
        "${env:X}",
        "$(id)",
        "$$$",
    ],
)
def test_any_other_dollar_is_refused_naming_the_key(text: str) -> None:
    with pytest.raises(InvalidSpecError) as refused:
        outputs({"secretTemplate": {"data": {"ok": "$$", "app.conf": text}}})
    assert str(refused.value) == (
        "spec.secretTemplate.data[app.conf] holds a $ that is neither $$ nor a placeholder"
    )


def test_text_bounds() -> None:
    most = "${scope}" * MAX_PLACEHOLDERS_PER_TEXT
    outputs({"secretTemplate": {"data": {"k": most + "x" * (MAX_TEXT_LENGTH - len(most))}}})
    with pytest.raises(InvalidSpecError, match=r"data\[k\] must hold at most 4 placeholders"):
        outputs({"secretTemplate": {"data": {"k": most + "${scope}"}}})
    with pytest.raises(InvalidSpecError, match=r"data\[k\] must be at most 4096 characters"):
        outputs({"secretTemplate": {"data": {"k": "x" * (MAX_TEXT_LENGTH + 1)}}})
    many = {f"k{i}": "" for i in range(MAX_DATA_ENTRIES + 1)}
    with pytest.raises(InvalidSpecError, match="must hold at most 8 keys"):
        outputs({"secretTemplate": {"data": many}})


@pytest.mark.parametrize("key", ["", "a b", "a/b", ".", "..", "..x", "x" * 254, "esc\x1b[2J"])
def test_a_key_that_is_not_a_secret_key_is_refused_without_echoing_it(key: str) -> None:
    with pytest.raises(InvalidSpecError) as refused:
        outputs({"secretTemplate": {"data": {key: "x"}}})
    assert str(refused.value).startswith("spec.secretTemplate.data: a key must be a Secret key")
    with pytest.raises(InvalidSpecError) as refused:
        outputs({"outputFormats": [{"type": "JSON", "key": key}]})
    assert str(refused.value).startswith("spec.outputFormats[0].key must be a Secret key")


@pytest.mark.parametrize(
    "key", ["access_token", "token_type", "authorization", "expires_at", "scope"]
)
def test_the_fixed_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidSpecError, match=f"data: a key {key} is one of the Secret's fixed"):
        outputs({"secretTemplate": {"data": {key: "x"}}})
    with pytest.raises(InvalidSpecError, match=rf"\[0\].key {key} is one of the Secret's fixed"):
        outputs({"outputFormats": [{"type": "DotEnv", "key": key}]})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"secretTemplate": {"data": ["x"]}}, "spec.secretTemplate.data must map strings"),
        ({"secretTemplate": {"data": {"k": 1}}}, "spec.secretTemplate.data must map strings"),
        ({"outputFormats": {"type": "JSON"}}, "spec.outputFormats must list at most 3"),
        ({"outputFormats": [{"type": "JSON"}] * 4}, "spec.outputFormats must list at most 3"),
        ({"outputFormats": ["JSON"]}, r"spec.outputFormats\[0\] must be an object"),
        ({"outputFormats": [{"type": "Yaml"}]}, r"\[0\].type must be DotEnv, JSON or Envoy"),
        ({"outputFormats": [{}]}, r"\[0\].type must be DotEnv, JSON or Envoy"),
        (
            {"outputFormats": [{"type": "JSON", "prefix": "A_"}]},
            r"\[0\].prefix is for DotEnv only",
        ),
        *(
            ({"outputFormats": [{"type": "DotEnv", "prefix": p}]}, r"\[0\].prefix must be")
            for p in ["1A", "A-", "A B", "x" * 65, 5]
        ),
        (
            {"outputFormats": [{"type": "JSON"}, {"type": "JSON", "key": "b.json"}]},
            r"spec.outputFormats\[1\].type JSON is listed twice",
        ),
        (
            {"outputFormats": [{"type": "DotEnv", "key": "token.json"}, {"type": "JSON"}]},
            r"spec.outputFormats\[1\].key token.json is another key of the Secret",
        ),
        (
            {
                "secretTemplate": {"data": {"credential": ""}},
                **{"outputFormats": [{"type": "EnvoyGatewayCredential"}]},
            },
            r"spec.outputFormats\[0\].key credential is another key of the Secret",
        ),
    ],
)
def test_format_refusals_name_the_field(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpecError, match=message):
        outputs(spec)


def test_a_spec_with_bad_outputs_cannot_be_served() -> None:
    spec = {
        "tokenUrl": "https://ai.egain.cloud/system/auth/T-U/oauth2/token",
        "scopes": ["s"],
        "credentialsSecretRef": {"name": "c"},
        "secretTemplate": {"data": {"k": "${password}"}},
    }
    with pytest.raises(InvalidSpecError, match=r"data\[k\] holds a \$"):
        parse_spec("t", spec)


@pytest.mark.parametrize("token", HOSTILE.values(), ids=HOSTILE.keys())
def test_dotenv_reads_back_exactly_with_python_dotenv_and_docker(token: StoredToken) -> None:
    text = render(token, {"outputFormats": [{"type": "DotEnv"}]})["egain.env"]
    wanted = {f"EGAIN_{name}": _original(token)[value] for name, value in VALUES.items()}
    assert dotenv_values(stream=io.StringIO(text)) == wanted
    assert docker_env_file(text) == wanted
    assert list(docker_env_file(text)) == list(wanted)  # one line per value, in this order


@pytest.mark.parametrize("access_token", ['"starts quoted"', "'single'", "a #comment", "a ${HOME}"])
def test_the_documented_limit_of_the_dotenv_format(access_token: str) -> None:
    """Values written as they are: Docker reads them back exactly, always; python-dotenv
    differs for exactly the values docs/api.md lists (a leading quote, a blank before
    `#`, a `${`), which no eGain token holds."""
    token = replace(TOKEN, access_token=access_token)
    text = render(token, {"outputFormats": [{"type": "DotEnv"}]})["egain.env"]
    assert docker_env_file(text)["EGAIN_ACCESS_TOKEN"] == access_token
    assert dotenv_values(stream=io.StringIO(text)).get("EGAIN_ACCESS_TOKEN") != access_token


def test_dotenv_prefix() -> None:
    text = render(TOKEN, {"outputFormats": [{"type": "DotEnv", "prefix": "APP_", "key": "a.env"}]})[
        "a.env"
    ]
    assert list(docker_env_file(text)) == [f"APP_{name}" for name in VALUES]
    bare = render(TOKEN, {"outputFormats": [{"type": "DotEnv", "prefix": ""}]})["egain.env"]
    assert list(docker_env_file(bare)) == list(VALUES)


@pytest.mark.parametrize("token", HOSTILE.values(), ids=HOSTILE.keys())
def test_json_and_credential_read_back_equal(token: StoredToken) -> None:
    keys = render(token, FORMATS)
    original = _original(token)
    assert json.loads(keys["token.json"]) == {
        "accessToken": original["access_token"],
        "tokenType": original["token_type"],
        "authorization": original["authorization"],
        "expiresAt": original["expires_at"],
        "issuedAt": original["issued_at"],
        "scopes": list(token.scopes),
    }
    assert keys["credential"] == original["authorization"]
    assert list(keys) == ["egain.env", "token.json", "credential"]


def test_the_secret_fits_for_the_largest_token_the_bounds_promise() -> None:
    """The documented bound: with the most the schema lets a tenant ask for, the
    Secret's data stays under the API server's 1 MiB for every token whose access
    token and type together, and whose scope, are each 16 KiB; escaping at its worst."""
    budget = 16 * 1024
    token = replace(
        TOKEN,
        access_token='"' * (budget - len("Bearer")),
        scopes=('"',) * (budget // 2),
    )
    assert len(" ".join(token.scopes)) < budget
    most = "${authorization}" * MAX_PLACEHOLDERS_PER_TEXT
    texts = {f"k{i}": most + "x" * (MAX_TEXT_LENGTH - len(most)) for i in range(MAX_DATA_ENTRIES)}
    prefixed = [
        {"type": "DotEnv", "prefix": "P" * 64},
        {"type": "JSON"},
        {"type": "EnvoyGatewayCredential"},
    ]
    spec = {"secretTemplate": {"data": texts}, "outputFormats": prefixed}
    secret = render_secret(token, _spec(spec), Owner("ns", "t", "uid"))
    size = sum(len(base64.b64decode(value)) for value in secret["data"].values())
    assert size == 786_599
    assert size < 1024 * 1024


def _spec(change: dict[str, Any]) -> Any:
    return parse_spec(
        "t",
        {
            "tokenUrl": "https://ai.egain.cloud/system/auth/T-U/oauth2/token",
            "scopes": ["s"],
            "credentialsSecretRef": {"name": "c"},
            **change,
        },
    )


def test_secret_is_current_covers_the_rendered_keys() -> None:
    owner = Owner("ns", "t", "uid")
    spec = _spec({"secretTemplate": {"data": {"a.conf": "t=${accessToken}"}}, **FORMATS})
    secret = render_secret(TOKEN, spec, owner)
    assert set(secret["data"]) == {
        "access_token",
        "token_type",
        "authorization",
        "expires_at",
        "scope",
        "a.conf",
        "egain.env",
        "token.json",
        "credential",
    }
    assert secret_is_current(secret, TOKEN, spec, owner)
    edited = {**secret, "data": {**secret["data"], "credential": base64.b64encode(b"x").decode()}}
    assert not secret_is_current(edited, TOKEN, spec, owner)
    # A key the spec no longer asks for makes the Secret stale, and is not written again.
    fewer = _spec({"outputFormats": [{"type": "JSON"}]})
    assert not secret_is_current(secret, TOKEN, fewer, owner)
    rewritten = render_secret(TOKEN, fewer, owner, existing=secret)
    assert "egain.env" not in rewritten["data"] and "a.conf" not in rewritten["data"]
    assert secret_is_current(rewritten, TOKEN, fewer, owner)


def test_the_outputs_are_not_part_of_the_request() -> None:
    """Changing them rewrites the Secret from the token held: the fingerprint and
    the sharing key stay, so no token is requested and sharers stay together."""
    origin = CredentialsOrigin("ns", "c", "uid", "1", "client_id", "client_secret")
    credentials = ClientCredentials("id", "secret", origin)
    plain = build_request(_spec({}), credentials)
    shaped = build_request(
        _spec({"secretTemplate": {"data": {"k": "${accessToken}"}}, **FORMATS}), credentials
    )
    assert shaped.fingerprint == plain.fingerprint
    assert shaped.sharing_key == plain.sharing_key
