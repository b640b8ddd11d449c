"""What GitOps tools make of the objects the operator writes (docs/gitops.md).

Each object is read from the test ground as `kubectl get -o json` gives it and
judged by `gitops-verdict` (hack/tools/gitops-verdict): by the kstatus library
Flux and kpt call, and by the chart's Argo CD Lua scripts run in gopher-lua,
the interpreter Argo CD embeds. The scripts are taken from the ConfigMap the
chart renders, so what is judged is what ships. Each verdict is printed with
its state (`pytest -s` shows them).
"""

from __future__ import annotations

import copy
import functools
import json
import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

from testground.emulator import EgainEmulator, FaultKind
from testground.tools import ensure_tools
from tests.e2e.chart_support import CHART, of_kind, render_without_cluster
from tests.e2e.conftest import (
    FORCEABLE,
    MakeClient,
    MakeReadyToken,
    StartOperator,
    client_app_spec,
    successes,
)
from tests.e2e.support import (
    Cluster,
    OperatorProcess,
    credentials_secret,
    egain_client,
    egain_token,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300), pytest.mark.usefixtures("operator")]

ARGOCD_FILES = CHART / "files" / "argocd"
KINDS = ("EgainToken", "EgainClient", "ClusterEgainClient")
HEALTH_KEY = "resource.customizations.health.egain.cloud_{kind}"
ACTIONS_KEY = "resource.customizations.actions.egain.cloud_EgainToken"
REFRESH_ANNOTATION = "egain.cloud/refresh-requested-at"


class Scripts(NamedTuple):
    """The Argo CD scripts as the chart ships them, written to files."""

    health: Path
    discovery: Path
    renew: Path


class Verdict(NamedTuple):
    kstatus: str
    argo: str
    argo_message: str


@pytest.fixture(scope="module")
def chart_customizations() -> dict[str, str]:
    """The data of the ConfigMap the chart renders with the Argo CD value on."""
    manifests = render_without_cluster({"argocd": {"resourceCustomizations": {"enabled": True}}})
    (config_map,) = of_kind(manifests, "ConfigMap")
    assert config_map["metadata"]["name"].endswith("-argocd-cm-patch")
    data: dict[str, str] = config_map["data"]
    return data


