import base64
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from egain_token_operator.decisions.readback import stored_token
from egain_token_operator.decisions.readiness import Condition, ready_condition
from egain_token_operator.decisions.reasons import Reason
from egain_token_operator.decisions.render import (
    Owner,
    is_owned_by,
    merge_patched,
    render_secret,
    render_status,
    secret_is_current,
    status_is_current,
)
from egain_token_operator.decisions.schedule import Failure, PropagationShortfall, StoredToken
from egain_token_operator.decisions.timestamps import rfc3339
from egain_token_operator.decisions.tokenspec import parse_spec
from tests.unit.fakes import merge_patch

NOW = datetime(2026, 11, 23, 21, 10, tzinfo=UTC)
OWNER = Owner("support-apps", "knowledge-portal", "uid-1")
SPEC = parse_spec(
    "knowledge-portal",
    {
        "tokenUrl": "https://ai.egain.cloud/system/auth/T-U/oauth2/token",
        "scopes": ["knowledge.portalmgr.manage"],
        "credentialsSecretRef": {"name": "egain-client"},
        "secretName": "knowledge-portal-token",
        "secretTemplate": {"labels": {"team": "web"}, "annotations": {"note": "x"}},
    },
)
TOKEN = StoredToken(
    access_token="opaque-token",
    token_type="Bearer",
    scopes=("knowledge.portalmgr.manage",),
    issued_at=NOW,
    expires_at=NOW + timedelta(hours=1),
    fingerprint="f" * 64,
    refresh_request=None,
)


def decoded(secret: dict[str, object]) -> dict[str, str]:
    data = secret["data"]
    assert isinstance(data, dict)
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def test_secret_has_the_contracted_shape() -> None:
    secret = render_secret(TOKEN, SPEC, OWNER)
    assert secret["type"] == "Opaque"
    assert secret["metadata"]["name"] == "knowledge-portal-token"
    assert secret["metadata"]["namespace"] == "support-apps"
    assert decoded(secret) == {
        "access_token": "opaque-token",
        "token_type": "Bearer",
        "authorization": "Bearer opaque-token",
        "expires_at": "2026-11-23T22:10:00Z",
        "scope": "knowledge.portalmgr.manage",
    }
    labels = secret["metadata"]["labels"]
    assert labels == {
        "team": "web",
        "app.kubernetes.io/managed-by": "egain-token-operator",
        "egain.cloud/token": "knowledge-portal",
    }
    annotations = secret["metadata"]["annotations"]
    assert annotations["egain.cloud/issued-at"] == "2026-11-23T21:10:00Z"
    assert annotations["egain.cloud/expires-at"] == "2026-11-23T22:10:00Z"
    assert annotations["note"] == "x"
    (ref,) = secret["metadata"]["ownerReferences"]
    assert ref == {
        "apiVersion": "egain.cloud/v1alpha1",
        "kind": "EgainToken",
        "name": "knowledge-portal",
        "uid": "uid-1",
        "controller": True,
    }


def test_round_trip_through_the_secret() -> None:
    assert stored_token(render_secret(TOKEN, SPEC, OWNER)) == TOKEN


def test_update_keeps_foreign_metadata_and_resource_version() -> None:
    existing = render_secret(TOKEN, SPEC, OWNER)
    existing["metadata"]["resourceVersion"] = "42"
    existing["metadata"]["labels"]["added-by-someone"] = "yes"
    newer = dataclasses.replace(TOKEN, access_token="newer")
    updated = render_secret(newer, SPEC, OWNER, existing=existing)
    assert updated["metadata"]["resourceVersion"] == "42"
    assert updated["metadata"]["labels"]["added-by-someone"] == "yes"
    assert decoded(updated)["access_token"] == "newer"


def test_hand_edits_are_noticed() -> None:
    secret = render_secret(TOKEN, SPEC, OWNER)
    assert secret_is_current(secret, TOKEN, SPEC, OWNER)
    edited = render_secret(TOKEN, SPEC, OWNER)
    edited["data"]["access_token"] = base64.b64encode(b"hacked").decode()
    assert not secret_is_current(edited, TOKEN, SPEC, OWNER)
    relabelled = render_secret(TOKEN, SPEC, OWNER)
    del relabelled["metadata"]["labels"]["egain.cloud/token"]
    assert not secret_is_current(relabelled, TOKEN, SPEC, OWNER)


def test_ownership() -> None:
    assert is_owned_by(render_secret(TOKEN, SPEC, OWNER), OWNER)
    assert not is_owned_by({"metadata": {}}, OWNER)
    assert not is_owned_by(render_secret(TOKEN, SPEC, Owner("ns", "n", "other")), OWNER)


def test_unusable_secrets_hold_no_token() -> None:
    broken = render_secret(TOKEN, SPEC, OWNER)
    del broken["metadata"]["annotations"]["egain.cloud/expires-at"]
    assert stored_token(broken) is None
    assert stored_token({"data": {"access_token": "!!"}}) is None


