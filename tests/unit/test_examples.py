"""The examples no API server of the test ground can check (tests/e2e/test_examples.py
applies or dry-runs the others): what they read is what the operator writes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import dotenv
import yaml

from egain_token_operator.decisions.outputs import (
    DEFAULT_KEYS,
    FormatType,
    parse_outputs,
    rendered_keys,
)
from tests.markdown import REPO
from tests.unit.samples import token as stored_token

EXAMPLES = REPO / "examples"

# Envoy Gateway's HTTPRouteFilter (gateway.envoyproxy.io/v1alpha1), as its source
# declares it: github.com/envoyproxy/gateway, api/v1alpha1/httproutefilter_types.go
# (HTTPRouteFilterSpec, HTTPCredentialInjectionFilter, InjectedCredential, and
# InjectedCredentialKey = "credential"); `valueRef` is a Gateway API
# SecretObjectReference (sigs.k8s.io/gateway-api apis/v1).
ROUTE_FILTER_SPEC = {
    "urlRewrite",
    "directResponse",
    "credentialInjection",
    "requestMirror",
    "matches",
}
CREDENTIAL_INJECTION = {"header", "overwrite", "credential"}
INJECTED_CREDENTIAL = {"valueRef"}
SECRET_OBJECT_REFERENCE = {"group", "kind", "name", "namespace"}
INJECTED_CREDENTIAL_KEY = "credential"


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]


def outputs_token() -> dict[str, Any]:
    """The EgainToken of examples/outputs.yaml, whose Secret the other examples read."""
    [token] = [d for d in documents("outputs.yaml") if d["kind"] == "EgainToken"]
    return token


def written_keys(token: dict[str, Any]) -> dict[FormatType, str]:
    """Each format's key in the token's Secret, as the operator reads the spec."""
    return {output.type: output.key for output in parse_outputs(token["spec"]).formats}


def test_the_envoy_gateway_filter_reads_the_credential_key() -> None:
    token = outputs_token()
    route_filter, route = documents("envoy-gateway-credential.yaml")
    assert route_filter["apiVersion"] == "gateway.envoyproxy.io/v1alpha1"
    assert route_filter["kind"] == "HTTPRouteFilter"
    spec = route_filter["spec"]
    assert set(spec) <= ROUTE_FILTER_SPEC
    injection = spec["credentialInjection"]
    assert set(injection) <= CREDENTIAL_INJECTION and "credential" in injection
    assert isinstance(injection["overwrite"], bool) and injection["header"] == "Authorization"
    assert set(injection["credential"]) == INJECTED_CREDENTIAL
    value_ref = injection["credential"]["valueRef"]
    assert set(value_ref) <= SECRET_OBJECT_REFERENCE
    # The Secret the EgainToken writes (secretName defaults to its name), in its namespace.
    assert value_ref["name"] == token["spec"].get("secretName", token["metadata"]["name"])
    assert route_filter["metadata"]["namespace"] == token["metadata"]["namespace"]
    # Envoy Gateway reads the one key it names; the format writes it by default.
    assert written_keys(token)[FormatType.ENVOY_GATEWAY_CREDENTIAL] == INJECTED_CREDENTIAL_KEY
    assert DEFAULT_KEYS[FormatType.ENVOY_GATEWAY_CREDENTIAL] == INJECTED_CREDENTIAL_KEY
    # The route uses the filter, as Gateway API's ExtensionRef names it.
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1" and route["kind"] == "HTTPRoute"
    [rule] = route["spec"]["rules"]
    assert rule["filters"] == [
        {
            "type": "ExtensionRef",
            "extensionRef": {
                "group": "gateway.envoyproxy.io",
                "kind": "HTTPRouteFilter",
                "name": route_filter["metadata"]["name"],
            },
        }
    ]


def test_the_dotenv_consumer_reads_what_the_dotenv_format_writes(tmp_path: Path) -> None:
    token = outputs_token()
    [pod] = documents("dotenv-consumer.yaml")
    [volume] = pod["spec"]["volumes"]
    [container] = pod["spec"]["containers"]
    [mount] = container["volumeMounts"]
    assert volume["secret"]["secretName"] == token["metadata"]["name"]
    [item] = volume["secret"]["items"]
    assert item["key"] == written_keys(token)[FormatType.DOTENV]
    script = container["command"][-1]
    path = f"{mount['mountPath']}/{item['path']}"
    assert f'dotenv_values("{path}")' in script
    # The python-dotenv the tests parse the format back with.
    pinned = re.search(r'"python-dotenv==([^"]+)"', (REPO / "pyproject.toml").read_text())
    assert pinned and f"python-dotenv=={pinned[1]}" in script

    # Every name the program reads is in the file the operator writes.
    env_file = tmp_path / "egain.env"
    env_file.write_text(rendered_keys(stored_token(), parse_outputs(token["spec"]))[item["key"]])
    values = dotenv.dotenv_values(env_file)
    read = re.findall(r'env\["([A-Z_]+)"\]', script)
    assert read and all(values.get(name) for name in read)


def test_every_example_is_tested() -> None:
    # Each example file (or its directory) is named in one of the two modules, which
    # apply it, dry-run it or check it.
    tests = (REPO / "tests" / "e2e" / "test_examples.py").read_text() + Path(__file__).read_text()
    untested = [
        name
        for name in sorted(path.relative_to(EXAMPLES).parts[0] for path in EXAMPLES.rglob("*.yaml"))
        if f'"{name}"' not in tests
    ]
    assert untested == []
