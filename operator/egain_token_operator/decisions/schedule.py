"""The times of the schedule: when a token is refreshed, how long a retry waits.

Pure functions of (the token, the failure, the tunables, a jitter): no I/O
and no clock, so every rule is unit-tested with plain values. Randomness comes
in as a number in [0, 1) chosen by the caller. `policy.plan` uses them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from egain_token_operator.decisions.reasons import (
    CHECKED_REASONS,
    LOCAL_REASONS,
    TRANSIENT_REASONS,
    Reason,
)

# A refresh never comes sooner than this after the previous token was issued,
# whatever the token's lifetime, so a nearly-expired token cannot cause a hot loop.
MIN_REFRESH_INTERVAL = timedelta(seconds=1)
# Two token requests for one EgainToken come at least this share of the
# token's lifetime apart (`request_floor`), whatever `refreshBefore` or forced
# refreshes say: 30 s for an hour-long token, so a tenant cannot make the
# operator drain a shared client, while a forced refresh right after another
# is still served within the command line's default wait (60 s).
REQUEST_FLOOR_SHARE = 1 / 120
# Issue times are kept in whole seconds, truncated: the request that obtained
# a token was sent up to this long after its `issued_at`.
ISSUE_TIME_RESOLUTION = timedelta(seconds=1)
# No retry comes sooner than this, whatever the backoff or `Retry-After` says.
MIN_RETRY_DELAY = timedelta(seconds=0.5)
# The propagation allowance never brings a refresh before this fraction of a
# token's lifetime has passed (jitter aside), so short tokens are not refreshed
# continuously; they are warned about instead (`propagation_shortfall`).
ALLOWANCE_MIN_AGE = 0.5


def request_floor(lifetime: timedelta) -> timedelta:
    """The least time between two token requests for one EgainToken whose token
    lives `lifetime`: `REQUEST_FLOOR_SHARE` of it, at least `MIN_REFRESH_INTERVAL`."""
    return max(MIN_REFRESH_INTERVAL, lifetime * REQUEST_FLOOR_SHARE)


@dataclass(frozen=True, slots=True)
class StoredToken:
    """A token as held in the managed Secret, with what it was obtained for."""

    access_token: str = field(repr=False)
    token_type: str
    scopes: tuple[str, ...]
    issued_at: datetime
    expires_at: datetime
    # Digest of the request that obtained it (see `TokenRequest.fingerprint`).
    fingerprint: str
    # The `egain.cloud/refresh-requested-at` value it answered, if any.
    refresh_request: str | None

    def is_valid(self, now: datetime) -> bool:
        """True while the token has not expired."""
        return now < self.expires_at

    @property
    def lifetime(self) -> timedelta:
        """From its issue to its expiry."""
        return self.expires_at - self.issued_at


def next_request_allowed(token: StoredToken, failed_at: datetime | None = None) -> datetime:
    """The earliest instant of the next token request for the EgainToken that
    holds `token` (and whose last request failed at `failed_at`, if later): the
    floor (`request_floor`) after the last request, counted from the second
    after `issued_at` (truncated), so that the floor holds to the second. Never
    later than the token's expiry: a token is always replaced by then."""
    last = token.issued_at + ISSUE_TIME_RESOLUTION
    if failed_at is not None:
        last = max(last, failed_at)
    return min(last + request_floor(token.lifetime), token.expires_at)


