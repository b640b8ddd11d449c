"""`spec.secretTemplate.data` and `spec.outputFormats` at admission: every refusal
names the field (and the key, where it can be printed), and no two outputs may
write the same key of the Secret."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.admission_support import VALID, assert_accepted, assert_rejected
from tests.e2e.support import Cluster, egain_token

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

EVERY_PLACEHOLDER = (
    "t=${accessToken} ${tokenType} ${authorization} $$ ${expiresAt}\n"
    "$${scope} is literal, and so is $$$$"
)


def _token(
    namespace: str, data: dict[str, str] | None = None, formats: list[Any] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = dict(VALID)
    if data is not None:
        spec["secretTemplate"] = {"data": data}
    if formats is not None:
        spec["outputFormats"] = formats
    return egain_token(namespace, "outputs", spec)


def test_admission_accepts_every_placeholder_dollars_and_every_format(
    cluster: Cluster, namespace: str
) -> None:
    data = {
        "config.yaml": EVERY_PLACEHOLDER,
        "ISSUED": "${issuedAt}${scope}",
        **{f"k{i}": "x" * 4096 for i in range(6)},
    }
    formats = [
        {"type": "DotEnv", "prefix": "APP_"},
        {"type": "JSON", "key": "config.json"},
        {"type": "EnvoyGatewayCredential"},
    ]
    assert_accepted(cluster, _token(namespace, data, formats))
    assert_accepted(cluster, _token(namespace, formats=[{"type": "DotEnv", "prefix": ""}]))


@pytest.mark.parametrize(
    "text",
    [
        "$",
        "cost: 5$",
        "$accessToken",
        "${accesstoken}",
        "${ accessToken}",
        "${accessToken",
        "${env:HOME}",
        "$(whoami)",
        "$$$",
    ],
)
def test_admission_refuses_any_other_dollar_naming_the_key(
    cluster: Cluster, namespace: str, text: str
) -> None:
    refusal = assert_rejected(
        cluster,
        _token(namespace, {"fine": "${scope}", "app.conf": text}),
        "spec.secretTemplate.data",
        "spec.secretTemplate.data[app.conf] holds a $ that is neither $$ nor",
    )
    assert "[fine]" not in refusal


def test_admission_refuses_more_than_four_placeholders_in_a_text(
    cluster: Cluster, namespace: str
) -> None:
    assert_accepted(cluster, _token(namespace, {"four": "${scope}" * 4 + "$${scope}"}))
    assert_rejected(
        cluster,
        _token(namespace, {"five": "${scope}" * 5}),
        "spec.secretTemplate.data[five] holds more than 4 placeholders",
    )


@pytest.mark.parametrize("key", ["has space", "a/b", ".", "..", "..x", "x" * 254, "esc\x1b[2J"])
def test_admission_refuses_a_data_key_that_is_not_a_secret_key(
    cluster: Cluster, namespace: str, key: str
) -> None:
    refusal = assert_rejected(
        cluster,
        _token(namespace, {key: "${accessToken}"}),
        "spec.secretTemplate.data keys must be Secret keys",
    )
    assert "\x1b" not in refusal


@pytest.mark.parametrize(
    "key", ["access_token", "token_type", "authorization", "expires_at", "scope"]
)
def test_admission_refuses_fixed_keys_in_data_and_as_a_format_key(
    cluster: Cluster, namespace: str, key: str
) -> None:
    assert_rejected(
        cluster,
        _token(namespace, {key: "${accessToken}"}),
        f"spec.secretTemplate.data[{key}] is one of the Secret's fixed keys",
    )
    assert_rejected(
        cluster,
        _token(namespace, formats=[{"type": "JSON", "key": key}]),
        "spec.outputFormats[0].key",
        f"spec.outputFormats[].key {key} is one of the Secret's fixed keys",
    )


def test_admission_bounds_the_number_and_length_of_texts(cluster: Cluster, namespace: str) -> None:
    assert_rejected(
        cluster,
        _token(namespace, {f"k{i}": "x" for i in range(9)}),
        "spec.secretTemplate.data",
        "must have at most 8 items",
    )
    assert_rejected(
        cluster,
        _token(namespace, {"long": "x" * 4097}),
        "spec.secretTemplate.data.long",
        "may not be more than 4096 bytes",
    )


def test_admission_refuses_duplicate_types_and_keys_among_formats(
    cluster: Cluster, namespace: str
) -> None:
    assert_rejected(
        cluster,
        _token(namespace, formats=[{"type": "JSON"}, {"type": "JSON", "key": "other.json"}]),
        "spec.outputFormats must list each type at most once",
    )
    assert_rejected(
        cluster,
        _token(namespace, formats=[{"type": "DotEnv", "key": "token.json"}, {"type": "JSON"}]),
        "spec.outputFormats must not write two formats to the same key",
    )
    assert_rejected(
        cluster,
        _token(namespace, formats=[{"type": "JSON"}] * 4),
        "spec.outputFormats",
        "must have at most 3 items",
    )


@pytest.mark.parametrize(
    ("format_", "key"),
    [({"type": "DotEnv"}, "egain.env"), ({"type": "JSON", "key": "app.conf"}, "app.conf")],
)
def test_admission_refuses_a_format_key_that_is_a_data_key(
    cluster: Cluster, namespace: str, format_: dict[str, str], key: str
) -> None:
    assert_rejected(
        cluster,
        _token(namespace, {key: "${accessToken}"}, [format_]),
        "spec.outputFormats",
        f"spec.outputFormats: key {key} is also a key of spec.secretTemplate.data",
    )


def test_admission_refuses_a_bad_format_type_key_or_prefix(
    cluster: Cluster, namespace: str
) -> None:
    assert_rejected(
        cluster, _token(namespace, formats=[{"type": "Yaml"}]), "spec.outputFormats[0].type"
    )
    assert_rejected(
        cluster,
        _token(namespace, formats=[{"type": "JSON", "key": "a/b"}]),
        "spec.outputFormats[0].key",
    )
    assert_rejected(
        cluster,
        _token(namespace, formats=[{"type": "JSON", "prefix": "APP_"}]),
        "spec.outputFormats[0].prefix",
        "spec.outputFormats[].prefix is for type DotEnv only",
    )
    for prefix in ["1APP_", "APP-", "A B", "x" * 65]:
        assert_rejected(
            cluster,
            _token(namespace, formats=[{"type": "DotEnv", "prefix": prefix}]),
            "spec.outputFormats[0].prefix",
        )
