import itertools
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from egain_token_operator.decisions.reasons import Reason
from egain_token_operator.decisions.schedule import (
    MIN_RETRY_DELAY,
    PropagationShortfall,
    RetryPolicy,
    propagation_shortfall,
    propagation_warning_is_new,
    refresh_at,
    retry_delay,
    stable_fraction,
)
from tests.unit.clock import Clock
from tests.unit.samples import NOW, POLICY, token


class TestRefreshAt:
    def test_default_is_one_third_of_the_lifetime_before_expiry(self) -> None:
        assert refresh_at(token(), None, POLICY, jitter=0.0) == NOW + timedelta(minutes=40)

    def test_refresh_before_is_honoured(self) -> None:
        got = refresh_at(token(), timedelta(minutes=10), POLICY, jitter=0.0)
        assert got == NOW + timedelta(minutes=50)

    def test_jitter_only_makes_it_earlier_and_by_at_most_the_fraction(self) -> None:
        latest = refresh_at(token(), timedelta(minutes=10), POLICY, jitter=0.0)
        earliest = refresh_at(token(), timedelta(minutes=10), POLICY, jitter=0.999999)
        assert earliest < latest
        assert latest - earliest <= timedelta(minutes=1)

    def test_refresh_before_not_shorter_than_lifetime_falls_back_to_default(self) -> None:
        short = token(lifetime=timedelta(minutes=5))
        # The fallback alone: the default propagation allowance (120 s) would
        # otherwise win over a third of this 5-minute lifetime.
        no_allowance = replace(POLICY, propagation_allowance=timedelta(0))
        got = refresh_at(short, timedelta(minutes=10), no_allowance, jitter=0.0)
        assert got == NOW + timedelta(minutes=5) - timedelta(minutes=5) / 3

    def test_tiny_lifetimes_never_refresh_sooner_than_a_second(self) -> None:
        tiny = token(lifetime=timedelta(seconds=1))
        assert refresh_at(tiny, None, POLICY, jitter=0.5) == NOW + timedelta(seconds=1)

    def test_stable_fraction_is_deterministic_and_spread(self) -> None:
        assert stable_fraction("uid-1", "t") == stable_fraction("uid-1", "t")
        values = {stable_fraction(f"uid-{i}", "t") for i in range(100)}
        assert len(values) == 100
        assert all(0.0 <= v < 1.0 for v in values)
        assert min(values) < 0.1
        assert max(values) > 0.9


def allowing(seconds: float) -> RetryPolicy:
    return replace(POLICY, propagation_allowance=timedelta(seconds=seconds))


def refreshes(
    policy: RetryPolicy,
    lifetime: timedelta,
    refresh_before: timedelta | None,
    jitter: float,
    span: timedelta,
) -> list[datetime]:
    """Issue times over `span`: each token replaced when `refresh_at` says, nothing in between."""
    clock = Clock(NOW)
    issued = [clock.now]
    while clock.now < NOW + span:
        due = refresh_at(token(issued[-1], lifetime), refresh_before, policy, jitter)
        assert due > clock.now, "a refresh was due at once"
        clock.now = due
        issued.append(clock.now)
    return issued


