"""The operator against the real API server and the eGain emulator, one behaviour per test."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from testground.emulator import EgainEmulator, FaultKind
from testground.proxy import ConnectProxy
from tests.e2e.conftest import TENANT, EgainClient
from tests.e2e.support import (
    Cluster,
    Hidden,
    OperatorProcess,
    credentials_secret,
    deployment,
    egain_token,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

MakeClient = Callable[..., EgainClient]


def client_app_spec(
    emulator: EgainEmulator, client: EgainClient, **overrides: Any
) -> dict[str, Any]:
    spec = {
        "flow": "ClientApp",
        "tokenUrl": emulator.client_app_token_url(TENANT),
        "scopes": ["knowledge.portalmgr.manage"],
        "credentialsSecretRef": {"name": client.secret_name},
    }
    spec.update(overrides)
    return spec


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def successes(emulator: EgainEmulator, client: EgainClient) -> int:
    return sum(r.token_issued for r in emulator.requests(client.client_id))


def test_client_app_flow_writes_the_exact_secret(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    operator: OperatorProcess,
) -> None:
    client = make_client(scopes=("knowledge.portalmgr.manage", "core.aiservices.read"))
    spec = client_app_spec(
        emulator,
        client,
        scopes=["knowledge.portalmgr.manage", "core.aiservices.read"],
        secretName="portal-token",
        secretTemplate={"labels": {"team": "web"}, "annotations": {"owner": "support"}},
    )
    cluster.apply(egain_token(namespace, "portal", spec))
    token = cluster.wait_ready(namespace, "portal", "True", "TokenIssued")

    secret = cluster.get("secret", "portal-token", namespace)
    assert secret is not None
    assert secret["type"] == "Opaque"
    data = cluster.secret_data(namespace, "portal-token")
    assert data is not None
    assert set(data) == {"access_token", "token_type", "authorization", "expires_at", "scope"}
    assert emulator.is_issued_token(data["access_token"].reveal(), client_id=client.client_id)
    assert data["token_type"] == "Bearer"
    assert data["authorization"] == Hidden(f"Bearer {data['access_token'].reveal()}")
    assert data["scope"] == "knowledge.portalmgr.manage core.aiservices.read"
    status = token["status"]
    assert data["expires_at"] == status["expiresAt"]
    assert parse_time(data["expires_at"].reveal()) > datetime.now(UTC)

    metadata = secret["metadata"]
    assert metadata["labels"] == {
        "app.kubernetes.io/managed-by": "egain-token-operator",
        "egain.cloud/token": "portal",
        "team": "web",
    }
    assert metadata["annotations"]["owner"] == "support"
    assert metadata["annotations"]["egain.cloud/issued-at"] == status["issuedAt"]
    assert metadata["annotations"]["egain.cloud/expires-at"] == status["expiresAt"]
    (ref,) = metadata["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
        "EgainToken",
        "portal",
        token["metadata"]["uid"],
        True,
    )

    assert status["secretName"] == "portal-token"
    assert status["tokenType"] == "Bearer"
    assert status["scopes"] == ["knowledge.portalmgr.manage", "core.aiservices.read"]
    assert status["observedGeneration"] == token["metadata"]["generation"]
    assert status["consecutiveFailures"] == 0
    assert "lastFailure" not in status
    issued, expires = parse_time(status["issuedAt"]), parse_time(status["expiresAt"])
    refresh = parse_time(status["nextRefreshAt"])
    assert (expires - issued).total_seconds() == 3600
    # Default refreshBefore: a third of the lifetime, plus at most 10% jitter.
    assert 1200 <= (expires - refresh).total_seconds() <= 1320

    (request,) = emulator.requests(client.client_id)
    assert request.flow == "ClientApp"
    assert request.grant_type == "client_credentials"
    assert request.content_type == "application/x-www-form-urlencoded"
    assert request.scopes == ("knowledge.portalmgr.manage", "core.aiservices.read")

    table = cluster.kubectl("get", "egt", "-n", namespace).stdout
    header = table.splitlines()[0].split()
    assert header == ["NAME", "READY", "REASON", "SECRET", "EXPIRES", "AGE"]
    assert table.splitlines()[1].split()[:5] == [
        "portal",
        "True",
        "TokenIssued",
        "portal-token",
        status["expiresAt"],
    ]
    metrics = operator.metrics()
    for series in (
        'egain_token_expiration_timestamp_seconds{name="portal",namespace="%s"}',
        'egain_token_renewal_timestamp_seconds{name="portal",namespace="%s"}',
        'egain_token_ready_status{condition="True",name="portal",namespace="%s"} 1.0',
        'egain_token_ready_status{condition="False",name="portal",namespace="%s"} 0.0',
        'egain_token_refresh_total{name="portal",namespace="%s",'
        'reason="TokenIssued",result="success"} 1.0',
        'egain_token_consecutive_failures{name="portal",namespace="%s"} 0.0',
    ):
        assert series % namespace in metrics, series
    assert (
        'egain_token_request_duration_seconds_count{flow="ClientApp",host="localhost",status_code="200"}'
        in metrics
    )


def test_anonymous_customer_flow(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    operator: OperatorProcess,
) -> None:
    client = make_client(scopes=("core.aiservices.read", "core.aiservices.manage"))
    spec = {
        "flow": "AnonymousCustomer",
        "tokenUrl": emulator.anonymous_token_url(),
        "tenantId": TENANT,
        "scopes": [
            "core.aiservices.read",
            "https://api.ai.egain.cloud/auth/core.aiservices.manage",
        ],
        "credentialsSecretRef": {"name": client.secret_name},
    }
    cluster.apply(egain_token(namespace, "anonymous", spec))
    cluster.wait_ready(namespace, "anonymous", "True", "TokenIssued")
    data = cluster.secret_data(namespace, "anonymous")
    assert data is not None
    assert emulator.is_issued_token(data["access_token"].reveal(), client_id=client.client_id)
    (request,) = emulator.requests(client.client_id)
    assert request.flow == "AnonymousCustomer"
    assert (request.user_type, request.domain_hint) == ("customer", TENANT)
    assert request.scopes == (
        "https://api.ai.egain.cloud/auth/core.aiservices.read",
        "https://api.ai.egain.cloud/auth/core.aiservices.manage",
    )


VALID = {
    "tokenUrl": "https://ai.egain.cloud/system/auth/T-U/oauth2/token",
    "scopes": ["s"],
    "credentialsSecretRef": {"name": "c"},
}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"flow": "Password"}, "spec.flow"),
        ({"grantType": "password"}, "spec.grantType"),
        ({"tokenUrl": None}, "spec.tokenUrl"),
        ({"flow": "AnonymousCustomer", "tokenUrl": None}, "spec.tenantId"),
        ({"tokenUrl": "http://ai.egain.cloud/x"}, "spec.tokenUrl"),
        ({"scopes": []}, "spec.scopes"),
        ({"scopes": [f"s{i}" for i in range(65)]}, "spec.scopes"),
        ({"scopes": ["two words"]}, "spec.scopes[0]"),
        ({"tenantId": "bad tenant!"}, "spec.tenantId"),
        ({"tenantId": "x" * 65}, "spec.tenantId"),
        ({"secretName": "Not_A_Name"}, "spec.secretName"),
        ({"credentialsSecretRef": {"name": "Bad_Name"}}, "spec.credentialsSecretRef.name"),
        ({"refreshBefore": "ten minutes"}, "spec.refreshBefore"),
        ({"refreshBefore": "1.5h"}, "spec.refreshBefore"),
        (
            {"rolloutRestartTargets": [{"kind": "CronJob", "name": "x"}]},
            "spec.rolloutRestartTargets[0].kind",
        ),
    ],
)
def test_admission_rejects_invalid_specs(
    cluster: Cluster, namespace: str, change: dict[str, Any], field: str
) -> None:
    spec = {k: v for k, v in {**VALID, **change}.items() if v is not None}
    manifest = egain_token(namespace, "invalid", spec)
    result = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=json.dumps(manifest), check=False
    )
    assert result.returncode != 0
    assert field in result.stderr, result.stderr


@pytest.mark.parametrize(
    "spec", [VALID, {**VALID, "refreshBefore": "1h30m", "secretName": "a.b-c"}]
)
def test_admission_accepts_valid_specs(
    cluster: Cluster, namespace: str, spec: dict[str, Any]
) -> None:
    manifest = egain_token(namespace, "valid", spec)
    cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(manifest))


def test_admission_defaults(cluster: Cluster, namespace: str) -> None:
    cluster.apply(egain_token(namespace, "defaults", VALID))
    spec = cluster.token(namespace, "defaults")["spec"]
    assert spec["flow"] == "ClientApp"
    assert spec["grantType"] == "client_credentials"
    assert spec["credentialsSecretRef"] == {
        "name": "c",
        "clientIdKey": "client_id",
        "clientSecretKey": "client_secret",
    }


def test_short_lived_token_is_replaced_before_it_expires(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    operator: OperatorProcess,
) -> None:
    client = make_client(lifetime=3)
    cluster.apply(egain_token(namespace, "short", client_app_spec(emulator, client)))
    cluster.wait_ready(namespace, "short")
    seen: set[str] = set()
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        data = cluster.secret_data(namespace, "short")
        assert data is not None
        info = emulator.token_info(data["access_token"].reveal())
        assert info is not None and not info.expired, "the Secret held an expired token"
        seen.add(info.fingerprint)
        time.sleep(0.2)
    # 12 s of 3 s tokens refreshed a second before expiry: about six tokens.
    assert len(seen) >= 4
    assert (cluster.ready(namespace, "short") or {}).get("status") == "True"


def test_rotated_client_secret_gets_a_new_token_within_seconds(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    operator: OperatorProcess,
) -> None:
    client = make_client()
    cluster.apply(egain_token(namespace, "rotating", client_app_spec(emulator, client)))
    cluster.wait_ready(namespace, "rotating")
    first = cluster.secret_data(namespace, "rotating")
    assert first is not None
    new_secret = emulator.rotate_secret(client.client_id)
    client.used_secrets.append(new_secret)
    rotated_at = time.monotonic()
    cluster.apply(credentials_secret(namespace, client.secret_name, client.client_id, new_secret))

    def new_token() -> bool:
        data = cluster.secret_data(namespace, "rotating")
        return data is not None and data["access_token"] != first["access_token"]

    wait_until(new_token, "a token from the new credentials", timeout=15)
    assert time.monotonic() - rotated_at < 10
    data = cluster.secret_data(namespace, "rotating")
    assert data is not None
    assert emulator.is_issued_token(data["access_token"].reveal(), client_id=client.client_id)
    assert all(r.status == 200 for r in emulator.requests(client.client_id)), (
        "sent stale credentials"
    )


def test_spec_change_gets_a_new_token_promptly(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    operator: OperatorProcess,
) -> None:
    client = make_client(scopes=("knowledge.portalmgr.manage", "core.aiservices.read"))
    cluster.apply(egain_token(namespace, "changing", client_app_spec(emulator, client)))
    cluster.wait_ready(namespace, "changing")
    cluster.apply(
        egain_token(
            namespace,
            "changing",
            client_app_spec(emulator, client, scopes=["core.aiservices.read"]),
        )
    )

    def rescoped() -> bool:
        data = cluster.secret_data(namespace, "changing")
        return data is not None and data["scope"] == "core.aiservices.read"

    wait_until(rescoped, "a token for the new scopes", timeout=15)
    token = cluster.wait_ready(namespace, "changing")
    assert token["status"]["observedGeneration"] == 2
    assert successes(emulator, client) == 2


def test_refresh_annotation_forces_a_refresh(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    operator: OperatorProcess,
) -> None:
    client = make_client()
    cluster.apply(egain_token(namespace, "forced", client_app_spec(emulator, client)))
    cluster.wait_ready(namespace, "forced")
    for attempt in (1, 2):
        cluster.kubectl(
            "annotate",
            "egt",
            "forced",
            "-n",
            namespace,
            "--overwrite",
            f"egain.cloud/refresh-requested-at=r{attempt}",
        )
        wait_until(
            functools.partial(lambda n: successes(emulator, client) == n, attempt + 1),
            f"refresh {attempt}",
            timeout=15,
        )
    time.sleep(2)
    assert successes(emulator, client) == 3, "a handled refresh request was answered again"


def test_deleted_or_edited_secret_is_restored(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    operator: OperatorProcess,
) -> None:
    client = make_client()
    cluster.apply(egain_token(namespace, "restored", client_app_spec(emulator, client)))
    cluster.wait_ready(namespace, "restored")
    original = cluster.secret_data(namespace, "restored")
    assert original is not None

    cluster.kubectl("delete", "secret", "restored", "-n", namespace)
    wait_until(
        lambda: cluster.secret_data(namespace, "restored") == original,
        "the deleted Secret back",
        15,
    )

    patch = json.dumps(
        {"data": {"access_token": "aGFja2Vk"}, "metadata": {"labels": {"egain.cloud/token": "x"}}}
    )
    cluster.kubectl("patch", "secret", "restored", "-n", namespace, "--type=merge", "-p", patch)
    wait_until(
        lambda: cluster.secret_data(namespace, "restored") == original,
        "the edited Secret restored",
        15,
    )
    secret = cluster.get("secret", "restored", namespace)
    assert secret is not None
    assert secret["metadata"]["labels"]["egain.cloud/token"] == "restored"
    assert successes(emulator, client) == 1, "restoring should reuse the still-valid token"


def test_foreign_secret_is_never_overwritten(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    operator: OperatorProcess,
) -> None:
    client = make_client()
    foreign = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "taken", "namespace": namespace},
        "stringData": {"mine": "keep me"},
    }
    cluster.apply(foreign)
    before = cluster.get("secret", "taken", namespace)
    cluster.apply(
        egain_token(namespace, "conflicted", client_app_spec(emulator, client, secretName="taken"))
    )
    cluster.wait_ready(namespace, "conflicted", "False", "SecretConflict")
    time.sleep(2)
    after = cluster.get("secret", "taken", namespace)
    assert after == before
    assert emulator.requests(client.client_id) == [], (
        "no token should be requested for a Secret it cannot write"
    )

    cluster.kubectl("delete", "secret", "taken", "-n", namespace)
    cluster.wait_ready(namespace, "conflicted", "True", "TokenIssued", timeout=15)


def test_restarted_operator_keeps_valid_tokens(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    first = start_operator()
    client = make_client()
    for name in ("keep-a", "keep-b"):
        cluster.apply(
            egain_token(namespace, name, client_app_spec(emulator, client, secretName=name))
        )
    for name in ("keep-a", "keep-b"):
        cluster.wait_ready(namespace, name)
    before = {name: cluster.token(namespace, name)["status"] for name in ("keep-a", "keep-b")}
    first.stop()
    start_operator()
    time.sleep(5)
    assert successes(emulator, client) == 2, "a restarted operator requested tokens it already had"
    for name in ("keep-a", "keep-b"):
        assert cluster.token(namespace, name)["status"] == before[name]


def test_restarted_operator_keeps_the_backoff_until_the_credentials_change(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    start_operator: Callable[..., OperatorProcess],
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


def test_deleting_the_egaintoken_deletes_its_secret(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    operator: OperatorProcess,
) -> None:
    client = make_client()
    cluster.apply(egain_token(namespace, "doomed", client_app_spec(emulator, client)))
    cluster.wait_ready(namespace, "doomed")
    cluster.kubectl("delete", "egt", "doomed", "-n", namespace)
    wait_until(
        lambda: cluster.get("secret", "doomed", namespace) is None, "garbage collection", timeout=60
    )


def test_credentials_not_found_then_created(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    operator: OperatorProcess,
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
    operator: OperatorProcess,
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
    assert any(e["reason"] == reason and e["type"] == "Warning" for e in cluster.events(namespace))
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
    time.sleep(8)
    status = cluster.token(namespace, "flaky")["status"]
    assert status["consecutiveFailures"] >= 2
    if fault is not FaultKind.HANG:  # hung requests are logged only once released
        attempts = len(emulator.requests(client.client_id))
        # Backoff 0.5, 1, 2, 4 s (jitter; Retry-After 2 s for 429): a handful, not hundreds.
        assert 3 <= attempts <= 12, attempts
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
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    operator: OperatorProcess,
) -> None:
    client = make_client(lifetime=8)
    cluster.apply(
        egain_token(namespace, "outage", client_app_spec(emulator, client, refreshBefore="6s"))
    )
    cluster.wait_ready(namespace, "outage")
    emulator.set_fault(FaultKind.SERVER_ERROR, count=None, client_id=client.client_id)

    def failed_while_valid() -> dict[str, Any] | None:
        status = cluster.token(namespace, "outage")["status"]
        return status if status.get("consecutiveFailures", 0) >= 2 else None

    status = wait_until(failed_while_valid, "failed refreshes", timeout=15)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    if parse_time(status["expiresAt"]) > datetime.now(UTC):
        assert ready["status"] == "True"
    assert status["lastFailure"]["reason"] == "TokenEndpointUnavailable"
    assert "HTTP 503" in status["lastFailure"]["message"]
    # Once the old token expires, Ready turns False with the failure's reason.
    cluster.wait_ready(namespace, "outage", "False", "TokenEndpointUnavailable", timeout=20)
    emulator.clear_faults()
    cluster.wait_ready(namespace, "outage", "True", "TokenIssued", timeout=15)


def test_token_url_outside_the_allow_list_sends_nothing(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    operator: OperatorProcess,
) -> None:
    client = make_client()
    url = emulator.client_app_token_url(TENANT).replace("localhost", "127.0.0.1")
    cluster.apply(
        egain_token(namespace, "elsewhere", client_app_spec(emulator, client, tokenUrl=url))
    )
    token = cluster.wait_ready(namespace, "elsewhere", "False", "TokenUrlNotAllowed")
    assert "no request was sent" in token["status"]["conditions"][0]["message"]
    time.sleep(2)
    assert emulator.requests() == []


def test_token_requests_go_through_the_proxy_from_the_environment(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    client = make_client()
    with ConnectProxy() as proxy:
        # The API server is at the node's gateway address, the emulator at localhost.
        start_operator(env={"HTTPS_PROXY": proxy.url, "NO_PROXY": cluster.control_plane.gateway})
        cluster.apply(egain_token(namespace, "proxied", client_app_spec(emulator, client)))
        cluster.wait_ready(namespace, "proxied")
        assert f"localhost:{emulator.port}" in proxy.targets


def test_only_the_leader_acts_and_a_standby_takes_over(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    lease = ("--leader-election-lease", f"{namespace}/egain-token-operator")
    first = start_operator(*lease)
    wait_until(first.leading, "the first replica to lead", 30)
    second = start_operator(*lease)
    client = make_client()
    cluster.apply(egain_token(namespace, "shared", client_app_spec(emulator, client)))
    cluster.wait_ready(namespace, "shared")
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


def test_rollout_restart_is_coalesced(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    operator: OperatorProcess,
) -> None:
    cluster.apply(deployment(namespace, "web"))
    client = make_client()
    targets = [{"kind": "Deployment", "name": "web"}]
    cluster.apply(
        egain_token(
            namespace,
            "one",
            client_app_spec(emulator, client, secretName="one", rolloutRestartTargets=targets),
        ),
        egain_token(
            namespace,
            "two",
            client_app_spec(emulator, client, secretName="two", rolloutRestartTargets=targets),
        ),
    )
    cluster.wait_ready(namespace, "one")
    cluster.wait_ready(namespace, "two")

    wait_until(lambda: cluster.restarted_at(namespace, "web"), "the restart annotation", 15)
    time.sleep(3)
    found = cluster.get("deployment", "web", namespace)
    assert found is not None
    # Created at generation 1; two tokens written together restart it once.
    assert found["metadata"]["generation"] == 2
