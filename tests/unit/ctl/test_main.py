"""The command line's parser and entry points: the operator settings `check` takes,
and usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from egain_token_operator import cli
from egain_token_operator.ctl import command
from egain_token_operator.ctl import main as ctl
from egain_token_operator.settings import parse_settings, retry_policy


def test_check_takes_the_operator_settings_with_their_environment_twins(tmp_path: Path) -> None:
    parser = ctl.build_parser("egain-token-operator", {})
    args = parser.parse_args(["check", "portal"])
    assert str(args.allowed_token_hosts) == "*.egain.cloud"
    assert args.ca_bundle is None
    # The same schedule as the operator with the same settings.
    assert retry_policy(args) == retry_policy(parse_settings(["run"], {}))

    env = {"EGAIN_OPERATOR_ALLOWED_TOKEN_HOSTS": "login.example.com:8443"}
    from_env = ctl.build_parser("p", env).parse_args(["check", "portal"])
    assert from_env.allowed_token_hosts.allows("https://login.example.com:8443/token")
    flag = ctl.build_parser("p", env).parse_args(
        ["check", "portal", "--allowed-token-hosts", "*.b2clogin.com"]
    )
    assert flag.allowed_token_hosts.allows("https://tenant.b2clogin.com/token")
    assert not flag.allowed_token_hosts.allows("https://login.example.com:8443/token")


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl.main(["renew"]) == command.EXIT_USAGE
    assert "renew takes exactly one of NAME, --all" in capsys.readouterr().err
    assert ctl.main(["status", "secret/portal"]) == command.EXIT_USAGE
    assert "'secret/portal' is not KIND/NAME" in capsys.readouterr().err
    assert ctl.main(["status", "-A", "cegc/portal"]) == command.EXIT_USAGE
    assert "NAME cannot be combined with --all-namespaces" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        cli.main(["status", "--all-namespaces", "--bogus"])
    assert exited.value.code == command.EXIT_USAGE
    err = capsys.readouterr().err
    assert "usage: egain-token-operator [-h] {status,renew,check}" in err  # routed to ctl
    assert "unrecognized arguments: --bogus" in err
