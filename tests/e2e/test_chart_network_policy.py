"""The chart's optional NetworkPolicy, rendered: what it lets in and out, and when it is refused.

These tests read the rendered object only. `test_chart_render.py` sends it to
the test ground's API server (scenario "network-policy", `kubectl apply
--dry-run=server`), which validates it against the real schema. Whether a CNI
enforces it is not tested: the test ground's bridge plugin enforces no
NetworkPolicy.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.e2e.chart_support import (
    SCENARIOS,
    Manifest,
    materialise,
    of_kind,
    operator_container,
    render_without_cluster,
)

pytestmark = pytest.mark.e2e

VALUES = materialise(SCENARIOS["network-policy"], "np")
POLICY_VALUES: dict[str, Any] = VALUES["networkPolicy"]


def rendered(values: dict[str, Any]) -> tuple[Manifest, list[Manifest]]:
    manifests = render_without_cluster(values, release="r", namespace="egain")
    (policy,) = of_kind(manifests, "NetworkPolicy")
    return policy, manifests


def ports(rule: dict[str, Any]) -> set[tuple[str | int, str]]:
    return {(port["port"], port.get("protocol", "TCP")) for port in rule["ports"]}


def cidrs(rule: dict[str, Any]) -> list[str]:
    return [peer["ipBlock"]["cidr"] for peer in rule["to"]]


def test_off_by_default() -> None:
    assert of_kind(render_without_cluster({}), "NetworkPolicy") == []


def test_selects_the_operator_pods_in_both_directions() -> None:
    policy, manifests = rendered(VALUES)
    (deployment,) = of_kind(manifests, "Deployment")
    assert policy["metadata"]["namespace"] == "egain"
    assert policy["spec"]["podSelector"] == deployment["spec"]["selector"]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]


def test_ingress_only_to_the_metrics_and_health_ports() -> None:
    policy, manifests = rendered(VALUES)
    (rule,) = policy["spec"]["ingress"]
    assert ports(rule) == {("metrics", "TCP"), ("health", "TCP")}
    assert rule["from"] == POLICY_VALUES["ingressFrom"]
    # The named ports are the container's.
    named = {port["name"] for port in operator_container(manifests)["ports"]}
    assert {"metrics", "health"} <= named
    # Without peers: any source, still only those two ports.
    values = {"networkPolicy": {**POLICY_VALUES, "ingressFrom": []}}
    (open_rule,) = rendered(values)[0]["spec"]["ingress"]
    assert "from" not in open_rule
    assert ports(open_rule) == ports(rule)


def test_egress_only_to_dns_the_api_server_the_token_hosts_and_extra_rules() -> None:
    policy, _ = rendered(VALUES)
    dns, api_server, token_hosts, *extra = policy["spec"]["egress"]
    assert ports(dns) == {(53, "UDP"), (53, "TCP")}
    assert dns["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    assert cidrs(api_server) == POLICY_VALUES["apiServer"]["cidrs"]
    assert ports(api_server) == {(443, "TCP"), (6443, "TCP")}
    assert cidrs(token_hosts) == POLICY_VALUES["tokenHosts"]["cidrs"]
    assert ports(token_hosts) == {(port, "TCP") for port in POLICY_VALUES["tokenHosts"]["ports"]}
    assert extra == POLICY_VALUES["extraEgress"]


@pytest.mark.parametrize("missing", ["apiServer", "tokenHosts"])
def test_refused_without_the_addresses_it_needs(missing: str) -> None:
    values = {"networkPolicy": {**POLICY_VALUES, missing: {"cidrs": []}}}
    with pytest.raises(subprocess.CalledProcessError) as refused:
        render_without_cluster(values)
    assert f"networkPolicy.{missing}.cidrs" in refused.value.stderr


def test_schema_refuses_a_port_out_of_range() -> None:
    values = {"networkPolicy": {**POLICY_VALUES, "tokenHosts": {"cidrs": ["::/0"], "ports": [0]}}}
    with pytest.raises(subprocess.CalledProcessError) as refused:
        render_without_cluster(values)
    assert "networkPolicy.tokenHosts.ports" in refused.value.stderr.replace("/", ".")
