"""Failures: missing credentials, permanent and transient errors, an outage during a valid token."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from testground.emulator import EgainEmulator, FaultKind
from tests.e2e.conftest import (
    BACKOFF,
    TENANT,
    MakeClient,
    MakeReadyToken,
    client_app_spec,
    parse_time,
)
from tests.e2e.support import (
    Cluster,
    OperatorProcess,
    credentials_secret,
    egain_token,
    tried,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300), pytest.mark.usefixtures("operator")]


def test_credentials_not_found_then_created(
    cluster: Cluster, namespace: str, emulator: EgainEmulator, make_client: MakeClient
) -> None:
    client = make_client(write_secret=False)
    cluster.apply(egain_token(namespace, "nocreds", client_app_spec(emulator, client)))
    token = cluster.wait_ready(namespace, "nocreds", "False", "CredentialsNotFound")
    assert "egain-client" in token["status"]["conditions"][0]["message"]
    cluster.apply(
        credentials_secret(namespace, client.secret_name, client.client_id, "wrong-key-layout")
        | {"stringData": {"client_id": client.client_id}}
    )
    token = cluster.wait_ready(namespace, "nocreds", "False", "CredentialsNotFound")
    assert "client_secret" in token["status"]["conditions"][0]["message"]
    cluster.apply(
        credentials_secret(namespace, client.secret_name, client.client_id, client.used_secrets[0])
    )
    cluster.wait_ready(namespace, "nocreds", "True", "TokenIssued", timeout=15)


@pytest.mark.parametrize(
    ("reason", "breaks", "fixes"),
    [
        ("InvalidCredentials", "wrong_secret", "right_secret"),
        ("InvalidScope", "unknown_scope", "known_scope"),
        ("UnauthorizedClient", "flow_not_allowed", "flow_allowed"),
        ("InvalidRequest", "wrong_tenant", "right_tenant"),
    ],
)
def test_permanent_failures_do_not_hot_loop_and_recover_on_change(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    reason: str,
    breaks: str,
    fixes: str,
) -> None:
    client = make_client(
        flows=("AnonymousCustomer",)
        if breaks == "flow_not_allowed"
        else ("ClientApp", "AnonymousCustomer")
    )
    right_secret = client.used_secrets[0]
    spec = client_app_spec(emulator, client)
    if breaks == "wrong_secret":
        cluster.apply(
            credentials_secret(
                namespace, client.secret_name, client.client_id, "not-the-secret-0000"
            )
        )
    elif breaks == "unknown_scope":
        spec["scopes"] = ["not.granted"]
    elif breaks == "wrong_tenant":
        spec = {
            "flow": "AnonymousCustomer",
            "tokenUrl": emulator.anonymous_token_url(),
            "tenantId": "OTHERTENANT",
            "scopes": ["knowledge.portalmgr.manage"],
            "credentialsSecretRef": {"name": client.secret_name},
        }
    cluster.apply(egain_token(namespace, "broken", spec))
    token = cluster.wait_ready(namespace, "broken", "False", reason)
    time.sleep(4)
    assert len(emulator.requests(client.client_id)) == 1, "a permanent failure was retried at once"
    status = cluster.token(namespace, "broken")["status"]
    assert status["lastFailure"]["reason"] == reason
    assert status["consecutiveFailures"] == 1
    cluster.wait_events(namespace, reason, "Warning")
    del token

    if fixes == "right_secret":
        cluster.apply(
            credentials_secret(namespace, client.secret_name, client.client_id, right_secret)
        )
    elif fixes == "known_scope":
        cluster.apply(egain_token(namespace, "broken", client_app_spec(emulator, client)))
    elif fixes == "flow_allowed":
        emulator.update_client(client.client_id, flows=("ClientApp",))
        cluster.kubectl(
            "annotate", "egt", "broken", "-n", namespace, "egain.cloud/refresh-requested-at=fixed"
        )
    elif fixes == "right_tenant":
        cluster.apply(egain_token(namespace, "broken", {**spec, "tenantId": TENANT}))
    token = cluster.wait_ready(namespace, "broken", "True", "TokenIssued", timeout=15)
    assert token["status"]["consecutiveFailures"] == 0
    assert "lastFailure" not in token["status"]


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (FaultKind.SERVER_ERROR, "TokenEndpointUnavailable"),
        (FaultKind.RESET, "TokenEndpointUnavailable"),
        (FaultKind.RATE_LIMITED, "RateLimited"),
        (FaultKind.HANG, "TokenEndpointUnavailable"),
        (FaultKind.HTML, "InvalidTokenResponse"),
        (FaultKind.NON_JSON, "InvalidTokenResponse"),
        (FaultKind.NO_EXPIRES_IN, None),
        (FaultKind.STRING_EXPIRES_IN, None),
        (FaultKind.REDIRECT, "InvalidTokenResponse"),
    ],
)
def test_transient_failures_back_off_and_recover(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    operator: OperatorProcess,
    fault: FaultKind,
    reason: str | None,
) -> None:
    client = make_client()
    emulator.set_fault(fault, count=None, client_id=client.client_id, retry_after=2)
    cluster.apply(egain_token(namespace, "flaky", client_app_spec(emulator, client)))
    if reason is None:
        # Not failures: "3600" is a lifetime, and no expires_in means the default one.
        token = cluster.wait_ready(namespace, "flaky", "True", "TokenIssued")
        status = token["status"]
        assert (
            parse_time(status["expiresAt"]) - parse_time(status["issuedAt"])
        ).total_seconds() == 3600
        said = operator.log().count("no expires_in")
        assert said == (1 if fault is FaultKind.NO_EXPIRES_IN else 0)
        return
    cluster.wait_ready(namespace, "flaky", "False", reason)
    started = time.monotonic()

    def retried() -> dict[str, Any] | None:
        status: dict[str, Any] = cluster.token(namespace, "flaky")["status"]
        return status if status.get("consecutiveFailures", 0) >= 2 else None

    status = wait_until(retried, "a failed retry")
    if fault is not FaultKind.HANG:  # hung requests are logged only once released
        attempts = wait_until(tried(emulator, client.client_id, 3), "a third try")
        # Backoff 0.5, 1, 2, 4 s (jitter; Retry-After 2 s for 429): as far apart
        # as that, not a hot loop.
        backoff = replace(BACKOFF, retry_after=2.0 if fault is FaultKind.RATE_LIMITED else 0.0)
        backoff.check_failing_requests([r.monotonic for r in attempts], fault.value)
    # The next attempt is planned after the last failure, within the backoff cap
    # (4 s in these tests; times are written in whole seconds).
    retry_in = parse_time(status["nextRefreshAt"]) - parse_time(status["lastFailure"]["time"])
    assert timedelta(0) <= retry_in <= timedelta(seconds=5)
    if fault is FaultKind.REDIRECT:
        target = emulator.redirect_target_url.split("localhost:")[1].split("/", 1)[1]
        assert all(r.path != "/" + target for r in emulator.requests()), "a redirect was followed"
    emulator.clear_faults()
    cluster.wait_ready(namespace, "flaky", "True", "TokenIssued", timeout=15)
    assert time.monotonic() - started < 30
    assert 'result="failure"' in operator.metrics()


def test_failed_refresh_keeps_ready_while_the_token_is_valid(
    cluster: Cluster, namespace: str, emulator: EgainEmulator, make_ready_token: MakeReadyToken
) -> None:
    # Refreshed 2-4 s after issue and retried at once: two failures come some 15 s
    # before the token expires, however slow the machine.
    lifetime = 20
    client, _ = make_ready_token(
        "outage", client_options={"lifetime": lifetime}, refreshBefore="16s"
    )
    emulator.set_fault(FaultKind.SERVER_ERROR, count=None, client_id=client.client_id)

    def failed_while_valid() -> dict[str, Any] | None:
        status = cluster.token(namespace, "outage")["status"]
        return status if status.get("consecutiveFailures", 0) >= 2 else None

    status = wait_until(failed_while_valid, "failed refreshes", timeout=lifetime)
    read_at = datetime.now(UTC)
    assert read_at < parse_time(status["expiresAt"]), "the failures were seen only after expiry"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert status["lastFailure"]["reason"] == "TokenEndpointUnavailable"
    assert "HTTP 503" in status["lastFailure"]["message"]
    # Once the old token expires, Ready turns False with the failure's reason.
    cluster.wait_ready(
        namespace, "outage", "False", "TokenEndpointUnavailable", timeout=lifetime + 10
    )
    emulator.clear_faults()
    cluster.wait_ready(namespace, "outage", "True", "TokenIssued", timeout=15)
