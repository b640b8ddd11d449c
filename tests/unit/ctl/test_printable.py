"""What the command line prints from statuses, Events and specs has its control
characters escaped: a tenant who writes ESC, BEL, DEL, a C1 control or a line
separator into something an admin's terminal shows drives nothing there."""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from egain_token_operator.ctl import clientviews, readout, renew, reports, views
from egain_token_operator.ctl import main as ctl
from egain_token_operator.ctl.command import EXIT_NOT_FOUND, EXIT_NOT_READY, CommandError
from egain_token_operator.ctl.reports import Finding, Outcome
from egain_token_operator.kube.api import KubeError
from tests.unit.fakes import FakeKube

NOW = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)

# ESC sequences that clear the screen, set the clipboard (OSC 52, ended by BEL) and
# the title; DEL; CSI as its C1 byte; NEL; spaces and separators beyond ASCII.
HOSTILE = (
    "a\x1b[2J\x1b]52;c;cGF5bG9hZA==\x07\x1b]0;title\x07b\x7fc\x9b31md\x85e"
    "\u00a0f\u2028g\u2029h\u202ei\r\nj\tk"
)
ESCAPED = (
    "a\\x1b[2J\\x1b]52;c;cGF5bG9hZA==\\x07\\x1b]0;title\\x07b\\x7fc\\x9b31md\\x85e"
    "\\xa0f\\u2028g\\u2029h\\u202ei\\r\\nj\\tk"
)


def shown_safely(text: str) -> bool:
    """True when `text` holds nothing a terminal acts on but its own line breaks."""
    return all(c == "\n" or c.isprintable() for c in text)


def at(seconds: float) -> str:
    return (NOW + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def hostile_token(name: str = "portal", namespace: str = "apps") -> dict[str, Any]:
    """An EgainToken whose status holds what a tenant could have put there: a
    message eGain's answer or an older operator quoted, scopes stored before the
    CRDs said visible ASCII."""
    condition = {
        "type": "Ready",
        "status": "False",
        "reason": "InvalidScope",
        "message": f"eGain said {HOSTILE}",
        "lastTransitionTime": at(-60),
    }
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
        "spec": {"credentialsSecretRef": {"name": "c"}, "scopes": [HOSTILE]},
        "status": {
            "conditions": [condition],
            "secretName": f"{name}-token",
            "scopes": ["ok", HOSTILE],
            "tokenType": HOSTILE,
            "consecutiveFailures": 1,
            "lastFailure": {"time": at(-60), "reason": "InvalidScope", "message": HOSTILE},
        },
    }


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b", "\\x1b"),
        ("\x07", "\\x07"),
        ("\x7f", "\\x7f"),
        ("\x9b", "\\x9b"),
        ("\x00", "\\x00"),
        ("\u00a0", "\\xa0"),
        ("\u2028", "\\u2028"),
        ("\u202e", "\\u202e"),
        ("\U000e0041", "\\U000e0041"),
        (HOSTILE, ESCAPED),
    ],
)
def test_control_characters_are_escaped_as_python_writes_them(raw: str, shown: str) -> None:
    assert readout.printable(raw) == shown


@pytest.mark.parametrize(
    "text", ["token valid until 2026-11-25T13:18:26Z", "C:\\x1b is text", "portée 日本 ✓", ""]
)
def test_printable_text_is_shown_as_it_is(text: str) -> None:
    assert readout.printable(text) == text


def test_the_details_of_a_token_escape_its_status_and_events() -> None:
    events = [
        {"type": "Warning", "reason": f"R{HOSTILE}", "message": HOSTILE, "lastTimestamp": at(-5)}
    ]
    text = views.describe_token(hostile_token(), "portal-token", None, events, NOW)
    assert shown_safely(text)
    lines = text.splitlines()
    assert f"Message:         eGain said {ESCAPED}" in lines
    assert f"Scopes:          ok {ESCAPED}" in lines
    assert f"Token type:      {ESCAPED}" in lines
    assert f"Last failure:    InvalidScope 60s ago: {ESCAPED}" in lines
    # A table keeps its columns: widths are those of the escaped cells.
    header = lines.index("Conditions:") + 1
    assert lines[header + 1].index("False") == lines[header].index("STATUS")
    assert lines[header + 1].index("eGain said") == lines[header].index("MESSAGE")
    # Events' messages are one line already; what is left is escaped.
    assert any(
        line.rstrip().endswith("\\x07b\\x7fc\\x9b31md e f g h\\u202ei j k") for line in lines
    )


def test_the_status_table_escapes_every_cell() -> None:
    token = hostile_token()
    token["status"]["conditions"][0]["reason"] = HOSTILE
    token["status"]["secretName"] = HOSTILE
    text = views.status_table([token], NOW, with_namespace=True)
    assert shown_safely(text)
    header, row = text.splitlines()
    assert row.split()[:4] == ["apps", "portal", "False", ESCAPED]
    # The columns keep their places: widths are those of the escaped cells.
    assert row.index(ESCAPED, row.index(ESCAPED) + 1) == header.index("SECRET")