class TestReadyCondition:
    def failure(self, reason: Reason) -> Failure:
        return Failure(
            2,
            reason,
            "HTTP 503 from ai.egain.cloud",
            NOW,
            NOW + timedelta(seconds=4),
            "f" * 64,
            None,
        )

    def test_true_while_a_current_token_is_valid_even_with_a_failure(self) -> None:
        c = ready_condition(
            spec_error=None,
            ready=True,
            token=TOKEN,
            fingerprint=TOKEN.fingerprint,
            failure=self.failure(Reason.TOKEN_ENDPOINT_UNAVAILABLE),
            now=NOW,
        )
        assert (c.status, c.reason) == ("True", Reason.TOKEN_ISSUED)
        assert c.message == "token valid until 2026-11-23T22:10:00Z"

    def test_short_lifetime_note_keeps_ready_true(self) -> None:
        shortfall = PropagationShortfall(
            lifetime=timedelta(seconds=60),
            lead=timedelta(seconds=30),
            allowance=timedelta(seconds=120),
        )
        c = ready_condition(
            spec_error=None,
            ready=True,
            token=TOKEN,
            fingerprint=TOKEN.fingerprint,
            failure=None,
            now=NOW,
            shortfall=shortfall,
        )
        assert (c.status, c.reason) == ("True", Reason.TOKEN_ISSUED)
        assert c.message == (
            "token valid until 2026-11-23T22:10:00Z; warning: the token lifetime (60s) is "
            "too short for the propagation allowance (120s): it is refreshed 30s before "
            "expiry, so Pods that mount the Secret may still read it after it has expired"
        )
        assert TOKEN.access_token not in c.message

    def test_short_lifetime_note_only_while_ready(self) -> None:
        shortfall = PropagationShortfall(
            timedelta(seconds=60), timedelta(seconds=30), timedelta(seconds=120)
        )
        c = ready_condition(
            spec_error=None,
            ready=False,
            token=TOKEN,
            fingerprint=TOKEN.fingerprint,
            failure=None,
            now=NOW + timedelta(hours=2),
            shortfall=shortfall,
        )
        assert (c.status, c.reason) == ("False", Reason.TOKEN_EXPIRED)
        assert "allowance" not in c.message

    def test_failure_reason_once_not_ready(self) -> None:
        c = ready_condition(
            spec_error=None,
            ready=False,
            token=TOKEN,
            fingerprint=TOKEN.fingerprint,
            failure=self.failure(Reason.RATE_LIMITED),
            now=NOW + timedelta(hours=2),
        )
        assert (c.status, c.reason) == ("False", Reason.RATE_LIMITED)

    def test_expired_without_failure(self) -> None:
        c = ready_condition(
            spec_error=None,
            ready=False,
            token=TOKEN,
            fingerprint=TOKEN.fingerprint,
            failure=None,
            now=NOW + timedelta(hours=2),
        )
        assert (c.status, c.reason) == ("False", Reason.TOKEN_EXPIRED)

    def test_pending(self) -> None:
        c = ready_condition(
            spec_error=None, ready=False, token=None, fingerprint=None, failure=None, now=NOW
        )
        assert (c.status, c.reason) == ("Unknown", Reason.PENDING)


def test_status_keeps_transition_time_while_status_is_unchanged() -> None:
    condition = ready_condition(
        spec_error=None,
        ready=True,
        token=TOKEN,
        fingerprint=TOKEN.fingerprint,
        failure=None,
        now=NOW,
    )
    first = render_status(
        generation=3,
        condition=condition,
        previous_conditions=[],
        secret_name="s",
        token=TOKEN,
        next_refresh_at=NOW + timedelta(minutes=40),
        failure=None,
        now=NOW,
    )
    later = render_status(
        generation=3,
        condition=condition,
        previous_conditions=first["conditions"],
        secret_name="s",
        token=TOKEN,
        next_refresh_at=NOW + timedelta(minutes=40),
        failure=None,
        now=NOW + timedelta(minutes=5),
    )
    assert later == first
    assert first["lastFailure"] is None
    assert first["consecutiveFailures"] == 0
    assert first["expiresAt"] == "2026-11-23T22:10:00Z"
    assert first["nextRefreshAt"] == "2026-11-23T21:50:00Z"
    assert first["conditions"][0]["observedGeneration"] == 3
    assert "opaque-token" not in repr(first)


def ready_status(now: datetime, failure: Failure | None = None) -> dict[str, Any]:
    """The status of a Ready EgainToken, rendered at `now` over no previous condition."""
    return render_status(
        generation=3,
        condition=ready_condition(
            spec_error=None,
            ready=True,
            token=TOKEN,
            fingerprint=TOKEN.fingerprint,
            failure=None,
            now=now,
        ),
        previous_conditions=[],
        secret_name="s",
        token=TOKEN,
        next_refresh_at=NOW + timedelta(minutes=40),
        failure=failure,
        now=now,
        client=None,
    )