class TestPropagationAllowance:
    def test_default_is_120_seconds(self) -> None:
        assert RetryPolicy().propagation_allowance == timedelta(seconds=120)

    def test_long_tokens_keep_their_refresh_before(self) -> None:
        # A third of an hour (20 min) is far more than the allowance.
        assert refresh_at(token(), None, allowing(120), 0.0) == NOW + timedelta(minutes=40)
        got = refresh_at(token(), timedelta(minutes=10), allowing(120), 0.0)
        assert got == NOW + timedelta(minutes=50)

    def test_the_earlier_of_refresh_before_and_the_allowance(self) -> None:
        # refreshBefore 1 min of a 1 h token: the 120 s allowance comes first.
        got = refresh_at(token(), timedelta(minutes=1), allowing(120), 0.0)
        assert got == NOW + timedelta(hours=1) - timedelta(seconds=120)
        # A 5 min token: a third is 100 s, the allowance 120 s.
        five = token(lifetime=timedelta(minutes=5))
        assert refresh_at(five, None, allowing(120), 0.0) == NOW + timedelta(minutes=3)

    def test_never_before_half_the_lifetime_on_account_of_the_allowance(self) -> None:
        short = token(lifetime=timedelta(seconds=60))
        assert refresh_at(short, None, allowing(120), 0.0) == NOW + timedelta(seconds=30)
        # Half of a 3 s token is sooner than the request floor allows: the
        # floor (1 s) after the second of its issue (issue times are truncated).
        tiny = token(lifetime=timedelta(seconds=3))
        assert refresh_at(tiny, None, allowing(120), 0.0) == NOW + timedelta(seconds=2)

    def test_a_longer_refresh_before_still_wins_over_the_bound(self) -> None:
        # refreshBefore asks for more than half the lifetime: honoured as before.
        short = token(lifetime=timedelta(seconds=8))
        got = refresh_at(short, timedelta(seconds=6), allowing(120), 0.0)
        assert got == NOW + timedelta(seconds=2)

    def test_jitter_takes_a_fraction_of_the_lead_that_wins(self) -> None:
        latest = refresh_at(token(), timedelta(minutes=1), allowing(120), 0.0)
        earliest = refresh_at(token(), timedelta(minutes=1), allowing(120), 0.999999)
        assert earliest < latest
        assert latest - earliest <= timedelta(seconds=12)  # 10% of 120 s
        short = token(lifetime=timedelta(seconds=60))
        jittered = refresh_at(short, None, allowing(120), 0.999999)
        # Half the lifetime, less at most 10% of that 30 s lead.
        assert NOW + timedelta(seconds=27) <= jittered < NOW + timedelta(seconds=30)

    @pytest.mark.parametrize(
        ("lifetime", "refresh_before"),
        [
            (timedelta(hours=1), None),
            (timedelta(hours=1), timedelta(minutes=10)),
            (timedelta(minutes=5), timedelta(minutes=10)),
            (timedelta(seconds=8), timedelta(seconds=6)),
            (timedelta(seconds=1), None),
        ],
    )
    def test_zero_allowance_is_exactly_the_old_rule(
        self, lifetime: timedelta, refresh_before: timedelta | None
    ) -> None:
        for jitter in (0.0, 0.3, 0.999999):
            t = token(lifetime=lifetime)
            before = refresh_before if refresh_before is not None else lifetime / 3
            if before >= lifetime:
                before = lifetime / 3
            before += before * POLICY.refresh_jitter * jitter
            # The request floor: a 120th of the lifetime (at least 1 s) after
            # the second of issue, never past expiry.
            floor = max(timedelta(seconds=1), lifetime / 120) + timedelta(seconds=1)
            old = max(t.expires_at - before, min(t.issued_at + floor, t.expires_at))
            assert refresh_at(t, refresh_before, allowing(0), jitter) == old

    def test_short_tokens_are_not_refreshed_continuously(self) -> None:
        # Over ten minutes of 3 s tokens: one refresh per ~1.5 s, never sooner
        # than 45% of the lifetime (half, less the 10% jitter of the lead).
        issued = refreshes(
            allowing(120), timedelta(seconds=3), None, 0.999999, timedelta(minutes=10)
        )
        gaps = {b - a for a, b in itertools.pairwise(issued)}
        assert min(gaps) >= timedelta(seconds=1.35)
        assert len(issued) <= 600 / 1.35 + 2

    def test_a_mounted_copy_has_the_allowance_when_the_lifetime_allows(self) -> None:
        # Every token is replaced at least the allowance before it expires.
        lifetime = timedelta(minutes=5)
        issued = refreshes(allowing(120), lifetime, None, 0.0, timedelta(hours=1))
        for previous, replaced in itertools.pairwise(issued):
            assert previous + lifetime - replaced >= timedelta(seconds=120)


class TestPropagationShortfall:
    def test_none_when_the_lifetime_allows(self) -> None:
        assert propagation_shortfall(token(), None, allowing(120)) is None
        five = token(lifetime=timedelta(minutes=5))
        assert propagation_shortfall(five, None, allowing(120)) is None
        assert propagation_shortfall(None, None, allowing(120)) is None

    def test_none_without_an_allowance(self) -> None:
        short = token(lifetime=timedelta(seconds=3))
        assert propagation_shortfall(short, None, allowing(0)) is None

    def test_short_token_falls_short(self) -> None:
        short = token(lifetime=timedelta(seconds=60))
        got = propagation_shortfall(short, None, allowing(120))
        assert got == PropagationShortfall(
            lifetime=timedelta(seconds=60),
            lead=timedelta(seconds=30),
            allowance=timedelta(seconds=120),
        )
        assert got.describe() == (
            "the token lifetime (60s) is too short for the propagation allowance (120s): "
            "it is refreshed 30s before expiry, so Pods that mount the Secret may still "
            "read it after it has expired"
        )

    def test_bound_reached_but_refresh_before_covers_the_allowance(self) -> None:
        # 150 s lifetime: the allowance is capped at 75 s, but refreshBefore is 130 s.
        t = token(lifetime=timedelta(seconds=150))
        assert propagation_shortfall(t, timedelta(seconds=130), allowing(120)) is None
        assert propagation_shortfall(t, None, allowing(120)) is not None

    def test_the_description_carries_no_token(self) -> None:
        t = token(lifetime=timedelta(seconds=8))
        got = propagation_shortfall(t, timedelta(seconds=6), allowing(120))
        assert got is not None
        assert "opaque" not in got.describe()
        assert "refreshed 6s before expiry" in got.describe()

    def test_warning_once_when_the_situation_starts_or_changes(self) -> None:
        policy = allowing(120)
        long_ = token()
        short = token(lifetime=timedelta(seconds=60))
        next_short = token(issued=NOW + timedelta(seconds=30), lifetime=timedelta(seconds=60))
        shorter = token(issued=NOW + timedelta(seconds=60), lifetime=timedelta(seconds=10))
        assert propagation_warning_is_new(None, short, None, policy)
        assert propagation_warning_is_new(long_, short, None, policy)
        assert not propagation_warning_is_new(short, next_short, None, policy)
        assert propagation_warning_is_new(next_short, shorter, None, policy)
        assert not propagation_warning_is_new(short, long_, None, policy)
        assert not propagation_warning_is_new(None, long_, None, policy)
        assert not propagation_warning_is_new(None, short, None, allowing(0))


