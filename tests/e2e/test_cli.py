"""The command line (`egain-token-operator status | renew | check`) and the kubectl
plugin, against the local cluster, the emulator and a running operator.

The tests of shared clients (`status egc/NAME`, `renew --client`) need the
operator to resolve `clientRef`.

Every output is searched for the client secrets and the tokens the emulator
issued.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from testground.emulator import EgainEmulator, FaultKind
from tests.e2e.conftest import (
    FORCEABLE,
    TENANT,
    EgainClient,
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
    # What the details below print: both Events posted (after the writes of their looks).
    cluster.wait_events(namespace, "TokenIssued", "Normal")
    cluster.wait_events(namespace, "InvalidCredentials", "Warning")

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
    client, _ = make_ready_token("renewed", client_options={"lifetime": FORCEABLE})
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
    assert (
        "not in the operator's allowed token hosts (*.egain.cloud); no request was sent "
        "(TokenUrlNotAllowed)"
    ) in refused.stdout

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
    assert (
        "FAIL  credentials: Secret never-written with keys client_id and client_secret not found"
        in nocreds.stdout
    )
    assert "FAIL  token request not sent" in nocreds.stdout


def _labelled_token(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    name: str,
    labels: dict[str, str],
) -> EgainClient:
    """A Ready EgainToken with `labels`, with a client of its own (so its requests
    are its own, and counted apart)."""
    client = make_client(secret_name=f"{name}-client", lifetime=FORCEABLE)
    token = egain_token(namespace, name, client_app_spec(emulator, client))
    token["metadata"]["labels"] = labels
    cluster.apply(token)
    cluster.wait_ready(namespace, name, "True", "TokenIssued")
    return client


def test_renew_many_by_label_and_all(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    start_operator: StartOperator,
    ctl: Ctl,
) -> None:
    operator = start_operator()
    run = uuid.uuid4().hex[:10]  # -A below must select this test's tokens only
    clients = {
        name: _labelled_token(
            cluster, namespace, emulator, make_client, name, {"run": run, "team": team}
        )
        for name, team in (("one", "a"), ("two", "a"), ("three", "b"))
    }

    by_label = ctl("renew", "-l", f"run={run},team=a", "-A", "--timeout", "30")

    assert by_label.returncode == 0, by_label.stdout + by_label.stderr
    assert f"on 2 EgainTokens matching run={run},team=a in every namespace" in by_label.stdout
    for name in ("one", "two"):
        assert f"{namespace}/{name}: new token in Secret {name}, valid until" in by_label.stdout
        assert successes(emulator, clients[name]) == 2
    assert "three" not in by_label.stdout and successes(emulator, clients["three"]) == 1
    assert by_label.stdout.splitlines()[-1] == ("2 EgainToken(s): 2 renewed, 0 failed, 0 timed out")

    # --all, with a token eGain refuses: the others are still renewed, and it says so.
    _failing_token(cluster, namespace, emulator, make_client)
    every = ctl("renew", "--all", "-n", namespace, "--timeout", "30")
    assert every.returncode == 1, every.stdout + every.stderr
    assert "error: 1 EgainToken(s) could not be renewed" in every.stderr
    assert (
        f"{namespace}/failing: the operator could not renew the token: InvalidCredentials"
        in every.stdout
    )
    assert every.stdout.splitlines()[-1] == "4 EgainToken(s): 3 renewed, 1 failed, 0 timed out"
    assert [successes(emulator, clients[n]) for n in ("one", "two", "three")] == [3, 3, 2]
    for name in ("one", "two", "three"):
        requested = cluster.token(namespace, name)["metadata"]["annotations"]
        secret = cluster.get("secret", name, namespace)
        assert secret is not None
        key = "egain.cloud/refresh-requested-at"
        assert secret["metadata"]["annotations"][key] == requested[key]

    nothing = ctl("renew", "-l", "run=nobody", "-n", namespace)
    assert nothing.returncode == 0, nothing.stderr
    assert nothing.stdout.strip() == f"No EgainTokens matching run=nobody in namespace {namespace}."
    usage = ctl("renew", "one", "--all", "-n", namespace)
    assert usage.returncode == 2
    assert "renew takes exactly one of NAME, --all" in usage.stderr

    operator.stop()  # nobody answers: every renewal times out
    timed_out = ctl.plugin("renew", "-l", f"run={run}", "-n", namespace, "--timeout", "3")
    assert timed_out.returncode == 4, timed_out.stdout + timed_out.stderr
    assert timed_out.stdout.splitlines()[-1] == "3 EgainToken(s): 0 renewed, 0 failed, 3 timed out"
    assert f"{namespace}/one: timed out: Secret one holds no token" in timed_out.stdout
    assert "error: timed out after 3s: 3 EgainToken(s) not renewed yet" in timed_out.stderr


def _client_manifest(kind: str, name: str, spec: dict[str, Any], namespace: str | None) -> Any:
    metadata = {"name": name} | ({"namespace": namespace} if namespace else {})
    return {"apiVersion": "egain.cloud/v1alpha1", "kind": kind, "metadata": metadata, "spec": spec}


def test_status_of_clients_and_renew_by_client(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    start_operator: StartOperator,
    ctl: Ctl,
) -> None:
    # The test's namespace stands for the operator's: it holds the cluster client's
    # Secret. ClusterEgainClients are served by a cluster-wide operator only.
    start_operator("--cluster-resource-namespace", namespace, all_namespaces=True)
    shared = make_client(secret_name="shared-client", lifetime=FORCEABLE)
    local = make_client(secret_name="local-client", lifetime=FORCEABLE)
    inline = make_client(secret_name="inline-client", lifetime=FORCEABLE)
    cluster_name = f"shared-{namespace}"
    url = emulator.client_app_token_url(TENANT)
    cluster.apply(
        _client_manifest(
            "ClusterEgainClient",
            cluster_name,
            {
                "tokenUrl": url,
                "credentialsSecretRef": {"name": shared.secret_name},
                "allowedScopes": ["knowledge.portalmgr.manage"],
                "allowedNamespaces": {"names": [namespace]},
            },
            None,
        ),
        _client_manifest(
            "EgainClient",
            "local",
            {"tokenUrl": url, "credentialsSecretRef": {"name": local.secret_name}},
            namespace,
        ),
    )
    try:
        scopes = ["knowledge.portalmgr.manage"]
        cluster.apply(
            egain_token(
                namespace,
                "by-cluster",
                {
                    "clientRef": {"kind": "ClusterEgainClient", "name": cluster_name},
                    "scopes": scopes,
                },
            ),
            egain_token(namespace, "by-local", {"clientRef": {"name": "local"}, "scopes": scopes}),
            egain_token(namespace, "inline", client_app_spec(emulator, inline)),
        )
        for name in ("by-cluster", "by-local", "inline"):
            cluster.wait_ready(namespace, name, "True", "TokenIssued")

        details = ctl("status", "-n", namespace, "by-cluster")
        assert details.returncode == 0, details.stderr
        assert _field(details.stdout, "Client") == f"ClusterEgainClient/{cluster_name}"
        # egt/NAME is the token NAME, as kubectl spells it.
        assert _field(ctl("status", "-n", namespace, "egt/inline").stdout, "Client") == "inline"

        of_cluster = ctl("status", f"cegc/{cluster_name}")
        assert of_cluster.returncode == 0, of_cluster.stdout + of_cluster.stderr
        assert _field(of_cluster.stdout, "Kind") == "ClusterEgainClient"
        assert _lines_with(of_cluster.stdout, "Ready:", "True", "(CredentialsFound)")
        assert _field(of_cluster.stdout, "Namespaces") == f"names {namespace}"
        assert _field(of_cluster.stdout, "Scopes") == "knowledge.portalmgr.manage"
        assert "EgainTokens using it, in every namespace:" in of_cluster.stdout
        assert _lines_with(of_cluster.stdout, namespace, "by-cluster", "True", "TokenIssued")
        assert not _lines_with(of_cluster.stdout, "by-local")

        of_local = ctl.plugin("status", "-n", namespace, "egc/local")
        assert of_local.returncode == 0, of_local.stdout + of_local.stderr
        assert _field(of_local.stdout, "Kind") == "EgainClient"
        assert _field(of_local.stdout, "Credentials").startswith(
            f"Secret {local.secret_name} in namespace {namespace}"
        )
        assert _lines_with(of_local.stdout, namespace, "by-local", "True", "TokenIssued")

        missing = ctl("status", "cegc/absent")
        assert missing.returncode == 3
        assert 'ClusterEgainClient "absent" not found' in missing.stderr

        before = {c.client_id: successes(emulator, c) for c in (shared, local, inline)}
        renewed = ctl("renew", "--client", f"cegc/{cluster_name}", "-n", namespace)
        assert renewed.returncode == 0, renewed.stdout + renewed.stderr
        assert f"{namespace}/by-cluster: new token in Secret by-cluster" in renewed.stdout
        assert renewed.stdout.splitlines()[-1] == (
            "1 EgainToken(s): 1 renewed, 0 failed, 0 timed out"
        )
        by_local = ctl("renew", "--client", "egc/local", "-n", namespace)
        assert by_local.returncode == 0, by_local.stdout + by_local.stderr
        assert f"{namespace}/by-local: new token" in by_local.stdout
        after = {c.client_id: successes(emulator, c) for c in (shared, local, inline)}
        assert after == {
            shared.client_id: before[shared.client_id] + 1,
            local.client_id: before[local.client_id] + 1,
            inline.client_id: before[inline.client_id],
        }
        absent = ctl("renew", "--client", "egc/absent", "-n", namespace)
        assert absent.returncode == 3
        assert f'EgainClient "absent" not found in namespace {namespace}' in absent.stderr
    finally:
        cluster.kubectl("delete", "clusteregainclient", cluster_name, "--ignore-not-found")
