from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from egain_token_operator.settings import parse_settings, retry_policy


def test_defaults() -> None:
    s = parse_settings(["run"], {})
    assert s.clusterwide
    assert s.namespaces == ()
    assert str(s.allowed_token_hosts) == "*.egain.cloud"
    assert s.ca_bundle is None
    assert s.default_token_lifetime == 3600
    assert s.max_concurrent_requests == 16
    assert str(s.metrics_address) == "0.0.0.0:8080"
    assert str(s.health_address) == "0.0.0.0:8081"
    assert (s.log_format, s.log_level) == ("text", "info")
    assert s.leader_election_lease is None
    assert s.selector == ""


def test_selector_from_environment_then_flag() -> None:
    env = {"EGAIN_OPERATOR_SELECTOR": " shard=a "}
    assert parse_settings(["run"], env).selector == "shard=a"
    assert parse_settings(["run", "--selector", "tier in (gold)"], env).selector == "tier in (gold)"


def test_environment_then_flags(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("pem")
    env = {
        "EGAIN_OPERATOR_NAMESPACES": "a, b,a",
        "EGAIN_OPERATOR_ALLOWED_TOKEN_HOSTS": "*.egain.cloud,localhost:8443",
        "EGAIN_OPERATOR_CA_BUNDLE": str(bundle),
        "EGAIN_OPERATOR_DEFAULT_TOKEN_LIFETIME": "1800",
        "EGAIN_OPERATOR_MAX_CONCURRENT_REQUESTS": "4",
        "EGAIN_OPERATOR_LOG_FORMAT": "json",
        "EGAIN_OPERATOR_LEADER_ELECTION_LEASE": "ops/egain-token-operator",
    }
    s = parse_settings(["run"], env)
    assert s.namespaces == ("a", "b")
    assert s.allowed_token_hosts.allows("https://localhost:8443/x")
    assert s.ca_bundle == bundle
    assert (s.default_token_lifetime, s.max_concurrent_requests, s.log_format) == (1800, 4, "json")
    assert s.leader_election_lease == ("ops", "egain-token-operator")
    s = parse_settings(["run", "--namespace", "c", "--max-concurrent-requests", "2"], env)
    assert s.namespaces == ("c",)
    assert s.max_concurrent_requests == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--max-concurrent-requests", "0"],
        ["run", "--metrics-address", "8080"],
        ["run", "--log-format", "xml"],
        ["run", "--log-level", "loud"],
        ["run", "--allowed-token-hosts", ""],
        ["run", "--ca-bundle", "/no/such/file"],
        ["run", "--refresh-jitter", "1.5"],
        ["run", "--retry-initial-delay", "100", "--retry-max-delay", "10"],
        ["run", "--leader-election-lease", "no-namespace"],
        ["run", "--leader-election-lease", "a/b/c"],
    ],
)
def test_bad_values_exit_with_usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_settings(argv, {})
    assert exited.value.code == 2
    assert "error" in capsys.readouterr().err


def test_bad_environment_value_is_refused() -> None:
    with pytest.raises(SystemExit):
        parse_settings(["run"], {"EGAIN_OPERATOR_HTTP_TIMEOUT": "-1"})


def test_propagation_allowance_default_env_and_flag() -> None:
    assert parse_settings(["run"], {}).propagation_allowance == 120
    env = {"EGAIN_OPERATOR_PROPAGATION_ALLOWANCE": "90"}
    assert parse_settings(["run"], env).propagation_allowance == 90
    flag = ["run", "--propagation-allowance", "30.5"]
    assert parse_settings(flag, env).propagation_allowance == 30.5
    assert parse_settings(["run", "--propagation-allowance", "0"], env).propagation_allowance == 0
    assert (
        parse_settings(["run"], {"EGAIN_OPERATOR_PROPAGATION_ALLOWANCE": "0"}).propagation_allowance
        == 0
    )


@pytest.mark.parametrize("value", ["-1", "-0.5", "soon", "", "nan", "inf"])
def test_propagation_allowance_must_be_non_negative(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_settings(["run", "--propagation-allowance", value], {})
    assert exited.value.code == 2
    assert "--propagation-allowance" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_settings(["run"], {"EGAIN_OPERATOR_PROPAGATION_ALLOWANCE": value})


def test_propagation_allowance_reaches_the_retry_policy() -> None:
    policy = retry_policy(parse_settings(["run", "--propagation-allowance", "45"], {}))
    assert policy.propagation_allowance == timedelta(seconds=45)
    assert retry_policy(parse_settings(["run"], {})).propagation_allowance == timedelta(seconds=120)


@pytest.mark.parametrize(
    ("value", "host", "url"),
    [
        ("0.0.0.0:8081", "0.0.0.0", "http://0.0.0.0:8081/healthz"),  # noqa: S104
        ("[::]:8081", "::", "http://[::]:8081/healthz"),
        ("[::1]:9000", "::1", "http://[::1]:9000/healthz"),
        ("localhost:8081", "localhost", "http://localhost:8081/healthz"),
    ],
)
def test_listening_addresses_take_ipv6_in_brackets(value: str, host: str, url: str) -> None:
    s = parse_settings(["run", "--health-address", value, "--metrics-address", value], {})
    for address in (s.health_address, s.metrics_address):
        assert address.host == host
        assert address.url("/healthz") == url
        # The URL names the same host and port again (kopf's liveness endpoint parses it).
        parts = urlsplit(address.url("/healthz"))
        assert (parts.hostname, parts.port) == (host, address.port)
        assert parse_settings(["run", "--health-address", str(address)], {}).health_address == (
            address
        )


@pytest.mark.parametrize("value", ["::1:8080", ":::8080", "[::1]", "[]:8080", "[::1:8080"])
def test_ambiguous_or_broken_addresses_are_refused(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse_settings(["run", "--metrics-address", value], {})
    assert "--metrics-address" in capsys.readouterr().err