class TestRetryDelay:
    def delay(
        self, failures: int, reason: Reason = Reason.TOKEN_ENDPOINT_UNAVAILABLE, **kw: object
    ) -> timedelta:
        args: dict[str, object] = {
            "retry_after": None,
            "remaining_validity": None,
            "policy": POLICY,
            "jitter": 1.0,
        }
        args.update(kw)
        return retry_delay(failures=failures, reason=reason, **args)  # type: ignore[arg-type]

    def test_transient_backoff_doubles_up_to_the_cap(self) -> None:
        # A token valid for days: neither the validity nor the expiry cap applies.
        week = timedelta(days=7)
        got = [self.delay(n, remaining_validity=week).total_seconds() for n in range(1, 12)]
        assert got[:4] == [1, 2, 4, 8]
        assert got[-1] == 300
        assert all(b >= a for a, b in itertools.pairwise(got))

    def test_without_a_valid_token_the_wait_stays_short_whatever_the_count(self) -> None:
        for remaining in (None, timedelta(0), timedelta(seconds=-30)):
            got = [self.delay(n, remaining_validity=remaining) for n in range(1, 40)]
            assert got[:4] == [timedelta(seconds=s) for s in (1, 2, 4, 8)]
            assert max(got) == POLICY.expired_max_delay == timedelta(seconds=20)
        assert self.delay(30, jitter=0.0) == timedelta(seconds=10)
        # Retry-After still wins: eGain asked for it.
        assert self.delay(30, Reason.RATE_LIMITED, retry_after=60.0) == timedelta(seconds=60)

    def test_an_outage_across_expiry_is_retried_promptly_after_it(self) -> None:
        """Failing from shortly before expiry through expiry, then recovering."""
        expires = NOW + timedelta(seconds=30)
        recovered = expires + timedelta(minutes=5)  # eGain down until then
        at, count, waits = NOW, 0, []
        while at < recovered:
            count += 1
            wait = self.delay(count, remaining_validity=expires - at, jitter=0.5)
            waits.append((at, wait))
            at += wait
        before = [wait for moment, wait in waits if moment < expires]
        after = [wait for moment, wait in waits if moment >= expires]
        assert count > 9, "the outage ran up the count (the old rule then waited minutes)"
        assert all(wait <= timedelta(seconds=30) / 4 for wait in before)
        assert max(after) <= timedelta(seconds=20)
        # The first try after eGain is back comes within 20 s of it.
        assert at - recovered <= timedelta(seconds=20)

    def test_jitter_takes_at_most_half(self) -> None:
        assert self.delay(4, jitter=0.0) == timedelta(seconds=4)
        assert self.delay(4, jitter=1.0) == timedelta(seconds=8)

    def test_never_exceeds_a_fraction_of_the_remaining_validity(self) -> None:
        got = self.delay(20, remaining_validity=timedelta(minutes=4))
        assert got == timedelta(minutes=1)

    def test_several_retries_fit_before_expiry(self) -> None:
        remaining = timedelta(minutes=20)
        elapsed, tries = timedelta(0), 0
        while elapsed < remaining:
            elapsed += self.delay(tries + 10, remaining_validity=remaining - elapsed)
            tries += 1
            if tries > 50:
                break
        assert tries >= 4

    def test_retry_after_is_honoured_up_to_the_cap(self) -> None:
        assert self.delay(1, Reason.RATE_LIMITED, retry_after=30.0) == timedelta(seconds=30)
        assert self.delay(1, Reason.RATE_LIMITED, retry_after=86400.0) == timedelta(minutes=5)

    def test_no_retry_sooner_than_the_floor(self) -> None:
        assert self.delay(1, jitter=0.0, retry_after=0.0) == MIN_RETRY_DELAY
        tiny = self.delay(1, remaining_validity=timedelta(milliseconds=10))
        assert tiny == MIN_RETRY_DELAY

    @pytest.mark.parametrize(
        "reason",
        [
            Reason.INVALID_CREDENTIALS,
            Reason.INVALID_SCOPE,
            Reason.UNAUTHORIZED_CLIENT,
            Reason.INVALID_REQUEST,
            Reason.CREDENTIALS_NOT_FOUND,
            Reason.TOKEN_URL_NOT_ALLOWED,
            Reason.SECRET_CONFLICT,
        ],
    )
    def test_permanent_failures_back_off_long(self, reason: Reason) -> None:
        assert self.delay(1, reason) == timedelta(minutes=10)
        assert self.delay(1, reason, remaining_validity=timedelta(seconds=30)) == timedelta(
            minutes=10
        )
