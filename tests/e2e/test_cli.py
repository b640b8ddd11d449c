"""The command line (`egain-token-operator status | renew | check`) and the kubectl
plugin, against the local cluster, the emulator and a running operator.

Every output is searched for the client secrets and the tokens the emulator
issued.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testground.emulator import EgainEmulator, FaultKind
from tests.e2e.conftest import (
    MakeClient,
    MakeReadyToken,
    StartOperator,
    client_app_spec,
    successes,
)
from tests.e2e.support import Cluster, credentials_secret, egain_token

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

VENV_BIN = Path(sys.executable).parent
CTL = VENV_BIN / "egain-token-operator"
SECRET_KEYS = "access_token, authorization, expires_at, scope, token_type"


class Ctl:
    """Runs the command line against the cluster and checks its output for secrets."""

    def __init__(self, cluster: Cluster, emulator: EgainEmulator) -> None:
        self.cluster = cluster
        self.emulator = emulator

    def _run(self, command: list[str]) -> subprocess.CompletedProcess[str]:
        env = self.cluster.control_plane.env()
        # As a user has it: kubectl and the installed console scripts on PATH.
        env["PATH"] = f"{self.cluster.control_plane.bin_dir}{os.pathsep}{VENV_BIN}"
        env["PATH"] += f"{os.pathsep}{os.environ.get('PATH', '')}"
        result = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=120, check=False
        )
        leaked = self.emulator.secrets_in(result.stdout + result.stderr)
        assert not leaked, f"secret material in the output of {command[:2]}"
        return result

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`egain-token-operator ARGS`."""
        return self._run([str(CTL), *args])

    def plugin(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`kubectl egaintoken ARGS`, through the test ground's kubectl."""
        return self._run([str(self.cluster.control_plane.bin_dir / "kubectl"), "egaintoken", *args])


@pytest.fixture
def ctl(cluster: Cluster, emulator: EgainEmulator) -> Ctl:
    return Ctl(cluster, emulator)


def _failing_token(
    cluster: Cluster, namespace: str, emulator: EgainEmulator, make_client: MakeClient
) -> None:
    """An EgainToken whose credentials eGain refuses: Ready=False, InvalidCredentials."""
    client = make_client(secret_name="wrong-client")
    cluster.apply(
        credentials_secret(namespace, client.secret_name, client.client_id, "not-the-secret-0000")
    )
    cluster.apply(egain_token(namespace, "failing", client_app_spec(emulator, client)))
    cluster.wait_ready(namespace, "failing", "False", "InvalidCredentials")


def _field(text: str, label: str) -> str:
    """The value of `Label:  value` in the detailed view (the first such line)."""
    prefix = f"{label}:"
    values = [line.strip()[len(prefix) :].strip() for line in text.splitlines()]
    found = [
        v
        for line, v in zip(text.splitlines(), values, strict=True)
        if line.strip().startswith(prefix)
    ]
    assert found, f"no {label!r} in:\n{text}"
    return found[0]


def _lines_with(text: str, *words: str) -> list[str]:
    return [line for line in text.splitlines() if all(word in line.split() for word in words)]


def test_status_table_details_and_plugin(
    tmp_path: Path,
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    make_ready_token: MakeReadyToken,
    start_operator: StartOperator,
    ctl: Ctl,
) -> None:
    start_operator()
    make_ready_token("ready", secretName="ready-token")
    _failing_token(cluster, namespace, emulator, make_client)

    table = ctl("status", "-n", namespace)
    assert table.returncode == 1, table.stderr  # one of them is not Ready
    header = table.stdout.splitlines()[0].split()
    assert header[:4] == ["NAME", "READY", "REASON", "SECRET"]
    assert "FAILURES" in header and "REFRESH" in header
    [ready_row] = _lines_with(table.stdout, "ready", "True", "TokenIssued", "ready-token", "0")
    expires_in = ready_row.split()[4]  # a 1 h token, issued moments ago
    assert expires_in.endswith("m") and 55 <= int(expires_in[:-1]) <= 60, ready_row
    [failing_row] = _lines_with(table.stdout, "failing", "False", "InvalidCredentials")
    assert "ago" in failing_row  # the last failure, with its age

    everywhere = ctl("status", "-A")
    assert everywhere.stdout.splitlines()[0].split()[0] == "NAMESPACE"
    assert _lines_with(everywhere.stdout, namespace, "ready", "True")

    details = ctl("status", "-n", namespace, "ready")
    assert details.returncode == 0, details.stderr
    assert _field(details.stdout, "Keys") == SECRET_KEYS
    assert _field(details.stdout, "Owner") == "this EgainToken (ready)"
    assert _field(details.stdout, "Managed by") == "egain-token-operator"
    assert _lines_with(details.stdout, "Ready", "True", "TokenIssued")
    assert _lines_with(details.stdout, "Normal", "TokenIssued")  # the Event

    failing = ctl("status", "-n", namespace, "failing")
    assert failing.returncode == 1
    assert _field(failing.stdout, "Last failure").startswith("InvalidCredentials")
    assert _lines_with(failing.stdout, "Warning", "InvalidCredentials")
    assert _field(failing.stdout, "Secret") == "failing (not found: not written yet)"

    missing = ctl("status", "-n", namespace, "absent")
    assert missing.returncode == 3
    assert f'EgainToken "absent" not found in namespace {namespace}' in missing.stderr

    # The kubeconfig as kubectl reads it: the file named, its context's namespace.
    config = json.loads(cluster.control_plane.kubeconfig.read_text())
    config["contexts"][0]["context"]["namespace"] = namespace
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps(config))
    in_context = ctl("status", "--kubeconfig", str(kubeconfig), "--context", "local")
    assert _lines_with(in_context.stdout, "ready", "True", "TokenIssued")
    no_context = ctl("status", "--kubeconfig", str(kubeconfig), "--context", "absent")
    assert no_context.returncode == 3
    assert "cannot load the kubeconfig" in no_context.stderr

    plugin = ctl.plugin("status", "-n", namespace, "ready")
    assert plugin.returncode == 0, plugin.stderr
    assert _field(plugin.stdout, "Keys") == SECRET_KEYS
    plugin_table = ctl.plugin("status", "--namespace", namespace)
    assert plugin_table.returncode == 1
    assert _lines_with(plugin_table.stdout, "failing", "False", "InvalidCredentials")