@dataclass(frozen=True, slots=True)
class Failure:
    """The last failed attempt, and when to try again."""

    count: int
    reason: Reason
    message: str
    at: datetime
    retry_at: datetime
    # What the attempt was for; a change of either retries at once. None when
    # unknown (restored from status after a restart), then the backoff holds.
    fingerprint: str | None
    refresh_request: str | None
    # The resourceVersion of the credentials Secret the request was built
    # from: kept in the status, so that a restarted operator can tell whether
    # the credentials changed since (the fingerprint is never stored there).
    credentials_version: str | None = None
    # Found in a token response, though its reason is one a local check gives
    # too (a granted scope outside `allowedScopes`): eGain was asked, so it is
    # held back like eGain's own failures.
    answered: bool = False

    @property
    def local(self) -> bool:
        """Found without asking eGain: re-checked at every look, holding no request back."""
        return self.reason in LOCAL_REASONS and not self.answered

    @property
    def checked(self) -> bool:
        """Found by a local check (`checks.LOCAL_CHECKS`): gone once they all pass."""
        return self.reason in CHECKED_REASONS and not self.answered

    def applies_to(self, fingerprint: str, refresh_request: str | None) -> bool:
        """True when the failure was for the same request (so its backoff holds)."""
        if self.fingerprint is None:
            return True
        return self.fingerprint == fingerprint and self.refresh_request == refresh_request


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Tunables of the schedule (from the operator settings)."""

    refresh_jitter: float = 0.1
    initial_delay: timedelta = timedelta(seconds=1)
    max_delay: timedelta = timedelta(minutes=5)
    permanent_delay: timedelta = timedelta(minutes=10)
    # While the current token is valid, one retry waits at most this fraction of
    # its remaining validity, so several retries happen before it expires.
    validity_fraction: float = 0.25
    # How long a new token may take to reach the files of Pods that mount the
    # Secret (the kubelet's pod sync loop); the refresh comes at least this long
    # before expiry when the lifetime allows. Zero turns it off.
    propagation_allowance: timedelta = timedelta(seconds=120)
    # Once no valid token remains (its consumers are failing), a transient
    # failure waits at most this long, with jitter in its upper half, whatever
    # the failure count: a token is re-issued soon after eGain recovers, while
    # each still asks at most once per half of this.
    expired_max_delay: timedelta = timedelta(seconds=20)


def stable_fraction(*parts: str) -> float:
    """A number in [0, 1) that depends only on `parts`.

    Used as the refresh jitter of a token, so its refresh time is the same at
    every look and after a restart, yet differs between tokens issued together.
    """
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _refresh_lead(
    token: StoredToken, refresh_before: timedelta | None, policy: RetryPolicy
) -> timedelta:
    """How long before expiry the next token is requested, before jitter.

    The longer of `refreshBefore` (default a third of the lifetime; one that is
    not shorter than the lifetime falls back to the default, since a token
    cannot be renewed before it is issued; one that would bring the refresh
    before the request floor allows is clamped, see `refresh_before_clamp`)
    and the propagation allowance, which is capped so that it never brings the
    refresh before `ALLOWANCE_MIN_AGE` of the lifetime has passed: a short
    token is not refreshed continuously.
    """
    lifetime = token.lifetime
    before = refresh_before if refresh_before is not None else lifetime / 3
    if before >= lifetime:
        before = lifetime / 3
    before = min(before, _longest_lead(token))
    allowance = min(policy.propagation_allowance, lifetime * (1 - ALLOWANCE_MIN_AGE))
    return max(before, allowance)


def refresh_at(
    token: StoredToken, refresh_before: timedelta | None, policy: RetryPolicy, jitter: float
) -> datetime:
    """The instant the next token is requested.

    The earlier of `expiresAt - refreshBefore` and `expiresAt - allowance`, the
    latter never before half the lifetime has passed (see `_refresh_lead`).
    Up to `policy.refresh_jitter` of that lead is then taken off, at random, so
    tokens created together do not refresh together. With no allowance this is
    `expiresAt - refreshBefore - jitter`.
    """
    before = _refresh_lead(token, refresh_before, policy)
    before += before * policy.refresh_jitter * jitter
    return max(token.expires_at - before, next_request_allowed(token))


def _longest_lead(token: StoredToken) -> timedelta:
    """The longest `refreshBefore` the request floor allows for `token`."""
    return max(token.expires_at - next_request_allowed(token), timedelta(0))


@dataclass(frozen=True, slots=True)
class RefreshBeforeClamp:
    """A `refreshBefore` so long that the refresh would come sooner after the
    token's issue than the request floor allows: it is taken as `taken`."""

    given: timedelta
    taken: timedelta
    floor: timedelta
    lifetime: timedelta

    def describe(self) -> str:
        """A sentence for the Ready condition; no token in it."""
        return (
            f"refreshBefore {_seconds(self.given)} is taken as {_seconds(self.taken)}: "
            f"{describe_floor(self.lifetime)}"
        )


def describe_floor(lifetime: timedelta) -> str:
    """The request floor of a token living `lifetime`, said in a sentence."""
    return (
        f"token requests for one EgainToken come at least {_seconds(request_floor(lifetime))} "
        f"apart (a {round(1 / REQUEST_FLOOR_SHARE)}th of the {_seconds(lifetime)} lifetime)"
    )


