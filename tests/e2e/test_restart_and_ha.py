"""A restarted operator keeps what it had; of several replicas only the Lease holder acts."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from egain_token_operator.controller.workers import FIRST_LOOKS_DONE
from testground.emulator import EgainEmulator
from tests.e2e.conftest import (
    FORCEABLE,
    MakeClient,
    MakeReadyToken,
    StartOperator,
    client_app_spec,
    parse_time,
    successes,
)
from tests.e2e.support import Cluster, OperatorProcess, credentials_secret, egain_token, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def first_looks_done(operator: OperatorProcess) -> str:
    """Wait until `operator` says every EgainToken had its first look; that line."""
    return wait_until(
        lambda: next((x for x in operator.log().splitlines() if FIRST_LOOKS_DONE in x), None),
        "the operator to say every EgainToken had its first look",
    )


def planned_refresh(operator: OperatorProcess, namespace: str, name: str) -> float | None:
    """When `operator` plans the next request for an EgainToken (its
    `egain_token_renewal_timestamp_seconds`), as Unix time."""
    labels = {"namespace": namespace, "name": name}
    for family in text_string_to_metric_families(operator.metrics()):
        for sample in family.samples:
            if sample.name == "egain_token_renewal_timestamp_seconds" and sample.labels == labels:
                return sample.value
    return None


def looked_at(said: str) -> int:
    """How many EgainTokens the first-looks line says were looked at."""
    looked = re.search(r"\((\d+) looked at", said)
    assert looked is not None, said
    return int(looked.group(1))


def test_restarted_operator_keeps_valid_tokens(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_ready_token: MakeReadyToken,
    operator: OperatorProcess,
    start_operator: StartOperator,
) -> None:
    client, _ = make_ready_token("keep-a", secretName="keep-a")
    make_ready_token("keep-b", client=client, secretName="keep-b")
    before = {name: cluster.token(namespace, name)["status"] for name in ("keep-a", "keep-b")}
    # One token shared by both (identical requests), or one each: whatever
    # was issued before the restart is all there is after it.
    issued = successes(emulator, client)
    operator.stop()
    second = start_operator()
    said = first_looks_done(second)
    assert looked_at(said) == 2, said
    assert successes(emulator, client) == issued, (
        "a restarted operator requested tokens it already had"
    )
    for name in ("keep-a", "keep-b"):
        assert cluster.token(namespace, name)["status"] == before[name]
        # Its next request is the one recorded (in whole seconds), not sooner.
        planned = planned_refresh(second, namespace, name)
        recorded = parse_time(before[name]["nextRefreshAt"]).timestamp()
        assert planned is not None and int(planned) == recorded, (name, planned, recorded)


def status_writes(audit_log: Path, namespace: str, since: float) -> list[str]:
    """The EgainTokens of `namespace` whose status was patched or updated since
    `since` (Unix time), as the API server's audit log has it."""
    written = []
    for line in audit_log.read_text().splitlines():
        if namespace not in line or '"status"' not in line:
            continue
        entry = json.loads(line)
        ref = entry.get("objectRef") or {}
        received = datetime.fromisoformat(entry["requestReceivedTimestamp"]).timestamp()
        if (
            (ref.get("resource"), ref.get("subresource"), ref.get("namespace"))
            == ("egaintokens", "status", namespace)
            and entry["verb"] in ("patch", "update")
            and received >= since
        ):
            written.append(str(ref.get("name")))
    return written


def test_a_restart_writes_no_status_that_is_current_and_says_when_it_looked_at_all(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_ready_token: MakeReadyToken,
    operator: OperatorProcess,
    start_operator: StartOperator,
) -> None:
    names = [f"current-{i}" for i in range(4)]
    client, _ = make_ready_token(names[0], tokenSharing="Disabled")
    for name in names[1:]:
        make_ready_token(name, client=client, tokenSharing="Disabled")
    audit_log = cluster.control_plane.audit_log
    wait_until(
        lambda: len(set(status_writes(audit_log, namespace, 0)) & set(names)) == len(names),
        "the first operator's status patches in the audit log",
    )
    requests = len(emulator.requests(client.client_id))
    operator.stop()
    restarted_at = time.time()
    said = first_looks_done(start_operator())
    assert looked_at(said) == len(names), said
    assert len(emulator.requests(client.client_id)) == requests, "a restart requested tokens"
    assert status_writes(audit_log, namespace, restarted_at) == [], "current statuses written"
    for name in names:
        assert cluster.ready(namespace, name)["status"] == "True"  # type: ignore[index]


def test_restarted_operator_keeps_the_backoff_until_the_credentials_change(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    start_operator: StartOperator,
) -> None:
    # A backoff far longer than the test, so only the change can end it.
    long_backoff = ("--permanent-failure-retry-delay", "600")
    first = start_operator(*long_backoff)
    client = make_client()
    right_secret = client.used_secrets[0]
    cluster.apply(
        credentials_secret(namespace, client.secret_name, client.client_id, "not-the-secret-0000")
    )
    cluster.apply(egain_token(namespace, "locked", client_app_spec(emulator, client)))
    cluster.wait_ready(namespace, "locked", "False", "InvalidCredentials")
    first.stop()

    second = start_operator(*long_backoff)
    seen = f'egain_token_consecutive_failures{{name="locked",namespace="{namespace}"}} 1.0'
    wait_until(lambda: seen in second.metrics(), "the restarted operator to look at it", 30)
    time.sleep(3)
    assert len(emulator.requests(client.client_id)) == 1, "a restart cut a permanent backoff short"
    second.stop()

    cluster.apply(credentials_secret(namespace, client.secret_name, client.client_id, right_secret))
    start_operator(*long_backoff)
    cluster.wait_ready(namespace, "locked", "True", "TokenIssued", timeout=15)
    assert len(emulator.requests(client.client_id)) == 2


def test_only_the_leader_acts_and_a_standby_takes_over(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_ready_token: MakeReadyToken,
    start_operator: StartOperator,
) -> None:
    lease = ("--leader-election-lease", f"{namespace}/egain-token-operator")
    first = start_operator(*lease)
    wait_until(first.leading, "the first replica to lead", 30)
    second = start_operator(*lease)
    client, _ = make_ready_token("shared", client_options={"lifetime": FORCEABLE})
    time.sleep(3)
    assert successes(emulator, client) == 1, "both replicas requested a token"
    assert not second.leading()

    first.stop()  # a graceful stop hands the Lease over
    wait_until(second.leading, "the standby to take over a released Lease", 10)
    cluster.kubectl(
        "annotate", "egt", "shared", "-n", namespace, "egain.cloud/refresh-requested-at=1"
    )
    wait_until(lambda: successes(emulator, client) == 2, "the new leader to refresh", 15)

    third = start_operator(*lease)
    second.kill()  # no hand-over: the Lease must run out first
    wait_until(third.leading, "a standby to take over an expired Lease", 40)
    cluster.kubectl(
        "annotate",
        "egt",
        "shared",
        "-n",
        namespace,
        "--overwrite",
        "egain.cloud/refresh-requested-at=2",
    )
    wait_until(lambda: successes(emulator, client) == 3, "the third leader to refresh", 15)
    lease_spec = cluster.get("lease", "egain-token-operator", namespace)
    assert lease_spec is not None
    assert lease_spec["spec"]["leaseTransitions"] == 2
