"""The chart's PrometheusRule and Grafana dashboard: valid, firing when they should,
and reading only metrics the operator exports.

The rule is checked and unit-tested by promtool (built from its pinned module
like the other tools, `hack/tools/promtool`); no cluster is needed.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from testground.tools import ensure_tools
from tests.e2e.chart_support import Manifest, fullname, of_kind, render_without_cluster
from tests.metric_names import exported_metric_names, referenced_metric_names

pytestmark = pytest.mark.e2e

RELEASE = "t"
JOB = f"{fullname(RELEASE)}-metrics"
# One token's series labels, as scraped (token namespace in exported_namespace), and as
# expected on its alerts.
TOKEN = f'job="{JOB}",exported_namespace="team-a",name="portal"'
TOKEN_LABELS = f'job: "{JOB}", exported_namespace: team-a, name: portal'
HOST = f'job="{JOB}",host="ai.egain.cloud",flow="ClientApp"'


@pytest.fixture(scope="module")
def tools() -> Path:
    """The directory of the built tools (promtool)."""
    return ensure_tools()


def render(values: dict[str, Any]) -> list[Manifest]:
    return render_without_cluster(values, release=RELEASE)


def rendered_rule(values: dict[str, Any] | None = None) -> Manifest:
    (rule,) = of_kind(
        render({"prometheusRule": {"enabled": True, **(values or {})}}), "PrometheusRule"
    )
    return rule


def dashboard() -> dict[str, Any]:
    (config_map,) = of_kind(render({"grafanaDashboard": {"enabled": True}}), "ConfigMap")
    (text,) = config_map["data"].values()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def promtool(tools: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tools / "promtool"), *args], capture_output=True, text=True, cwd=cwd, check=False
    )


def write_rules(rule: Manifest, path: Path) -> Path:
    """The PrometheusRule's groups as a Prometheus rule file."""
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    return path


def rule_expressions(rule: Manifest) -> list[str]:
    return [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]


def dashboard_expressions(board: dict[str, Any]) -> Iterable[str]:
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield target["expr"]


def test_neither_is_rendered_by_default() -> None:
    manifests = render({})
    assert of_kind(manifests, "PrometheusRule") == []
    assert of_kind(manifests, "ConfigMap") == []


