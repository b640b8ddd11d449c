"""The schedule's documented promises, for any token, spec, settings and failure history.

The table tests in test_schedule.py and test_policy.py pin chosen rows; these
draw the inputs instead, over everything the operator can be given: lifetimes
eGain may send (`MIN_TOKEN_LIFETIME` to `MAX_TOKEN_LIFETIME`), any
`refreshBefore` the CRD accepts, any `--refresh-jitter`,
`--propagation-allowance` and retry delays the settings accept, any jitter
draw, and any run of consecutive failures. The bounds asserted are the ones
docs/api.md states ("When a token is refreshed", "When a failed request is
retried"), written out here rather than taken from the code, so a change of
either shows.

Hypothesis runs derandomized and without its example database: the same
examples at every run, on every machine, so a failure is never a flake.
"""

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from egain_token_operator.decisions.checks import Snapshot
from egain_token_operator.decisions.policy import Memory, plan, record_failure
from egain_token_operator.decisions.reasons import Reason
from egain_token_operator.decisions.schedule import (
    Failure,
    RetryPolicy,
    StoredToken,
    refresh_at,
    retry_delay,
)
from egain_token_operator.decisions.tokenspec import parse_spec
from egain_token_operator.egain.response import MAX_TOKEN_LIFETIME, MIN_TOKEN_LIFETIME

PROPERTIES = settings(max_examples=150, deadline=None, derandomize=True, database=None)

# docs/api.md, "When a token is refreshed" and "When a failed request is retried".
MIN_AFTER_ISSUE = timedelta(seconds=1)
MIN_RETRY = timedelta(seconds=0.5)
EXPIRED_MAX_RETRY = timedelta(seconds=20)
VALIDITY_SHARE = 0.25
TRANSIENT = (Reason.TOKEN_ENDPOINT_UNAVAILABLE, Reason.RATE_LIMITED, Reason.INVALID_TOKEN_RESPONSE)
# Every reason a failed attempt is recorded with; those not transient are permanent.
FAILURES = tuple(
    reason
    for reason in Reason
    if reason not in (Reason.TOKEN_ISSUED, Reason.PENDING, Reason.TOKEN_EXPIRED)
)
# timedelta keeps microseconds: a product with a float may round by one.
ROUNDING = timedelta(microseconds=1)
# The largest jitter draw: `refresh_at` takes one in [0, 1).
LAST_DRAW = math.nextafter(1.0, 0.0)
URL = "https://ai.egain.cloud/system/auth/T-U/oauth2/token"


def seconds(low: float, high: float) -> st.SearchStrategy[timedelta]:
    """Spans from `low` to `high` seconds: whole seconds and fractions both."""
    whole = st.integers(math.ceil(low), math.floor(high)).map(lambda s: timedelta(seconds=s))
    fractional = st.floats(low, high, allow_nan=False, allow_infinity=False)
    return st.one_of(whole, fractional.map(lambda s: timedelta(seconds=s)))


lifetimes = seconds(MIN_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME).filter(
    lambda span: span >= timedelta(seconds=MIN_TOKEN_LIFETIME)  # not rounded below
)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
# `refreshBefore`: whole seconds (`90s`, `10m`, `1h30m`), zero included; unset.
refresh_befores = st.none() | st.integers(0, 2 * 366 * 24 * 3600).map(
    lambda s: timedelta(seconds=s)
)
draws = st.floats(0.0, 1.0, exclude_max=True)


@st.composite
def policies(draw: st.DrawFn) -> RetryPolicy:
    """Settings as `settings.parse_settings` accepts them: a jitter fraction in
    [0, 1), an allowance >= 0, positive delays, the initial one not above the max."""
    initial = draw(seconds(0.001, 3600))
    return RetryPolicy(
        refresh_jitter=draw(st.floats(0.0, 1.0, exclude_max=True)),
        initial_delay=initial,
        max_delay=draw(seconds(initial.total_seconds(), 86400).filter(lambda d: d >= initial)),
        permanent_delay=draw(seconds(0.001, 86400).filter(lambda d: d > timedelta(0))),
        propagation_allowance=draw(seconds(0, 86400)),
    )


def stored(issued_at: datetime, lifetime: timedelta) -> StoredToken:
    return StoredToken(
        access_token="opaque",
        token_type="Bearer",
        scopes=("a",),
        issued_at=issued_at,
        expires_at=issued_at + lifetime,
        fingerprint="fp",
        refresh_request=None,
    )


