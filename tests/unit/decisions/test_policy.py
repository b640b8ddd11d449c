"""The refresh decision, `policy.plan`: a snapshot and a memory in, a plan out."""

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from egain_token_operator.decisions.checks import Snapshot, is_ready
from egain_token_operator.decisions.policy import Memory, after_fetch, in_flight, plan
from egain_token_operator.decisions.reasons import Reason, TokenError
from egain_token_operator.decisions.schedule import (
    Failure,
    StoredToken,
    refresh_at,
    stable_fraction,
)
from egain_token_operator.decisions.timestamps import rfc3339
from egain_token_operator.decisions.tokenspec import parse_spec
from tests.unit.samples import NOW, POLICY, failure, token

UID = "uid-1"
SPEC = parse_spec(
    "t",
    {
        "tokenUrl": "https://ai.egain.cloud/system/auth/T-U/oauth2/token",
        "scopes": ["a"],
        "credentialsSecretRef": {"name": "creds"},
    },
)
SEEN = Snapshot(
    uid=UID,
    generation=1,
    refresh_request=None,
    spec=SPEC,
    fingerprint="fp",
    credentials_version="7",
)


def refresh_time(stored: StoredToken) -> datetime:
    return refresh_at(stored, None, POLICY, stable_fraction(UID, rfc3339(stored.issued_at)))


def decide(
    *,
    now: datetime = NOW,
    fingerprint: str = "fp",
    refresh_request: str | None = None,
    token: StoredToken | None = None,
    failure: Failure | None = None,
) -> tuple[bool, datetime | None]:
    """A look whose local checks pass, with what the worker remembers."""
    snapshot = replace(SEEN, fingerprint=fingerprint, refresh_request=refresh_request)
    made = plan(snapshot, Memory(token, failure, looked=True), now, POLICY)
    return made.request_token, made.wake_at


class TestDecide:
    def test_no_token_requests_one(self) -> None:
        assert decide() == (True, None)

    def test_valid_token_waits_for_its_refresh_time(self) -> None:
        stored = token()
        request, wake_at = decide(token=stored)
        assert not request
        assert wake_at == refresh_time(stored)

    def test_due_token_is_refreshed(self) -> None:
        stored = token(issued=NOW - timedelta(minutes=50))
        assert refresh_time(stored) < NOW
        assert decide(token=stored)[0]

    def test_changed_spec_or_credentials_get_a_new_token_at_once(self) -> None:
        assert decide(fingerprint="other", token=token())[0]

    def test_expired_token_is_replaced(self) -> None:
        assert decide(token=token(issued=NOW - timedelta(hours=2)))[0]

    def test_new_refresh_request_forces_a_refresh_once(self) -> None:
        # Issued longer ago than the request floor (30 s for an hour-long token).
        settled = NOW - timedelta(minutes=1)
        assert decide(refresh_request="1", token=token(issued=settled))[0]
        assert not decide(refresh_request="1", token=token(settled, refresh_request="1"))[0]

    def test_failure_holds_back_until_its_retry_time(self) -> None:
        f = failure(Reason.INVALID_CREDENTIALS, NOW + timedelta(minutes=10))
        assert decide(failure=f) == (False, f.retry_at)
        assert decide(now=f.retry_at, failure=f)[0]

    def test_failure_for_another_spec_does_not_hold_back(self) -> None:
        f = failure(Reason.INVALID_CREDENTIALS, NOW + timedelta(minutes=10))
        assert decide(fingerprint="new", failure=f)[0]

    def test_failure_restored_after_restart_holds_back(self) -> None:
        f = failure(
            Reason.TOKEN_ENDPOINT_UNAVAILABLE, NOW + timedelta(seconds=30), fingerprint=None
        )
        assert not decide(fingerprint="any", failure=f)[0]

    def test_new_refresh_request_overrides_the_backoff(self) -> None:
        f = failure(Reason.INVALID_SCOPE, NOW + timedelta(minutes=10))
        assert decide(refresh_request="2", failure=f)[0]


CURRENT = token()
SETTLED = token(issued=NOW - timedelta(minutes=1))  # past the request floor
DUE = token(issued=NOW - timedelta(minutes=50))
BACKOFF = failure(Reason.TOKEN_ENDPOINT_UNAVAILABLE, NOW + timedelta(seconds=30))
RESTORED = replace(BACKOFF, fingerprint=None, credentials_version="7")
LOCAL = failure(Reason.SECRET_CONFLICT, NOW + timedelta(minutes=10))