def test_rule_passes_promtool_check(tools: Path, tmp_path: Path) -> None:
    rules = write_rules(rendered_rule(), tmp_path / "rules.yaml")
    checked = promtool(
        tools, "check", "rules", "--lint=all", "--lint-fatal", rules.name, cwd=tmp_path
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 5 rules found" in checked.stdout


def test_alerts_and_thresholds_follow_the_values() -> None:
    rule = rendered_rule(
        {
            "namespace": "monitoring",
            "labels": {"release": "prom"},
            "ruleLabels": {"team": "platform"},
            "selector": 'job="egt"',
            "tokenExpiringSoon": {
                "withinSeconds": 1800,
                "for": "0m",
                "severity": "page",
                "enabled": True,
            },
            "tokenRefreshFailing": {
                "threshold": 7,
                "for": "1m",
                "severity": "warning",
                "enabled": True,
            },
            "noLeader": {"enabled": False, "for": "5m", "severity": "critical"},
        },
    )
    assert rule["metadata"]["namespace"] == "monitoring"
    assert rule["metadata"]["labels"]["release"] == "prom"
    rules = {r["alert"]: r for r in rule["spec"]["groups"][0]["rules"]}
    assert set(rules) == {
        "EgainTokenNotReady",
        "EgainTokenExpiringSoon",
        "EgainTokenRefreshFailing",
        "EgainTokenRequestErrors",
    }
    expiring = rules["EgainTokenExpiringSoon"]
    assert expiring["expr"].endswith("< 1800")
    assert expiring["labels"] == {"severity": "page", "team": "platform"}
    assert rules["EgainTokenRefreshFailing"]["expr"].endswith("> 7")
    assert all('job="egt"' in r["expr"] for r in rules.values())


# Scrapes once a minute; time() at step N is N*60 seconds. Each alert gets one
# series that meets its condition and one, of another job, that must not count.
UNIT_TESTS = f"""
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: egain_token_ready_status{{condition="True",{TOKEN}}}
        values: 1 1 0x20
      - series: egain_token_ready_status{{condition="True",job="other",name="portal"}}
        values: 0x22
      - series: egain_token_expiration_timestamp_seconds{{{TOKEN}}}
        values: 1200x20
      - series: egain_token_consecutive_failures{{{TOKEN}}}
        values: 0 1 2 3 4x20
      - series: egain_token_operator_leader{{job="{JOB}",pod="a"}}
        values: 1x5 0x20
      - series: egain_token_operator_leader{{job="{JOB}",pod="b"}}
        values: 0x25
      - series: egain_token_request_duration_seconds_count{{{HOST},status_code="200"}}
        values: 0+10x60
      - series: egain_token_request_duration_seconds_count{{{HOST},status_code="503"}}
        values: 0x20 0+10x40
    alert_rule_test:
      - alertname: EgainTokenNotReady
        eval_time: 11m
        exp_alerts: []
      - alertname: EgainTokenNotReady
        eval_time: 12m
        exp_alerts:
          - exp_labels: {{severity: warning, condition: "True", {TOKEN_LABELS}}}
      - alertname: EgainTokenExpiringSoon
        eval_time: 10m
        exp_alerts: []
      - alertname: EgainTokenExpiringSoon
        eval_time: 11m
        exp_alerts:
          - exp_labels: {{severity: critical, {TOKEN_LABELS}}}
      - alertname: EgainTokenRefreshFailing
        eval_time: 8m
        exp_alerts: []
      - alertname: EgainTokenRefreshFailing
        eval_time: 9m
        exp_alerts:
          - exp_labels: {{severity: warning, {TOKEN_LABELS}}}
      - alertname: EgainTokenOperatorNoLeader
        eval_time: 10m
        exp_alerts: []
      - alertname: EgainTokenOperatorNoLeader
        eval_time: 11m
        exp_alerts:
          - exp_labels: {{severity: critical}}
      - alertname: EgainTokenRequestErrors
        eval_time: 20m
        exp_alerts: []
      - alertname: EgainTokenRequestErrors
        eval_time: 45m
        exp_alerts:
          - exp_labels: {{severity: warning, host: ai.egain.cloud}}
  - interval: 1m
    input_series:
      - series: egain_token_operator_leader{{job="other"}}
        values: 1x10
    alert_rule_test:
      - alertname: EgainTokenOperatorNoLeader
        eval_time: 5m
        exp_alerts:
          - exp_labels: {{severity: critical, job: "{JOB}"}}
"""


def test_alerts_fire_when_they_should(tools: Path, tmp_path: Path) -> None:
    rule = rendered_rule()
    # The annotations are checked for syntax by `promtool check rules`; here
    # only when alerts fire, and with which labels, matters.
    for group in rule["spec"]["groups"]:
        for alert in group["rules"]:
            del alert["annotations"]
    write_rules(rule, tmp_path / "rules.yaml")
    (tmp_path / "tests.yaml").write_text(UNIT_TESTS)
    tested = promtool(tools, "test", "rules", "tests.yaml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_dashboard_is_a_config_map_for_the_grafana_sidecar() -> None:
    (config_map,) = of_kind(
        render(
            {
                "grafanaDashboard": {
                    "enabled": True,
                    "namespace": "grafana",
                    "sidecarLabel": "dashboards",
                    "sidecarLabelValue": "egain",
                    "annotations": {"grafana_folder": "Operators"},
                }
            },
        ),
        "ConfigMap",
    )
    assert config_map["metadata"]["namespace"] == "grafana"
    assert config_map["metadata"]["labels"]["dashboards"] == "egain"
    assert "grafana_dashboard" not in config_map["metadata"]["labels"]
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Operators"}
    default = dashboard()
    assert default["uid"] == "egain-token-operator"
    titles = {panel["title"] for panel in default["panels"]}
    assert {
        "Tokens by Ready reason",
        "Time to expiry",
        "Refreshes by result",
        "Token request latency by host",
        "Failures",
    } <= titles


def test_rule_and_dashboard_read_only_exported_metrics() -> None:
    exported = exported_metric_names()
    for source, expressions in (
        ("rule", rule_expressions(rendered_rule())),
        ("dashboard", list(dashboard_expressions(dashboard()))),
    ):
        assert expressions, source
        for expression in expressions:
            names = referenced_metric_names(expression)
            assert names, (source, expression)
            assert names <= exported, (source, expression, sorted(names - exported))
