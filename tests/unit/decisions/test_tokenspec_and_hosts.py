from datetime import timedelta

import pytest

from egain_token_operator.decisions.hosts import HostAllowList
from egain_token_operator.decisions.issuer import DEFAULT_ANONYMOUS_TOKEN_URL, Flow
from egain_token_operator.decisions.schema import InvalidSpecError, parse_duration
from egain_token_operator.decisions.tokenspec import (
    RolloutTarget,
    WorkloadKind,
    parse_spec,
    referenced_secrets,
)

MINIMAL = {
    "tokenUrl": "https://ai.egain.cloud/x",
    "scopes": ["s"],
    "credentialsSecretRef": {"name": "c"},
}


def test_defaults() -> None:
    spec = parse_spec("my-token", MINIMAL)
    assert spec.flow is Flow.CLIENT_APP
    assert spec.secret_name == "my-token"
    assert spec.credentials.client_id_key == "client_id"
    assert spec.credentials.client_secret_key == "client_secret"
    assert spec.refresh_before is None
    assert spec.rollout_targets == ()


def test_referenced_secrets_follow_the_default_name_even_in_an_invalid_spec() -> None:
    assert referenced_secrets("my-token", MINIMAL) == {"c", "my-token"}
    assert referenced_secrets("t", {**MINIMAL, "secretName": "out"}) == {"c", "out"}
    broken = {"secretName": "out", "credentialsSecretRef": {"name": "c"}, "scopes": []}
    with pytest.raises(InvalidSpecError):
        parse_spec("t", broken)
    assert referenced_secrets("t", broken) == {"c", "out"}


def test_anonymous_defaults_token_url() -> None:
    spec = parse_spec(
        "t",
        {
            "flow": "AnonymousCustomer",
            "tenantId": "T",
            "scopes": ["s"],
            "credentialsSecretRef": {"name": "c"},
        },
    )
    assert spec.token_url == DEFAULT_ANONYMOUS_TOKEN_URL


def test_full_spec() -> None:
    spec = parse_spec(
        "t",
        {
            **MINIMAL,
            "secretName": "out",
            "refreshBefore": "1h30m",
            "secretTemplate": {"labels": {"a": "b"}, "annotations": {"c": "d"}},
            "rolloutRestartTargets": [
                {"kind": "Deployment", "name": "web"},
                {"kind": "Deployment", "name": "web"},
            ],
        },
    )
    assert spec.refresh_before == timedelta(hours=1, minutes=30)
    assert spec.secret_labels == {"a": "b"}
    assert spec.secret_annotations == {"c": "d"}
    assert spec.rollout_targets == (RolloutTarget(WorkloadKind.DEPLOYMENT, "web"),)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"flow": "Password"}, "spec.flow"),
        ({"grantType": "password"}, "spec.grantType"),
        ({"tokenUrl": None}, "spec.tokenUrl"),
        ({"tokenUrl": "http://ai.egain.cloud/x"}, "spec.tokenUrl"),
        ({"flow": "AnonymousCustomer"}, "spec.tenantId"),
        ({"tenantId": "bad tenant"}, "spec.tenantId"),
        ({"scopes": []}, "spec.scopes"),
        ({"scopes": ["a b"]}, "spec.scopes"),
        ({"scopes": [f"s{i}" for i in range(65)]}, "spec.scopes"),
        ({"secretName": "Not_DNS"}, "spec.secretName"),
        ({"credentialsSecretRef": {"name": "UPPER"}}, "spec.credentialsSecretRef.name"),
        ({"refreshBefore": "10 minutes"}, "spec.refreshBefore"),
        (
            {"rolloutRestartTargets": [{"kind": "Job", "name": "x"}]},
            "spec.rolloutRestartTargets[0].kind",
        ),
    ],
)
def test_invalid_specs_name_the_field(change: dict[str, object], field: str) -> None:
    spec = {**MINIMAL, **change}
    spec = {k: v for k, v in spec.items() if v is not None}
    with pytest.raises(InvalidSpecError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_spec("t", spec)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("10m", 600), ("1h30m", 5400), ("2h", 7200)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "10", "1.5h", "m", "-1s", "1d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


class TestAllowList:
    default = HostAllowList.parse("*.egain.cloud")

    @pytest.mark.parametrize(
        "url",
        [
            "https://ai.egain.cloud/system/auth/T-U/oauth2/token",
            "https://api.ai.egain.cloud/core/authmgr/v3/oauth2/v2.0/anonymous/token?user_type=customer",
            "https://aidev.egain.cloud/x",
            "https://api.aidev.egain.cloud/x",
            "https://AI.EGAIN.CLOUD:443/x",
        ],
    )
    def test_default_covers_egain_hosts(self, url: str) -> None:
        assert self.default.allows(url)

    @pytest.mark.parametrize(
        "url",
        [
            "http://ai.egain.cloud/x",
            "https://egain.cloud.evil.com/x",
            "https://evilegain.cloud/x",
            "https://egain.cloud/x",
            "https://ai.egain.cloud:8443/x",
            "https://user:pw@ai.egain.cloud/x",
            "https://10.0.0.1/x",
            "https://kubernetes.default.svc/x",
        ],
    )
    def test_default_refuses_everything_else(self, url: str) -> None:
        assert not self.default.allows(url)

    def test_explicit_hosts_and_ports(self) -> None:
        hosts = HostAllowList.parse("*.egain.cloud, tenant.b2clogin.com, localhost:8443")
        assert hosts.allows("https://tenant.b2clogin.com/x")
        assert hosts.allows("https://localhost:8443/x")
        assert not hosts.allows("https://localhost/x")
        assert not hosts.allows("https://other.b2clogin.com/x")
        assert str(hosts) == "*.egain.cloud,tenant.b2clogin.com,localhost:8443"

    @pytest.mark.parametrize("text", ["", " , ", "*", "a.*.com", "host:http", "host:70000", "a/b"])
    def test_bad_lists(self, text: str) -> None:
        with pytest.raises(ValueError, match="token host"):
            HostAllowList.parse(text)