@pytest.fixture(scope="module")
def scripts(
    chart_customizations: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Scripts:
    """The chart's scripts, checked to be files/argocd/'s byte for byte."""
    data = chart_customizations
    health = data[HEALTH_KEY.format(kind="EgainToken")]
    assert all(data[HEALTH_KEY.format(kind=kind)] == health for kind in KINDS)
    assert health == (ARGOCD_FILES / "health.lua").read_text()
    actions = yaml.safe_load(data[ACTIONS_KEY])
    (definition,) = actions["definitions"]
    assert definition["name"] == "renew"
    assert actions["discovery.lua"] == (ARGOCD_FILES / "actions" / "discovery.lua").read_text()
    assert (
        definition["action.lua"] == (ARGOCD_FILES / "actions" / "renew" / "action.lua").read_text()
    )
    directory = tmp_path_factory.mktemp("argocd")
    written = Scripts(
        directory / "health.lua", directory / "discovery.lua", directory / "renew.lua"
    )
    written.health.write_text(health)
    written.discovery.write_text(actions["discovery.lua"])
    written.renew.write_text(definition["action.lua"])
    return written


@pytest.fixture
def operator(start_operator: StartOperator) -> OperatorProcess:
    """The operator, waiting on a hung request longer than a test looks at it."""
    return start_operator("--http-timeout", "60")


@functools.cache
def gitops_verdict_binary() -> Path:
    """The pinned tool, built once (hack/tools/build.sh)."""
    return ensure_tools() / "gitops-verdict"


def gitops_verdict(*args: str, obj: Mapping[str, Any]) -> Any:
    """`gitops-verdict ARGS < obj`, its JSON answer."""
    result = subprocess.run(
        [str(gitops_verdict_binary()), *args],
        input=json.dumps(obj),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return json.loads(result.stdout)


def judge(state: str, obj: Mapping[str, Any], scripts: Scripts) -> Verdict:
    """kstatus's and Argo CD's verdicts on `obj`, printed with `state`."""
    kstatus = gitops_verdict("kstatus", obj=obj)
    argo = gitops_verdict("lua-health", str(scripts.health), obj=obj)
    verdict = Verdict(kstatus["status"], argo["status"], argo["message"])
    print(
        f"{obj['kind']} {state}: kstatus {verdict.kstatus} ({kstatus['message']}),"
        f" Argo CD {verdict.argo} ({verdict.argo_message})"
    )
    return verdict


def conditions(obj: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """An object's conditions by type."""
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def served(obj: Mapping[str, Any]) -> bool:
    """The status was written for the object's current generation."""
    observed = (obj.get("status") or {}).get("observedGeneration")
    return bool(observed == obj["metadata"]["generation"])


def test_a_new_object_reads_as_not_yet_observed(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    scripts: Scripts,
) -> None:
    """As the API server returns it from the create, before the operator can act."""
    body = egain_token(namespace, "fresh", client_app_spec(emulator, make_client()))
    created = json.loads(
        cluster.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(body)).stdout
    )
    assert created["metadata"]["generation"] == 1
    assert created["status"] == {"observedGeneration": 0}
    assert judge("just created", created, scripts) == (
        "InProgress",
        "Progressing",
        "waiting for the operator",
    )


def test_a_token_from_pending_to_ready_to_changed_and_served(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    scripts: Scripts,
) -> None:
    client = make_client()
    emulator.set_fault(FaultKind.HANG, count=None, client_id=client.client_id)
    cluster.apply(egain_token(namespace, "portal", client_app_spec(emulator, client)))
    wait_until(lambda: emulator.concurrency().current == 1, "the first request under way")
    # The operator writes the status once the first request has an outcome:
    # until then the object is as created (Pending).
    token = cluster.token(namespace, "portal")
    assert emulator.concurrency().current == 1
    assert token["status"] == {"observedGeneration": 0}
    assert judge("Pending (first request under way)", token, scripts) == (
        "InProgress",
        "Progressing",
        "waiting for the operator",
    )

    emulator.clear_faults(FaultKind.HANG)
    token = cluster.wait_ready(namespace, "portal", "True", "TokenIssued")
    ready_message = conditions(token)["Ready"]["message"]
    assert judge("Ready", token, scripts) == ("Current", "Healthy", ready_message)

    # The patch's answer is the object right after the change: the status
    # still says the generation before it.
    changed = json.loads(
        cluster.kubectl(
            "patch",
            "egaintoken",
            "portal",
            "-n",
            namespace,
            "--type",
            "merge",
            "-p",
            json.dumps({"spec": {"refreshBefore": "5m"}}),
            "-o",
            "json",
        ).stdout
    )
    assert changed["metadata"]["generation"] == 2
    assert changed["status"]["observedGeneration"] == 1
    assert judge("right after a spec change", changed, scripts) == (
        "InProgress",
        "Progressing",
        "waiting for the operator to serve generation 2",
    )

    def change_served() -> dict[str, Any] | None:
        token = cluster.token(namespace, "portal")
        ready = conditions(token).get("Ready", {}).get("status") == "True"
        return token if ready and served(token) else None

    token = wait_until(change_served, "the change served")
    ready_message = conditions(token)["Ready"]["message"]
    assert judge("the change served", token, scripts) == ("Current", "Healthy", ready_message)


def test_invalid_credentials_read_as_failed_and_degraded(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    scripts: Scripts,
) -> None:
    client = make_client(write_secret=False)
    cluster.apply(credentials_secret(namespace, client.secret_name, client.client_id, "wrong"))
    cluster.apply(egain_token(namespace, "refused", client_app_spec(emulator, client)))
    token = cluster.wait_ready(namespace, "refused", "False", "InvalidCredentials")
    found = conditions(token)
    assert set(found) == {"Ready", "Stalled"}
    assert judge("InvalidCredentials", token, scripts) == (
        "Failed",
        "Degraded",
        found["Ready"]["message"],
    )


def test_an_egain_client_ready_and_without_credentials(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    scripts: Scripts,
) -> None:
    client = make_client()
    spec = {
        "flow": "ClientApp",
        "tokenUrl": client_app_spec(emulator, client)["tokenUrl"],
        "credentialsSecretRef": {"name": client.secret_name},
    }
    missing = spec | {"credentialsSecretRef": {"name": "no-such-secret"}}
    cluster.apply(
        egain_client(namespace, "shared", spec), egain_client(namespace, "orphan", missing)
    )

    def with_ready(name: str, status: str, reason: str) -> dict[str, Any] | None:
        found = cluster.get("egainclient", name, namespace)
        ready = conditions(found or {}).get("Ready", {})
        matches = (ready.get("status"), ready.get("reason")) == (status, reason)
        return found if found and matches and served(found) else None

    shared = wait_until(lambda: with_ready("shared", "True", "CredentialsFound"), "shared Ready")
    assert judge("CredentialsFound", shared, scripts) == (
        "Current",
        "Healthy",
        conditions(shared)["Ready"]["message"],
    )
    orphan = wait_until(
        lambda: with_ready("orphan", "False", "CredentialsNotFound"), "orphan CredentialsNotFound"
    )
    assert "Stalled" in conditions(orphan)
    assert judge("CredentialsNotFound", orphan, scripts) == (
        "Failed",
        "Degraded",
        conditions(orphan)["Ready"]["message"],
    )


def test_the_renew_action_sets_the_annotation_and_the_operator_renews(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_ready_token: MakeReadyToken,
    scripts: Scripts,
) -> None:
    # Its token lives FORCEABLE seconds: the renew comes within the request floor.
    client, token = make_ready_token("renewed", client_options={"lifetime": FORCEABLE})
    assert gitops_verdict("lua-discovery", str(scripts.discovery), obj=token) == {
        "renew": {"disabled": False}
    }
    renewed = gitops_verdict("lua-action", str(scripts.renew), obj=token)
    value = renewed["metadata"]["annotations"][REFRESH_ANNOTATION]
    # A new value: the time, in UTC, to the second.
    requested = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - requested).total_seconds()) < 60
    # The action changes that annotation and nothing else.
    expected = copy.deepcopy(token)
    expected["metadata"].setdefault("annotations", {})[REFRESH_ANNOTATION] = value
    assert renewed == expected
    print(f"renew action: {REFRESH_ANNOTATION}={value}")

    # Argo CD applies an action's result as a patch of what it changed.
    patch = {"metadata": {"annotations": {REFRESH_ANNOTATION: value}}}
    cluster.kubectl(
        "patch",
        "egaintoken",
        "renewed",
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        json.dumps(patch),
    )

    def answered() -> bool:
        secret = cluster.get("secret", token["status"]["secretName"], namespace) or {}
        annotations = secret.get("metadata", {}).get("annotations") or {}
        return annotations.get(REFRESH_ANNOTATION) == value and successes(emulator, client) == 2

    wait_until(answered, "the renew answered with a new token")


def test_the_chart_configmap_merges_into_argocd_cm(
    cluster: Cluster, namespace: str, chart_customizations: dict[str, str]
) -> None:
    """docs/gitops.md's merge command, against a stand-in argocd-cm."""
    manifests = render_without_cluster(
        {"argocd": {"resourceCustomizations": {"enabled": True}}}, namespace=namespace
    )
    (config_map,) = of_kind(manifests, "ConfigMap")
    cluster.apply(config_map)
    argocd_cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "argocd-cm", "namespace": namespace},
        "data": {"url": "https://argocd.example.com"},
    }
    cluster.apply(argocd_cm)
    name = config_map["metadata"]["name"]
    data = cluster.kubectl(
        "get", "configmap", name, "-n", namespace, "-o", "jsonpath={.data}"
    ).stdout
    cluster.kubectl(
        "patch",
        "configmap",
        "argocd-cm",
        "-n",
        namespace,
        "--type",
        "merge",
        "--patch",
        f'{{"data": {data}}}',
    )
    merged = cluster.get("configmap", "argocd-cm", namespace)
    assert merged is not None
    assert merged["data"] == {"url": "https://argocd.example.com", **chart_customizations}