class TestRefreshTime:
    @PROPERTIES
    @given(instants, lifetimes, refresh_befores, policies(), draws)
    def test_it_lies_between_a_second_after_issue_and_expiry(
        self,
        issued_at: datetime,
        lifetime: timedelta,
        refresh_before: timedelta | None,
        policy: RetryPolicy,
        jitter: float,
    ) -> None:
        token = stored(issued_at, lifetime)
        at = refresh_at(token, refresh_before, policy, jitter)
        assert token.issued_at + MIN_AFTER_ISSUE <= at <= token.expires_at

    @PROPERTIES
    @given(instants, lifetimes, refresh_befores, policies())
    def test_without_jitter_it_is_the_earlier_of_refresh_before_and_the_allowance(
        self,
        issued_at: datetime,
        lifetime: timedelta,
        refresh_before: timedelta | None,
        policy: RetryPolicy,
    ) -> None:
        token = stored(issued_at, lifetime)
        before = refresh_before if refresh_before is not None else lifetime / 3
        if before >= lifetime:  # falls back to the default
            before = lifetime / 3
        # The allowance never brings the refresh before half the lifetime.
        by_allowance = max(
            token.expires_at - policy.propagation_allowance, issued_at + lifetime / 2
        )
        documented = max(min(token.expires_at - before, by_allowance), issued_at + MIN_AFTER_ISSUE)
        at = refresh_at(token, refresh_before, policy, 0.0)
        assert abs(at - documented) <= ROUNDING

    @PROPERTIES
    @given(instants, lifetimes, refresh_befores, policies(), draws)
    def test_jitter_takes_at_most_its_share_of_the_lead_off(
        self,
        issued_at: datetime,
        lifetime: timedelta,
        refresh_before: timedelta | None,
        policy: RetryPolicy,
        jitter: float,
    ) -> None:
        token = stored(issued_at, lifetime)
        unjittered = refresh_at(token, refresh_before, policy, 0.0)
        jittered = refresh_at(token, refresh_before, policy, jitter)
        lead = token.expires_at - unjittered
        assert jittered <= unjittered
        assert unjittered - jittered <= lead * policy.refresh_jitter + ROUNDING

    @PROPERTIES
    @given(
        st.uuids().map(str),
        instants,
        lifetimes,
        refresh_befores,
        policies(),
        # Moments of the token's life, short of its expiry (then it is no longer Ready).
        st.lists(st.floats(0.0, 0.99), min_size=2, max_size=4),
    )
    def test_every_look_and_every_restart_plans_the_same_refresh(
        self,
        uid: str,
        issued_at: datetime,
        lifetime: timedelta,
        refresh_before: timedelta | None,
        policy: RetryPolicy,
        moments: list[float],
    ) -> None:
        """The jitter comes from the EgainToken's uid and the issue time, not from
        the look: looks at any moments of the token's life, each by a worker that
        remembers the last look or by one just restarted, plan one refresh time."""
        token = stored(issued_at, lifetime)
        body = {"tokenUrl": URL, "scopes": ["a"], "credentialsSecretRef": {"name": "creds"}}
        if refresh_before is not None:
            body["refreshBefore"] = f"{refresh_before.total_seconds():.0f}s"
        snapshot = Snapshot(
            uid=uid,
            generation=1,
            refresh_request=None,
            spec=parse_spec("t", body),
            fingerprint="fp",
            stored_token=token,
        )
        looks = [issued_at + lifetime * moment for moment in sorted(moments)]
        planned: set[datetime | None] = set()
        memory = Memory()
        for now in looks:
            remembered = plan(snapshot, memory, now, policy)
            restarted = plan(snapshot, Memory(), now, policy)
            planned |= {remembered.next_refresh_at, restarted.next_refresh_at}
            memory = remembered.memory
        (at,) = planned
        assert at is not None
        assert token.issued_at + MIN_AFTER_ISSUE <= at <= token.expires_at
        assert (
            refresh_at(token, refresh_before, policy, LAST_DRAW)
            <= at
            <= refresh_at(token, refresh_before, policy, 0.0)
        )


@dataclass(frozen=True)
class Bounds:
    """The documented range of one retry wait."""

    low: timedelta
    high: timedelta