@pytest.mark.parametrize(
    ("snapshot", "memory", "request_token", "why", "reason"),
    [
        # The local checks, in order; nothing is requested.
        (replace(SEEN, spec=None, spec_error="bad"), Memory(), False, "bad", "InvalidSpec"),
        (
            replace(SEEN, fingerprint=None, credentials_error="no creds"),
            Memory(),
            False,
            "no creds",
            "CredentialsNotFound",
        ),
        (replace(SEEN, conflict="taken"), Memory(), False, "taken", "SecretConflict"),
        # A local failure holds nothing back once its cause is gone.
        (SEEN, Memory(None, LOCAL, True), True, "no valid token", "Pending"),
        # The token read back from the Secret is used when none is remembered.
        (replace(SEEN, stored_token=CURRENT), Memory(), False, "waiting", "TokenIssued"),
        (SEEN, Memory(DUE, None, True), True, "due for refresh", "TokenIssued"),
        (SEEN, Memory(DUE, BACKOFF, True), False, "backing off", "TokenIssued"),
        (
            replace(SEEN, refresh_request="now"),
            Memory(SETTLED, None, True),
            True,
            "requested by annotation",
            "TokenIssued",
        ),
        # The first look takes the backoff over from the status...
        (
            replace(SEEN, recorded_failure=RESTORED, status_generation=1),
            Memory(),
            False,
            "backing off",
            "TokenEndpointUnavailable",
        ),
        # ...unless the spec changed since,
        (
            replace(SEEN, recorded_failure=RESTORED, status_generation=0),
            Memory(),
            True,
            "no valid token",
            "Pending",
        ),
        # or the credentials Secret changed since (it has another resourceVersion),
        (
            replace(SEEN, recorded_failure=RESTORED, status_generation=1, credentials_version="8"),
            Memory(),
            True,
            "no valid token",
            "Pending",
        ),
        # or the status does not say which credentials the failure was for.
        (
            replace(
                SEEN,
                recorded_failure=replace(RESTORED, credentials_version=None),
                status_generation=1,
            ),
            Memory(),
            True,
            "no valid token",
            "Pending",
        ),
    ],
)
def test_plan(
    snapshot: Snapshot, memory: Memory, request_token: bool, why: str, reason: str
) -> None:
    made = plan(snapshot, memory, NOW, POLICY)
    assert made.request_token is request_token
    assert why in made.why
    assert made.condition.reason.value == reason


def test_a_local_failure_is_recorded_and_said_once() -> None:
    first = plan(replace(SEEN, conflict="taken"), Memory(), NOW, POLICY)
    assert first.failure is not None and first.failure.reason is Reason.SECRET_CONFLICT
    assert first.failure_is_news
    assert first.wake_at == first.failure.retry_at == first.next_refresh_at
    again = plan(replace(SEEN, conflict="taken"), first.memory, NOW, POLICY)
    assert again.failure is not None and again.failure.count == 2
    assert not again.failure_is_news


def test_a_backing_off_valid_token_sleeps_until_the_retry_not_its_past_refresh_time() -> None:
    made = plan(SEEN, Memory(DUE, BACKOFF, True), NOW, POLICY)
    assert made.condition.status == "True"
    assert made.wake_at == BACKOFF.retry_at
    assert made.next_refresh_at == BACKOFF.retry_at


def test_after_fetch_settles_the_plan() -> None:
    before = plan(SEEN, Memory(None, BACKOFF, True), NOW + timedelta(minutes=1), POLICY)
    assert before.request_token
    issued = token(issued=NOW + timedelta(minutes=1))
    done = after_fetch(SEEN, before, at=issued.issued_at, policy=POLICY, token=issued)
    assert not done.request_token
    assert done.failure is None and done.token == issued
    assert done.wake_at == done.next_refresh_at == refresh_time(issued)
    assert done.shortfall_warning is None

    error = TokenError("HTTP 503", reason=Reason.TOKEN_ENDPOINT_UNAVAILABLE, retry_after=20)
    failed = after_fetch(SEEN, before, at=NOW, policy=POLICY, error=error)
    assert failed.failure is not None
    assert failed.failure.count == 2 and failed.failure.fingerprint == "fp"
    assert failed.wake_at == NOW + timedelta(seconds=20)
    assert failed.failure_is_news


def test_a_request_that_outlasts_the_token_settles_not_ready() -> None:
    held = token(issued=NOW - timedelta(minutes=50))
    before = plan(SEEN, Memory(held, None, True), NOW, POLICY)
    assert before.request_token and before.condition.status == "True"
    error = TokenError("timed out", reason=Reason.TOKEN_ENDPOINT_UNAVAILABLE)
    # Judged when the request ended, not when the look began.
    late = after_fetch(SEEN, before, at=held.expires_at, policy=POLICY, error=error)
    assert (late.condition.status, late.condition.reason) == ("False", error.reason)
    early = after_fetch(SEEN, before, at=NOW, policy=POLICY, error=error)
    assert early.condition.status == "True"


def test_in_flight_reports_the_token_expired_at_its_expiry() -> None:
    held = token(issued=NOW - timedelta(minutes=50))
    before = plan(SEEN, Memory(held, None, True), NOW, POLICY)
    still = in_flight(SEEN, before, now=held.expires_at - timedelta(seconds=1), policy=POLICY)
    assert still.condition.status == "True" and not still.request_token
    expired = in_flight(SEEN, before, now=held.expires_at, policy=POLICY)
    assert (expired.condition.status, expired.condition.reason) == ("False", Reason.TOKEN_EXPIRED)
    assert not expired.request_token and expired.reported_token == held
    # After a failed refresh, the failure's reason.
    failed = Failure(2, Reason.TOKEN_ENDPOINT_UNAVAILABLE, "HTTP 503", NOW, NOW, "fp", None)
    before = plan(SEEN, Memory(held, failed, True), NOW, POLICY)
    assert before.request_token
    expired = in_flight(SEEN, before, now=held.expires_at, policy=POLICY)
    assert expired.condition.reason == Reason.TOKEN_ENDPOINT_UNAVAILABLE
    assert expired.condition.message == "HTTP 503"


def test_ready_needs_a_current_unexpired_token() -> None:
    assert is_ready(token(), "fp", NOW)
    assert not is_ready(token(), "other", NOW)
    assert not is_ready(token(), None, NOW)
    assert not is_ready(None, "fp", NOW)
    assert not is_ready(token(), "fp", NOW + timedelta(hours=1))
