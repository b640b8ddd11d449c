"""The refresh decision: one look's snapshot in, one plan out.

`plan` is the one place that answers "is a token requested now, and when does
the operator look again?". It is pure: no I/O, no clock (`now` comes in), the
jitter derived from the EgainToken's uid, so every rule is a table row in a
unit test. The decision is the chain of small named checks of `checks.py`;
the first that fires decides. `after_fetch` settles a plan with what the
request gave; `in_flight` says what it reports while the request is under way.

EgainTokens whose requests are identical share one upstream token
(`sharing.py`): a look sees the latest token obtained for any of them, and
`adopting_shared_token` takes it over when it is newer than the one held.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from egain_token_operator.decisions import schedule
from egain_token_operator.decisions.checks import (
    LOCAL_CHECKS,
    REQUEST_CHECKS,
    Facts,
    Snapshot,
    Verdict,
    adopting_shared_token,
    forced_refresh_deferred_until,
    granted_scope_not_allowed,
    is_ready,
)
from egain_token_operator.decisions.readiness import Condition, ready_condition
from egain_token_operator.decisions.reasons import Reason, TokenError
from egain_token_operator.decisions.schedule import Failure, RetryPolicy, StoredToken
from egain_token_operator.decisions.timestamps import rfc3339


@dataclass(frozen=True, slots=True)
class Memory:
    """What a worker carries from one look to the next."""

    token: StoredToken | None = None
    failure: Failure | None = None
    # False until the first look, which takes the failure over from the status.
    looked: bool = False
    # The forced refresh (`egain.cloud/refresh-requested-at` value) whose
    # deferral was said (an Event), so that it is said once.
    deferred: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """What one look does, and what it reports."""

    request_token: bool
    why: str
    # The token in use, and the failure after the local checks.
    token: StoredToken | None
    failure: Failure | None
    # Whether the failure is new (another reason or message): said in an Event.
    failure_is_news: bool
    condition: Condition
    next_refresh_at: datetime | None
    # When to look again; None: on events only.
    wake_at: datetime | None
    # The token the status describes: only one for the current request.
    reported_token: StoredToken | None
    # A propagation-allowance warning to say once, after a new token.
    shortfall_warning: str | None = None
    # The new token was issued for another EgainToken's identical request.
    shared: bool = False
    # A forced refresh that comes too soon after the last request (the
    # request floor) is served then; the value it answers; whether to say so.
    deferred_until: datetime | None = None
    deferred_request: str | None = None
    deferral_is_news: bool = False

    @property
    def memory(self) -> Memory:
        """What the next look starts from."""
        return Memory(self.token, self.failure, looked=True, deferred=self.deferred_request)


# --- the plan ---------------------------------------------------------------


def plan(snapshot: Snapshot, memory: Memory, now: datetime, policy: RetryPolicy) -> Plan:
    """Decide one look: request a token or not, what to report, when to look again."""
    failure = memory.failure if memory.looked else _restored(snapshot)
    token = memory.token
    local = next((found for check in LOCAL_CHECKS if (found := check(snapshot))), None)
    if local is not None:
        reason, message = local
        recorded = record_failure(failure, reason, message, None, snapshot, token, now, policy)
        news = _is_news(failure, recorded)
        return _report(snapshot, token, recorded, news, (False, message), now, policy)
    if snapshot.fingerprint is None:
        raise ValueError("a snapshot that passes the local checks has a fingerprint")
    token = token or snapshot.stored_token
    if failure is not None and failure.checked:
        failure = None  # every local check passed: its cause is gone
    shared = _as_held(snapshot, token)
    if shared is not None and granted_scope_not_allowed(snapshot.client, shared.scopes):
        # Obtained through another client (same credentials, broader
        # `allowedScopes`): not for this one. It requests its own, refused in turn.
        shared = None
    holding = None if failure is None or failure.local else failure
    facts = Facts(
        now=now,
        fingerprint=snapshot.fingerprint,
        refresh_request=snapshot.refresh_request,
        token=token,
        refresh_time=_refresh_time(snapshot, token, policy),
        failure=holding,
        shared=shared,
        shared_refresh_time=_refresh_time(snapshot, shared, policy),
        request_allowed_at=_request_allowed_at(snapshot, token, holding),
    )
    if adopting_shared_token(facts):
        assert shared is not None
        why = "adopting the token issued for an identical request"
        return _settled(snapshot, token, shared, why, now, policy, shared=True)
    verdict = next(fired for check in REQUEST_CHECKS if (fired := check(facts)))
    deferred = None if verdict[0] else forced_refresh_deferred_until(facts)
    reported = _report(snapshot, token, failure, False, verdict, now, policy, held_until=deferred)
    if deferred is None:
        return reported
    return replace(
        reported,
        deferred_until=deferred,
        deferred_request=snapshot.refresh_request,
        deferral_is_news=memory.deferred != snapshot.refresh_request,
    )


def held_back(
    snapshot: Snapshot,
    before: Plan,
    *,
    until: datetime,
    why: str,
    now: datetime,
    policy: RetryPolicy,
) -> Plan:
    """`before`, a plan that requests a token, with its request held back until
    `until` (the client's request budget): nothing is requested, the token in
    use stays (Ready while it is valid), and the look comes again then, or at
    the token's expiry if sooner (Ready turns False)."""
    token = before.token
    held = _report(
        snapshot, token, before.failure, False, (False, why), now, policy, held_until=until
    )
    # Not the failure's retry time: it has come (the request was wanted).
    wake = until if token is None or not token.is_valid(now) else min(until, token.expires_at)
    return replace(held, wake_at=wake, deferred_request=before.deferred_request)


def after_fetch(
    snapshot: Snapshot,
    before: Plan,
    *,
    at: datetime,
    policy: RetryPolicy,
    token: StoredToken | None = None,
    error: TokenError | None = None,
    shared: bool = False,
) -> Plan:
    """Settle `before` with what its request gave at `at`: `token`, or `error`.

    A token granting a scope outside the client's `allowedScopes`
    (`granted_scope_not_allowed`) is refused as an error would be: `before`'s
    token stays, and the failure is held back like eGain's own.

    Judged at `at`, when the request ended, not when the look began: a
    request may outlast the token it was to replace (up to `--http-timeout`),
    which is then no longer Ready. `shared`: the request was another
    EgainToken's, identical, which this one awaited instead of sending its own.
    """
    answered = False
    if token is not None:
        refused = granted_scope_not_allowed(snapshot.client, token.scopes)
        if refused is None:
            return _settled(
                snapshot, before.token, token, "token issued", at, policy, shared=shared
            )
        error, answered = TokenError(refused[1], reason=refused[0]), True
    assert error is not None
    previous, token = before.failure, before.token
    failure = record_failure(
        previous,
        error.reason,
        error.message,
        error.retry_after,
        snapshot,
        token,
        at,
        policy,
        answered=answered,
    )
    news = _is_news(previous, failure)
    return _report(snapshot, token, failure, news, (False, error.message), at, policy)


def in_flight(snapshot: Snapshot, before: Plan, *, now: datetime, policy: RetryPolicy) -> Plan:
    """What `before` reports at `now` while its request is still in flight.

    The token the request is to replace may have expired meanwhile: `Ready`
    then turns False at its expiry, with the last failure's reason (else
    `TokenExpired`), rather than when the request ends, up to
    `--http-timeout` later. Nothing is requested; `after_fetch` settles the
    plan once the request ends.
    """
    why = (False, "a token request is in flight")
    return _report(snapshot, before.token, before.failure, False, why, now, policy)


def record_failure(
    previous: Failure | None,
    reason: Reason,
    message: str,
    retry_after: float | None,
    snapshot: Snapshot,
    token: StoredToken | None,
    now: datetime,
    policy: RetryPolicy,
    *,
    answered: bool = False,
) -> Failure:
    """The failure after `previous`, with its retry time; `answered`: found in a
    token response (`Failure.answered`)."""
    count = previous.count + 1 if previous is not None else 1
    remaining = token.expires_at - now if token is not None and token.is_valid(now) else None
    delay = schedule.retry_delay(
        failures=count,
        reason=reason,
        retry_after=retry_after,
        remaining_validity=remaining,
        policy=policy,
        jitter=schedule.stable_fraction(snapshot.uid, str(count), rfc3339(now)),
    )
    return Failure(
        count=count,
        reason=reason,
        message=message,
        at=now,
        retry_at=now + delay,
        fingerprint=snapshot.fingerprint,
        refresh_request=snapshot.refresh_request,
        credentials_version=snapshot.credentials_version,
        answered=answered,
    )


def _settled(
    snapshot: Snapshot,
    previous: StoredToken | None,
    token: StoredToken,
    why: str,
    now: datetime,
    policy: RetryPolicy,
    *,
    shared: bool,
) -> Plan:
    """The plan once `token` replaces `previous`: no failure, and the propagation
    warning when the situation starts or changes."""
    refresh_before = _refresh_before(snapshot)
    shortfall = schedule.propagation_shortfall(token, refresh_before, policy)
    is_new = schedule.propagation_warning_is_new(previous, token, refresh_before, policy)
    settled = _report(snapshot, token, None, False, (False, why), now, policy)
    warning = shortfall.describe() if shortfall is not None and is_new else None
    return replace(settled, shortfall_warning=warning, shared=shared)


def _as_held(snapshot: Snapshot, token: StoredToken | None) -> StoredToken | None:
    """The shared token as this EgainToken would hold it: obtained for its own
    request (its fingerprint), answering the refresh request its own token
    answered, or the one it is asked for when the token answered that same
    value on its requester."""
    shared = snapshot.shared_token
    if shared is None:
        return None
    if snapshot.refresh_request is not None and shared.refresh_request == snapshot.refresh_request:
        answered: str | None = snapshot.refresh_request
    else:
        answered = token.refresh_request if token is not None else None
    return replace(
        shared, fingerprint=snapshot.fingerprint or shared.fingerprint, refresh_request=answered
    )


def _restored(snapshot: Snapshot) -> Failure | None:
    """After a restart, the backoff recorded in the status keeps being honoured,
    unless the failure was a local one, or the spec or the credentials Secret
    changed since (another resourceVersion than the failed request was built
    from, or none recorded): the cause may be gone."""
    failure = snapshot.recorded_failure
    if failure is None or failure.local:
        return None
    if snapshot.status_generation != snapshot.generation:
        return None
    if failure.credentials_version != snapshot.credentials_version:
        return None
    return failure


def _is_news(previous: Failure | None, failure: Failure) -> bool:
    return previous is None or (previous.reason, previous.message) != (
        failure.reason,
        failure.message,
    )


def _request_allowed_at(
    snapshot: Snapshot, token: StoredToken | None, failure: Failure | None
) -> datetime | None:
    """The earliest next request by the request floor: after the token's issue,
    and after a failed request for another request than this one (a retry of
    the same request keeps its own backoff)."""
    if token is None:
        return None
    assert snapshot.fingerprint is not None
    other = failure is not None and not failure.applies_to(
        snapshot.fingerprint, snapshot.refresh_request
    )
    return schedule.next_request_allowed(token, failure.at if other and failure else None)


def _refresh_before(snapshot: Snapshot) -> timedelta | None:
    return snapshot.spec.refresh_before if snapshot.spec is not None else None


def _refresh_time(
    snapshot: Snapshot, token: StoredToken | None, policy: RetryPolicy
) -> datetime | None:
    if token is None or snapshot.spec is None:
        return None
    # Derived from the uid and the issue time: the same at every look and after
    # a restart, yet different for tokens issued together.
    jitter = schedule.stable_fraction(snapshot.uid, rfc3339(token.issued_at))
    return schedule.refresh_at(token, snapshot.spec.refresh_before, policy, jitter)


def _report(
    snapshot: Snapshot,
    token: StoredToken | None,
    failure: Failure | None,
    failure_is_news: bool,
    verdict: Verdict,
    now: datetime,
    policy: RetryPolicy,
    *,
    held_until: datetime | None = None,
) -> Plan:
    """The plan for a verdict: Ready, `nextRefreshAt`, and when to look again.

    `held_until`: a request is wanted, but held back until then (a forced
    refresh too soon, the client's budget): said as `nextRefreshAt` while the
    token is Ready, and a look comes then.
    """
    ready = is_ready(token, snapshot.fingerprint, now)
    refresh_time = _refresh_time(snapshot, token, policy) if ready else None
    if ready and held_until is not None:
        refresh_time = held_until if refresh_time is None else min(refresh_time, held_until)
    wake: list[datetime] = []
    if held_until is not None:
        wake.append(held_until)
    if failure is not None:
        wake.append(failure.retry_at)  # a retry, or for local failures a periodic re-check
    if ready and token is not None:
        wake.append(token.expires_at)  # Ready turns False at expiry
        if refresh_time is not None and refresh_time > now:
            wake.append(refresh_time)  # when past, a failure holds the refresh back
    shortfall = (
        schedule.propagation_shortfall(token, _refresh_before(snapshot), policy) if ready else None
    )
    clamp = schedule.refresh_before_clamp(token, _refresh_before(snapshot)) if ready else None
    condition = ready_condition(
        spec_error=snapshot.spec_error,
        ready=ready,
        token=token,
        fingerprint=snapshot.fingerprint,
        failure=failure,
        now=now,
        shortfall=shortfall,
        clamp=clamp,
    )
    return Plan(
        request_token=verdict[0],
        why=verdict[1],
        token=token,
        failure=failure,
        failure_is_news=failure_is_news,
        condition=condition,
        next_refresh_at=failure.retry_at if failure is not None else refresh_time,
        wake_at=min(wake) if wake else None,
        reported_token=(
            token if token is not None and token.fingerprint == snapshot.fingerprint else None
        ),
    )