def documented_wait(
    failures: int,
    retry_after: float | None,
    remaining_validity: timedelta | None,
    policy: RetryPolicy,
) -> Bounds:
    """docs/api.md, "When a failed request is retried", for a transient failure."""
    # Doubling stops mattering once past the max delay, which 2**32 steps
    # always are for the delays drawn here; the cap keeps timedelta in range.
    step = min(policy.initial_delay * 2 ** min(failures - 1, 32), policy.max_delay)
    valid = remaining_validity is not None and remaining_validity > timedelta(0)
    if not valid:
        step = min(step, EXPIRED_MAX_RETRY)
    low, high = step / 2, step  # at random from the upper half of its step
    if valid:
        assert remaining_validity is not None
        high = min(high, remaining_validity * VALIDITY_SHARE)
        low = min(low, high)
    if retry_after is not None:  # honoured above all, up to the max delay
        honoured = min(timedelta(seconds=retry_after), policy.max_delay)
        low, high = max(low, honoured), max(high, honoured)
    return Bounds(max(low, MIN_RETRY), max(high, MIN_RETRY))


retry_afters = st.none() | st.floats(0.0, 10**6, allow_nan=False)
# Consecutive failures: the first few, where each doubles the step, and any count.
counts = st.integers(1, 12) | st.integers(1, 10_000)
# The validity a token has left, if any: minutes, where its cap bites, and anything.
remaining = st.none() | seconds(-60, 600) | seconds(-86400, MAX_TOKEN_LIFETIME)


class TestRetryWait:
    @PROPERTIES
    @given(
        counts,
        st.sampled_from(TRANSIENT),
        retry_afters,
        remaining,
        policies(),
        draws,
    )
    def test_a_transient_failure_waits_within_the_documented_bounds(
        self,
        failures: int,
        reason: Reason,
        retry_after: float | None,
        remaining_validity: timedelta | None,
        policy: RetryPolicy,
        jitter: float,
    ) -> None:
        wait = retry_delay(
            failures=failures,
            reason=reason,
            retry_after=retry_after,
            remaining_validity=remaining_validity,
            policy=policy,
            jitter=jitter,
        )
        bounds = documented_wait(failures, retry_after, remaining_validity, policy)
        assert bounds.low - ROUNDING <= wait <= bounds.high + ROUNDING

    @PROPERTIES
    @given(
        counts,
        st.sampled_from([reason for reason in FAILURES if reason not in TRANSIENT]),
        retry_afters,
        remaining,
        policies(),
        draws,
    )
    def test_a_permanent_failure_waits_the_permanent_delay(
        self,
        failures: int,
        reason: Reason,
        retry_after: float | None,
        remaining_validity: timedelta | None,
        policy: RetryPolicy,
        jitter: float,
    ) -> None:
        wait = retry_delay(
            failures=failures,
            reason=reason,
            retry_after=retry_after,
            remaining_validity=remaining_validity,
            policy=policy,
            jitter=jitter,
        )
        assert wait == policy.permanent_delay

    @PROPERTIES
    @given(
        st.uuids().map(str),
        instants,
        lifetimes,
        policies(),
        st.lists(
            st.tuples(st.sampled_from(FAILURES), retry_afters, draws),
            min_size=1,
            max_size=12,
        ),
    )
    def test_any_failure_history_retries_within_bounds_and_the_same_after_a_restart(
        self,
        uid: str,
        issued_at: datetime,
        lifetime: timedelta,
        policy: RetryPolicy,
        history: list[tuple[Reason, float | None, float]],
    ) -> None:
        """Consecutive failures, each at a moment of the token's life or after it
        (up to twice its lifetime), counted up: each retry time within the
        documented bounds for its count, and a second run over the same history
        (a restarted operator restoring the failure) answering the same times."""
        token = stored(issued_at, lifetime)
        snapshot = Snapshot(
            uid=uid, generation=1, refresh_request=None, spec=None, fingerprint="fp"
        )

        def run() -> list[Failure]:
            failures: list[Failure] = []
            previous: Failure | None = None
            for reason, retry_after, moment in history:
                now = issued_at + lifetime * 2 * moment
                if previous is not None:
                    now = max(now, previous.at)
                previous = record_failure(
                    previous, reason, "failed", retry_after, snapshot, token, now, policy
                )
                failures.append(previous)
            return failures

        recorded = run()
        assert run() == recorded
        for count, failure in enumerate(recorded, start=1):
            assert failure.count == count
            wait = failure.retry_at - failure.at
            if failure.reason not in TRANSIENT:
                assert wait == policy.permanent_delay
                continue
            left = token.expires_at - failure.at if token.is_valid(failure.at) else None
            retry_after = history[count - 1][1]
            bounds = documented_wait(count, retry_after, left, policy)
            assert bounds.low - ROUNDING <= wait <= bounds.high + ROUNDING