def test_a_merge_patch_merges_objects_removes_nulls_and_replaces_the_rest() -> None:
    held = {"a": 1, "gone": "x", "nested": {"keep": 1, "drop": 2}, "list": [1, 2]}
    patch = {"a": 2, "gone": None, "absent": None, "nested": {"drop": None, "new": 3}, "list": [3]}
    assert merge_patched(held, patch) == {"a": 2, "nested": {"keep": 1, "new": 3}, "list": [3]}
    assert held["gone"] == "x", "the held object was changed"


def test_a_status_the_api_server_holds_is_current_for_the_same_render() -> None:
    held = merge_patch({}, ready_status(NOW))  # what the API server keeps: no nulls
    assert "lastFailure" not in held
    # Rendered again later, over no previous condition (its transition time
    # would be new): only that time differs, and it does not count.
    again = ready_status(NOW + timedelta(minutes=5))
    assert (
        again["conditions"][0]["lastTransitionTime"] != held["conditions"][0]["lastTransitionTime"]
    )
    assert status_is_current(held, again)


def test_a_status_with_anything_else_changed_is_not_current() -> None:
    held = merge_patch({}, ready_status(NOW))
    assert not status_is_current({}, ready_status(NOW))
    assert not status_is_current({**held, "secretName": "other"}, ready_status(NOW))
    assert not status_is_current({**held, "lastFailure": {"reason": "x"}}, ready_status(NOW))
    failure = Failure(
        count=1,
        reason=Reason.TOKEN_ENDPOINT_UNAVAILABLE,
        message="HTTP 503",
        at=NOW,
        retry_at=NOW + timedelta(seconds=1),
        fingerprint=None,
        refresh_request=None,
    )
    failed = ready_status(NOW, failure)
    assert not status_is_current(held, failed)
    assert status_is_current(merge_patch(held, failed), failed)
    # Another condition status is a transition: counted, with its new time.
    pending = {**ready_status(NOW), "conditions": [
        {**held["conditions"][0], "status": "Unknown", "lastTransitionTime": "later"}
    ]}  # fmt: skip
    assert not status_is_current(held, pending)


def status_saying(condition: Condition, previous: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The status of an EgainToken (generation 3, no token) whose Ready is
    `condition`, rendered at `now` over the `previous` status."""
    return render_status(
        generation=3,
        condition=condition,
        previous_conditions=previous.get("conditions") or [],
        secret_name="s",
        token=None,
        next_refresh_at=None,
        failure=None,
        now=now,
    )


def test_the_kstatus_conditions_follow_ready_with_their_own_transition_times() -> None:
    at = [rfc3339(NOW + timedelta(minutes=m)) for m in range(4)]
    pending = status_saying(Condition("Unknown", Reason.PENDING, "requesting a token"), {}, NOW)
    assert pending["observedGeneration"] == 3
    assert pending["conditions"] == [
        {
            "type": kind,
            "status": status,
            "reason": "Pending",
            "message": "requesting a token",
            "lastTransitionTime": at[0],
            "observedGeneration": 3,
        }
        for kind, status in (("Ready", "Unknown"), ("Reconciling", "True"))
    ]
    # Still on its way: Reconciling keeps its time, and takes Ready's reason and message.
    failing = Condition("False", Reason.TOKEN_ENDPOINT_UNAVAILABLE, "HTTP 503")
    retrying = status_saying(failing, pending, NOW + timedelta(minutes=1))
    assert [(c["type"], c["reason"], c["lastTransitionTime"]) for c in retrying["conditions"]] == [
        ("Ready", "TokenEndpointUnavailable", at[1]),
        ("Reconciling", "TokenEndpointUnavailable", at[0]),
    ]
    # Ready: the kstatus conditions are removed, not written False.
    issued = Condition("True", Reason.TOKEN_ISSUED, "token valid until …")
    ready = status_saying(issued, retrying, NOW + timedelta(minutes=2))
    assert [(c["type"], c["status"]) for c in ready["conditions"]] == [("Ready", "True")]
    assert not status_is_current(merge_patch({}, retrying), ready)
    # A permanent failure: Stalled, from when it began.
    refused = Condition("False", Reason.INVALID_CREDENTIALS, "HTTP 401")
    stalled = status_saying(refused, ready, NOW + timedelta(minutes=3))
    assert [(c["type"], c["status"], c["lastTransitionTime"]) for c in stalled["conditions"]] == [
        ("Ready", "False", at[3]),
        ("Stalled", "True", at[3]),
    ]
    # Rendered again later over what the API server holds: nothing to write.
    held = merge_patch({}, stalled)
    assert status_is_current(held, status_saying(refused, held, NOW + timedelta(minutes=9)))
    assert status_is_current(held, status_saying(refused, {}, NOW + timedelta(minutes=9)))