def test_renew_waits_for_the_new_token(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    make_ready_token: MakeReadyToken,
    start_operator: StartOperator,
    ctl: Ctl,
) -> None:
    # The retry after the 503 below waits 1.5 to 3 s: long enough for renew's
    # half-second polls to see the failure the status reports meanwhile.
    start_operator("--retry-initial-delay", "3")
    client, _ = make_ready_token("renewed")
    before = cluster.secret_data(namespace, "renewed")
    assert before is not None

    renewed = ctl("renew", "renewed", "-n", namespace, "--timeout", "30")

    assert renewed.returncode == 0, renewed.stderr
    assert "new token in Secret renewed, valid until" in renewed.stdout
    after = cluster.secret_data(namespace, "renewed")
    assert after is not None and after["access_token"] != before["access_token"]
    assert emulator.is_issued_token(after["access_token"].reveal(), client_id=client.client_id)
    assert successes(emulator, client) == 2
    requested = cluster.token(namespace, "renewed")["metadata"]["annotations"]
    secret = cluster.get("secret", "renewed", namespace)
    assert secret is not None
    key = "egain.cloud/refresh-requested-at"
    assert secret["metadata"]["annotations"][key] == requested[key]

    # A transient failure is reported, and the wait goes on until the retry succeeds.
    emulator.set_fault(FaultKind.SERVER_ERROR, count=1, client_id=client.client_id)
    retried = ctl("renew", "renewed", "-n", namespace, "--timeout", "30")
    assert retried.returncode == 0, retried.stderr
    assert "the operator's request failed (TokenEndpointUnavailable: HTTP 503" in retried.stdout
    assert "new token in Secret renewed" in retried.stdout
    assert successes(emulator, client) == 3

    # eGain refuses for good: renew says so at once rather than waiting it out.
    _failing_token(cluster, namespace, emulator, make_client)
    refused = ctl("renew", "failing", "-n", namespace, "--timeout", "30")
    assert refused.returncode == 1
    assert "could not renew the token: InvalidCredentials" in refused.stderr


