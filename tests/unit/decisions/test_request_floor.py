"""The request floor: two token requests for one EgainToken never closer than a
120th of the token's lifetime, whatever `refreshBefore` or forced refreshes say;
forced refreshes too soon are deferred (said once), never dropped."""

from dataclasses import replace
from datetime import timedelta

import pytest

from egain_token_operator.decisions.checks import Snapshot
from egain_token_operator.decisions.policy import Memory, Plan, plan
from egain_token_operator.decisions.reasons import Reason
from egain_token_operator.decisions.schedule import (
    Failure,
    RefreshBeforeClamp,
    next_request_allowed,
    refresh_at,
    refresh_before_clamp,
    request_floor,
)
from egain_token_operator.decisions.tokenspec import parse_spec
from tests.unit.samples import NOW, POLICY, token

SPEC = parse_spec(
    "t",
    {
        "tokenUrl": "https://ai.egain.cloud/system/auth/T-U/oauth2/token",
        "scopes": ["a"],
        "credentialsSecretRef": {"name": "creds"},
    },
)
SEEN = Snapshot(uid="uid-1", generation=1, refresh_request=None, spec=SPEC, fingerprint="fp")
# A second short of the hour-long lifetime: a request every second without the floor.
HAMMERING = replace(SPEC, refresh_before=timedelta(seconds=3599))
# 30 s (a 120th of an hour) after the second of issue: issue times are truncated.
ALLOWED = NOW + timedelta(seconds=31)


def test_the_floor_is_a_share_of_the_lifetime_and_at_least_a_second() -> None:
    assert request_floor(timedelta(hours=1)) == timedelta(seconds=30)
    assert request_floor(timedelta(hours=24)) == timedelta(minutes=12)
    assert request_floor(timedelta(seconds=60)) == timedelta(seconds=1)
    assert next_request_allowed(token()) == ALLOWED
    # A failed request since counts from when it failed.
    assert next_request_allowed(token(), NOW + timedelta(minutes=5)) == NOW + timedelta(
        minutes=5, seconds=30
    )
    # Never past expiry: a token is always replaced by then.
    tiny = token(lifetime=timedelta(seconds=1))
    assert next_request_allowed(tiny) == tiny.expires_at


@pytest.mark.parametrize("jitter", [0.0, 0.5, 0.999999])
def test_a_refresh_before_too_long_is_clamped_to_the_floor(jitter: float) -> None:
    assert refresh_at(token(), timedelta(seconds=3599), POLICY, jitter) == ALLOWED
    # One within the floor is honoured (the jitter may take it to the floor).
    honoured = refresh_at(token(), timedelta(minutes=50), POLICY, 0.0)
    assert honoured == NOW + timedelta(minutes=10)


def test_the_status_says_what_a_clamped_refresh_before_becomes() -> None:
    clamp = refresh_before_clamp(token(), timedelta(seconds=3599))
    assert clamp == RefreshBeforeClamp(
        given=timedelta(seconds=3599),
        taken=timedelta(seconds=3569),
        floor=timedelta(seconds=30),
        lifetime=timedelta(hours=1),
    )
    assert refresh_before_clamp(token(), timedelta(minutes=50)) is None
    assert refresh_before_clamp(token(), timedelta(hours=2)) is None  # the default applies
    assert refresh_before_clamp(token(), None) is None
    made = plan(replace(SEEN, spec=HAMMERING), Memory(token(), None, True), NOW, POLICY)
    assert made.condition.status == "True"
    assert made.condition.message == (
        "token valid until 2026-11-23T22:00:00Z; refreshBefore 3599s is taken as 3569s: "
        "token requests for one EgainToken come at least 30s apart "
        "(a 120th of the 3600s lifetime)"
    )
    assert made.next_refresh_at == made.wake_at == ALLOWED


def forced(value: str, memory: Memory, now: timedelta = timedelta(seconds=10)) -> Plan:
    """A look `now` after the token's issue, with `value` forcing a refresh."""
    return plan(replace(SEEN, refresh_request=value), memory, NOW + now, POLICY)


def test_a_forced_refresh_too_soon_is_deferred_said_once_and_served_later() -> None:
    held = Memory(token(), None, True)
    first = forced("1", held)
    assert not first.request_token
    assert first.deferred_until == first.wake_at == first.next_refresh_at == ALLOWED
    assert first.deferral_is_news and first.condition.status == "True"
    # Said once per value; a new value is said again.
    assert not forced("1", first.memory).deferral_is_news
    assert forced("2", first.memory).deferral_is_news
    # Served when allowed, not dropped.
    served = forced("2", first.memory, now=ALLOWED - NOW)
    assert served.request_token and served.why == "refresh requested by annotation"
    assert served.deferred_until is None


def test_a_due_token_is_refreshed_whatever_the_forced_refresh() -> None:
    due = token(issued=NOW - timedelta(minutes=50))
    assert forced("1", Memory(due, None, True)).request_token


def test_a_new_forced_refresh_after_a_failed_one_waits_for_the_floor() -> None:
    # The token was issued long ago; a forced request failed 5 s ago (eGain
    # answered 429): another value does not bypass the floor.
    old = token(issued=NOW - timedelta(minutes=5))
    failed = Failure(
        1,
        Reason.RATE_LIMITED,
        "429",
        NOW + timedelta(seconds=5),
        NOW + timedelta(seconds=6),
        "fp",
        "1",
    )
    again = forced("2", Memory(old, failed, True))
    assert not again.request_token
    assert again.deferred_until == NOW + timedelta(seconds=35)
    # The retry of the same forced refresh keeps its own backoff.
    retry = forced("1", Memory(old, failed, True), now=timedelta(seconds=6))
    assert retry.request_token
