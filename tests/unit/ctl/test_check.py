"""`check` reports what the operator would refuse before anything is written: an
EgainToken stored before the CRD refused its `secretTemplate.data` is reported with
the key named, and nothing is requested from eGain or written to the API server."""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from egain_token_operator.ctl import check
from egain_token_operator.ctl import main as ctl
from egain_token_operator.ctl.command import EXIT_NOT_READY
from tests.unit.ctl.test_printable import ClosingKube

NOW = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_a_bad_dollar_in_a_template_is_reported_by_key_and_nothing_is_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kube = ClosingKube()
    # As the API server kept it before its schema refused such a text.
    kube.tokens[("apps", "portal")] = {
        "metadata": {"name": "portal", "namespace": "apps", "uid": "uid-portal"},
        "spec": {
            "tokenUrl": "https://ai.egain.cloud/system/auth/T/oauth2/token",
            "credentialsSecretRef": {"name": "egain-client"},
            "scopes": ["a"],
            "secretTemplate": {"data": {"app.conf": "token: $HOME ${accessToken}"}},
        },
    }
    kube.secrets[("apps", "egain-client")] = {
        "metadata": {"name": "egain-client", "namespace": "apps"},
        "data": {"client_id": _b64("id"), "client_secret": _b64("s3cret")},
    }
    before = copy.deepcopy((kube.tokens, kube.secrets))

    async def connect(args: Any) -> tuple[ClosingKube, str]:
        return kube, "apps"

    def no_request(**settings: Any) -> None:
        raise AssertionError("check sent a token request for a refused spec")

    monkeypatch.setattr(check, "connect", connect)
    monkeypatch.setattr(check, "EgainClient", no_request)
    printed: list[str] = []

    code = ctl.main(["check", "portal", "--request"], out=printed.append, now=lambda: NOW)

    assert code == EXIT_NOT_READY
    [report] = printed
    assert report.splitlines() == [
        "EgainToken apps/portal",
        "  info  client: inline (spec.credentialsSecretRef)",
        "  FAIL  spec invalid: spec.secretTemplate.data[app.conf] holds a $ that is neither $$ "
        "nor a placeholder",
        "1 check(s) failed",
    ]
    assert "s3cret" not in report
    # Nothing written: no Secret, status, Event or annotation.
    assert (kube.tokens, kube.secrets) == before
    assert (kube.statuses, kube.events, kube.annotated) == ([], [], [])