def test_a_client_stored_with_hostile_scopes_is_shown_escaped() -> None:
    client = {
        "kind": "ClusterEgainClient",
        "metadata": {"name": "portal"},
        "spec": {
            "tokenUrl": f"https://ai.egain.cloud/{HOSTILE}",
            "credentialsSecretRef": {"name": "c"},
            "allowedScopes": ["ok", HOSTILE],
            "allowedNamespaces": {"selector": {"matchLabels": {"team": HOSTILE}}},
        },
        "status": {
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "InvalidSpec", "message": HOSTILE}
            ]
        },
    }
    text = clientviews.describe_client(client, [hostile_token()], None, NOW)
    assert shown_safely(text)
    lines = text.splitlines()
    assert f"  Scopes:        ok, {ESCAPED}" in lines
    assert f"  Namespaces:    labels team={ESCAPED}" in lines
    assert f"Message:         {ESCAPED}" in lines


def test_the_check_report_escapes_its_findings() -> None:
    text = reports.check_report("apps", "portal", [Finding(Outcome.FAIL, f"spec: {HOSTILE}")])
    assert shown_safely(text)
    assert text.splitlines()[1] == f"  FAIL  spec: {ESCAPED}"


# --- renew and the error line, through the entry point -----------------------


class ClosingKube(FakeKube):
    """The fake API server, closed as `Kube` is at the end of a command."""

    async def close(self) -> None:
        pass


def served(monkeypatch: pytest.MonkeyPatch, *tokens: dict[str, Any]) -> ClosingKube:
    """An API server holding `tokens`, each with its managed Secret; every
    annotated token then records a permanent failure quoting `HOSTILE`."""
    kube = ClosingKube()
    for body in tokens:
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        body["status"] = {}
        kube.tokens[(namespace, name)] = body
        kube.secrets[(namespace, f"{name}-token")] = {
            "metadata": {
                "name": f"{name}-token",
                "namespace": namespace,
                "labels": {"app.kubernetes.io/managed-by": "egain-token-operator"},
            },
            "data": {"access_token": base64.b64encode(b"t1").decode()},
        }

    def refused(body: dict[str, Any]) -> None:
        held = kube.tokens[(body["metadata"]["namespace"], body["metadata"]["name"])]
        held["status"] = {
            "consecutiveFailures": 1,
            "lastFailure": {"time": at(0), "reason": f"InvalidScope{HOSTILE}", "message": HOSTILE},
        }
        kube.send("egaintokens", "MODIFIED", copy.deepcopy(held))

    kube.on_annotate = refused

    async def connect(args: Any) -> tuple[ClosingKube, str]:
        return kube, "apps"

    monkeypatch.setattr(renew, "connect", connect)
    return kube


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    printed: list[str] = []
    code = ctl.main(argv, out=printed.append, now=lambda: NOW)
    return code, printed, capsys.readouterr().err


def test_renew_of_one_escapes_the_refusal_it_reports(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served(monkeypatch, hostile_token())
    code, printed, error = run(["renew", "portal", "--timeout", "5"], capsys)
    assert code == EXIT_NOT_READY
    assert all(shown_safely(line) and "\n" not in line for line in printed)
    assert shown_safely(error) and error.count("\n") == 1
    assert error == (
        f"error: the operator could not renew the token: InvalidScope{ESCAPED}: {ESCAPED}\n"
    )


def test_renew_of_many_escapes_each_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served(monkeypatch, hostile_token("a"), hostile_token("b"))
    code, printed, error = run(["renew", "--all", "--timeout", "5"], capsys)
    assert code == EXIT_NOT_READY
    assert all(shown_safely(line) and "\n" not in line for line in printed)
    for name in ("a", "b"):
        assert (
            f"apps/{name}: the operator could not renew the token: InvalidScope{ESCAPED}: {ESCAPED}"
        ) in printed
    assert error == "error: 2 EgainToken(s) could not be renewed\n"


@pytest.mark.parametrize(
    ("raised", "shown", "code"),
    [
        (CommandError(f"EgainToken {HOSTILE}", EXIT_NOT_READY), f"EgainToken {ESCAPED}", 1),
        (KubeError(422, HOSTILE), f"Kubernetes API: HTTP 422: {ESCAPED}", EXIT_NOT_FOUND),
    ],
)
def test_the_error_line_is_escaped(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    raised: Exception,
    shown: str,
    code: int,
) -> None:
    async def failing(*args: Any) -> int:
        raise raised

    monkeypatch.setitem(ctl._RUNNERS, "status", failing)
    assert ctl.main(["status"]) == code
    error = capsys.readouterr().err
    assert error.startswith(f"error: {shown}")
    assert shown_safely(error) and error.count("\n") == 1