def refresh_before_clamp(
    token: StoredToken | None, refresh_before: timedelta | None
) -> RefreshBeforeClamp | None:
    """How `refresh_before` is clamped for `token` (`_refresh_lead`), or None when
    it is not: absent, or not shorter than the lifetime (then the default
    applies), or short enough for the request floor."""
    if token is None or refresh_before is None or refresh_before >= token.lifetime:
        return None
    longest = _longest_lead(token)
    if refresh_before <= longest:
        return None
    return RefreshBeforeClamp(
        given=refresh_before,
        taken=longest,
        floor=request_floor(token.lifetime),
        lifetime=token.lifetime,
    )


@dataclass(frozen=True, slots=True)
class PropagationShortfall:
    """A token refreshed closer to its expiry than the propagation allowance.

    Pods that mount the Secret may then still read it after it has expired.
    """

    lifetime: timedelta
    # How long before expiry the refresh is planned (before jitter).
    lead: timedelta
    allowance: timedelta

    def describe(self) -> str:
        """A sentence for the Ready condition and the Event; no token in it."""
        return (
            f"the token lifetime ({_seconds(self.lifetime)}) is too short for the "
            f"propagation allowance ({_seconds(self.allowance)}): it is refreshed "
            f"{_seconds(self.lead)} before expiry, so Pods that mount the Secret may "
            "still read it after it has expired"
        )


def _seconds(span: timedelta) -> str:
    return f"{span.total_seconds():g}s"


def propagation_shortfall(
    token: StoredToken | None, refresh_before: timedelta | None, policy: RetryPolicy
) -> PropagationShortfall | None:
    """How `token` falls short of the propagation allowance, or None when it does not.

    It falls short when its refresh, before jitter, comes less than the
    allowance before its expiry: the lifetime is too short for the allowance
    (the cap of `_refresh_lead` applied) and `refreshBefore` does not make up
    for it.
    """
    if token is None or policy.propagation_allowance <= timedelta(0):
        return None
    lead = _refresh_lead(token, refresh_before, policy)
    if lead >= policy.propagation_allowance:
        return None
    return PropagationShortfall(
        lifetime=token.expires_at - token.issued_at,
        lead=lead,
        allowance=policy.propagation_allowance,
    )


def propagation_warning_is_new(
    previous: StoredToken | None,
    token: StoredToken,
    refresh_before: timedelta | None,
    policy: RetryPolicy,
) -> bool:
    """Whether a newly issued `token` deserves a warning Event.

    Only when it falls short of the propagation allowance and the token it
    replaces did not, or fell short differently (another lifetime, say): one
    Event when the situation starts or changes, not one per refresh.
    """
    shortfall = propagation_shortfall(token, refresh_before, policy)
    return shortfall is not None and shortfall != propagation_shortfall(
        previous, refresh_before, policy
    )


def retry_delay(
    *,
    failures: int,
    reason: Reason,
    retry_after: float | None,
    remaining_validity: timedelta | None,
    policy: RetryPolicy,
    jitter: float,
) -> timedelta:
    """How long to wait after the `failures`-th consecutive failure for `reason`.

    Permanent failures wait `policy.permanent_delay`. Transient ones back off
    exponentially from `initial_delay` up to `max_delay`, with jitter in the
    upper half of each step; while a valid token remains, no wait exceeds
    `validity_fraction` of its remaining validity, and once none remains, the
    step is capped at `expired_max_delay` (so an outage that ran up the count
    before expiry does not delay recovery after it); `Retry-After` is honoured
    (up to `max_delay`) above all.
    """
    if reason not in TRANSIENT_REASONS:
        return policy.permanent_delay
    exponent = min(max(failures - 1, 0), 32)
    delay: timedelta = min(policy.initial_delay * (2**exponent), policy.max_delay)
    if remaining_validity is None or remaining_validity <= timedelta(0):
        delay = min(delay, policy.expired_max_delay)
    delay *= 0.5 + jitter / 2
    if remaining_validity is not None and remaining_validity > timedelta(0):
        delay = min(delay, remaining_validity * policy.validity_fraction)
    if retry_after is not None:
        delay = max(delay, min(timedelta(seconds=retry_after), policy.max_delay))
    return max(delay, MIN_RETRY_DELAY)