def test_renew_times_out_with_a_clear_message(
    cluster: Cluster,
    namespace: str,
    make_ready_token: MakeReadyToken,
    start_operator: StartOperator,
    ctl: Ctl,
) -> None:
    operator = start_operator()
    make_ready_token("unanswered")
    before = cluster.secret_data(namespace, "unanswered")
    operator.stop()  # nobody answers the refresh request

    timed_out = ctl("renew", "unanswered", "-n", namespace, "--timeout", "3")

    assert timed_out.returncode == 4
    assert "timed out after 3s" in timed_out.stderr
    assert "Is the operator running" in timed_out.stderr
    assert cluster.secret_data(namespace, "unanswered") == before


def test_check_without_and_with_a_request(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    make_ready_token: MakeReadyToken,
    start_operator: StartOperator,
    ctl: Ctl,
) -> None:
    start_operator()
    client, _ = make_ready_token("checked")
    _failing_token(cluster, namespace, emulator, make_client)
    missing = make_client(secret_name="never-written", write_secret=False)
    cluster.apply(egain_token(namespace, "nocreds", client_app_spec(emulator, missing)))
    cluster.wait_ready(namespace, "nocreds", "False", "CredentialsNotFound")
    settings = [f"--allowed-token-hosts=localhost:{emulator.port}"]
    settings += [f"--ca-bundle={emulator.ca_file}"]
    token_before = cluster.token(namespace, "checked")
    secret_before = cluster.get("secret", "checked", namespace)
    assert secret_before is not None
    issued_before = successes(emulator, client)

    passed = ctl("check", "checked", "-n", namespace, *settings)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "ok    spec valid: ClientApp, POST https://localhost" in passed.stdout
    assert f"ok    token host localhost:{emulator.port} allowed" in passed.stdout
    assert "ok    credentials found: Secret egain-client" in passed.stdout
    assert "ok    Secret checked belongs to this EgainToken" in passed.stdout
    assert "its token answers the current spec and credentials" in passed.stdout
    assert "the operator would not request a token now: token valid" in passed.stdout
    assert passed.stdout.rstrip().endswith("all checks passed")
    assert successes(emulator, client) == issued_before  # nothing sent without --request

    # The operator's default allow-list has no room for the emulator's host.
    refused = ctl("check", "checked", "-n", namespace, "--ca-bundle", str(emulator.ca_file))
    assert refused.returncode == 1
    assert "FAIL  token host localhost" in refused.stdout
    assert "not in the allowed token hosts (*.egain.cloud)" in refused.stdout

    requested = ctl("check", "checked", "-n", namespace, "--request", *settings)
    assert requested.returncode == 0, requested.stdout + requested.stderr
    assert "ok    token request: eGain issued a Bearer token (lifetime 3600s" in requested.stdout
    assert successes(emulator, client) == issued_before + 1
    # Nothing written: neither the EgainToken nor its Secret changed.
    after = cluster.token(namespace, "checked")
    secret_after = cluster.get("secret", "checked", namespace)
    assert secret_after is not None
    assert after["metadata"]["resourceVersion"] == token_before["metadata"]["resourceVersion"]
    assert (
        secret_after["metadata"]["resourceVersion"] == secret_before["metadata"]["resourceVersion"]
    )

    failing = ctl("check", "failing", "-n", namespace, "--request", *settings)
    assert failing.returncode == 1
    assert "ok    credentials found: Secret wrong-client" in failing.stdout
    assert "FAIL  token request: InvalidCredentials: HTTP 401" in failing.stdout

    nocreds = ctl("check", "nocreds", "-n", namespace, "--request", *settings)
    assert nocreds.returncode == 1
    assert "FAIL  credentials: Secret never-written not found" in nocreds.stdout
    assert "FAIL  token request not sent" in nocreds.stdout
