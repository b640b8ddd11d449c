"""The refresh decision: one look's snapshot in, one plan out.

`plan` is the one place that answers "is a token requested now, and when does
the operator look again?". It is pure: no I/O, no clock (`now` comes in), the
jitter derived from the EgainToken's uid, so every rule is a table row in a
unit test. The decision is an ordered chain of small named checks; the first
that fires decides. `after_fetch` settles a plan with what the request gave;
`in_flight` says what it reports while the request is under way.

EgainTokens whose requests are identical share one upstream token
(`sharing.py`): a look sees the latest token obtained for any of them, and
`adopting_shared_token` takes it over when it is newer than the one held.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from egain_token_operator.decisions import schedule
from egain_token_operator.decisions.reasons import Reason, TokenError
from egain_token_operator.decisions.render import Condition, ready_condition, rfc3339
from egain_token_operator.decisions.schedule import Failure, RetryPolicy, StoredToken
from egain_token_operator.decisions.spec import ClientRef, ClientSpec, TokenSpec

# Failures found without asking eGain. A look costs nothing at eGain, so they
# are re-checked at every look and hold no request back; they are still
# recorded, for the status and for a periodic re-check.
LOCAL_REASONS = frozenset(
    {
        Reason.INVALID_SPEC,
        Reason.CLIENT_NOT_FOUND,
        Reason.CLIENT_NOT_ALLOWED,
        Reason.SCOPE_NOT_ALLOWED,
        Reason.CREDENTIALS_NOT_FOUND,
        Reason.SECRET_CONFLICT,
        Reason.TOKEN_URL_NOT_ALLOWED,
    }
)


@dataclass(frozen=True)
class Snapshot:
    """What one look found, gathered before anything is decided."""

    uid: str
    generation: int | None
    # `egain.cloud/refresh-requested-at` on the EgainToken.
    refresh_request: str | None
    spec: TokenSpec | None
    spec_error: str | None = None
    # The EgainToken's namespace.
    namespace: str = ""
    # The client the EgainToken names (None: inline), and that client as found
    # (None: it does not exist).
    client_ref: ClientRef | None = None
    client: ClientSpec | None = None
    # The client's kind is not served here (a ClusterEgainClient, by an
    # operator limited to namespaces).
    client_unserved: bool = False
    # The labels of the EgainToken's namespace, when a client's selector needs them.
    namespace_labels: Mapping[str, str] | None = None
    # Of the request that would be sent now; None when none can be built.
    fingerprint: str | None = None
    credentials_error: str | None = None
    # The resourceVersion of the credentials Secret, when it was read.
    credentials_version: str | None = None
    # Why the managed Secret is not this EgainToken's to write.
    conflict: str | None = None
    # What the managed Secret holds, when it is ours.
    stored_token: StoredToken | None = None
    # The failure recorded in the status, and the generation it was for.
    recorded_failure: Failure | None = None
    status_generation: int | None = None
    # The latest token obtained for an identical request (`sharing.py`), as
    # issued: with the fingerprint and refresh request of whoever requested it.
    shared_token: StoredToken | None = None


@dataclass(frozen=True)
class Memory:
    """What a worker carries from one look to the next."""

    token: StoredToken | None = None
    failure: Failure | None = None
    # False until the first look, which takes the failure over from the status.
    looked: bool = False


@dataclass(frozen=True)
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

    @property
    def memory(self) -> Memory:
        """What the next look starts from."""
        return Memory(self.token, self.failure, looked=True)


# --- the local checks: a failure found without asking eGain -----------------

LocalCheck = Callable[[Snapshot], "tuple[Reason, str] | None"]


def spec_invalid(snapshot: Snapshot) -> tuple[Reason, str] | None:
    """The spec cannot be served."""
    found = snapshot.spec_error
    return None if found is None else (Reason.INVALID_SPEC, found)


def client_missing(snapshot: Snapshot) -> tuple[Reason, str] | None:
    """The client the EgainToken names does not exist."""
    ref = snapshot.client_ref
    if ref is None or snapshot.client is not None:
        return None
    if snapshot.client_unserved:
        return Reason.CLIENT_NOT_FOUND, (
            f"{ref.key(snapshot.namespace)} not served: this operator is limited to namespaces "
            "(--namespace); ClusterEgainClients need a cluster-wide install"
        )
    return Reason.CLIENT_NOT_FOUND, f"{ref.key(snapshot.namespace)} not found"


def client_not_allowed(snapshot: Snapshot) -> tuple[Reason, str] | None:
    """The EgainToken's namespace is outside the client's `allowedNamespaces`."""
    client = snapshot.client
    if client is None or client.allows_namespace(snapshot.namespace, snapshot.namespace_labels):
        return None
    return (
        Reason.CLIENT_NOT_ALLOWED,
        f"namespace {snapshot.namespace} is not allowed to use {client.key} (allowedNamespaces)",
    )


def scope_not_allowed(snapshot: Snapshot) -> tuple[Reason, str] | None:
    """A requested scope is outside the client's `allowedScopes`."""
    client, spec = snapshot.client, snapshot.spec
    if client is None or spec is None:
        return None
    outside = client.scopes_not_allowed(spec.scopes)
    if not outside:
        return None
    said = f"scope {outside[0]} is" if len(outside) == 1 else f"scopes {' '.join(outside)} are"
    return Reason.SCOPE_NOT_ALLOWED, f"{said} not allowed by {client.key} (allowedScopes)"


def credentials_missing(snapshot: Snapshot) -> tuple[Reason, str] | None:
    """The credentials Secret or one of its keys is missing."""
    found = snapshot.credentials_error
    return None if found is None else (Reason.CREDENTIALS_NOT_FOUND, found)


def secret_taken(snapshot: Snapshot) -> tuple[Reason, str] | None:
    """A Secret of the managed name belongs to somebody else."""
    found = snapshot.conflict
    return None if found is None else (Reason.SECRET_CONFLICT, found)


# The client's policy, checked before its credentials are even read (`client_refusal`).
CLIENT_CHECKS: tuple[LocalCheck, ...] = (client_missing, client_not_allowed, scope_not_allowed)
LOCAL_CHECKS: tuple[LocalCheck, ...] = (
    spec_invalid,
    *CLIENT_CHECKS,
    credentials_missing,
    secret_taken,
)


def client_refusal(snapshot: Snapshot) -> tuple[Reason, str] | None:
    """Why the client the EgainToken names refuses it, if it does: the first of
    `CLIENT_CHECKS` that fires. `reconcile.observe` stops gathering there, so a
    refused EgainToken has no request built, no credentials read, no Secret written."""
    return next((found for check in CLIENT_CHECKS if (found := check(snapshot))), None)


# --- the request checks: is a token requested now? --------------------------


@dataclass(frozen=True)
class Facts:
    """What the request checks look at, once the local checks passed."""

    now: datetime
    fingerprint: str
    refresh_request: str | None
    token: StoredToken | None
    refresh_time: datetime | None
    # A failure that may hold the request back (local ones never do).
    failure: Failure | None
    # The latest token of an identical request, as this EgainToken would hold
    # it (its own fingerprint and refresh request), and its refresh time here.
    shared: StoredToken | None = None
    shared_refresh_time: datetime | None = None

    @property
    def current(self) -> bool:
        """A valid token for the request that would be sent now."""
        return is_ready(self.token, self.fingerprint, self.now)

    @property
    def forced(self) -> bool:
        """A refresh asked for with a value no token answered yet."""
        return self.refresh_request is not None and (
            self.token is None or self.token.refresh_request != self.refresh_request
        )


Verdict = tuple[bool, str]
RequestCheck = Callable[[Facts], "Verdict | None"]


def adopting_shared_token(facts: Facts) -> bool:
    """A newer valid token obtained for an identical request serves this one too.

    Taken without a request, so that N sharers cost one request per refresh:
    the earliest due requests, the others adopt. Not when a refresh is forced
    (that asks for a new token, which the others then adopt), unless the
    token answered that same `refresh-requested-at` value on another sharer
    (one value set on many, as a bulk renew does, is one request for all);
    nor when this EgainToken would find the token already due (its `refreshBefore` longer
    than the requester's): adopting it would only make it request at once, so
    it requests now, once, and the others adopt that token in turn. Since a
    token is only adopted when it is not due for the adopter, no two sharers
    can make each other request: each request comes from a sharer that was due.
    """
    shared, own = facts.shared, facts.token
    return (
        shared is not None
        and shared.is_valid(facts.now)
        and (not facts.forced or shared.refresh_request == facts.refresh_request)
        and (own is None or not facts.current or shared.issued_at > own.issued_at)
        and facts.shared_refresh_time is not None
        and facts.now < facts.shared_refresh_time
    )


def waiting_for_refresh_time(facts: Facts) -> Verdict | None:
    """A current token waits for its refresh time, unless a refresh is forced."""
    if (
        facts.current
        and not facts.forced
        and facts.refresh_time is not None
        and facts.now < facts.refresh_time
    ):
        return False, "token valid; waiting for its refresh time"
    return None


def backing_off(facts: Facts) -> Verdict | None:
    """A failure for the same request holds the next one back until its retry time."""
    failure = facts.failure
    if (
        failure is not None
        and failure.applies_to(facts.fingerprint, facts.refresh_request)
        and facts.now < failure.retry_at
    ):
        return False, f"backing off after {failure.reason}"
    return None


def no_current_token(facts: Facts) -> Verdict | None:
    """No valid token for the current spec and credentials."""
    current = facts.current
    return None if current else (True, "no valid token for the current spec and credentials")


def refresh_requested(facts: Facts) -> Verdict | None:
    """A new `egain.cloud/refresh-requested-at` value."""
    return (True, "refresh requested by annotation") if facts.forced else None


def due(facts: Facts) -> Verdict | None:
    """Nothing held it back: the token is due for refresh."""
    return True, "token due for refresh"


REQUEST_CHECKS: tuple[RequestCheck, ...] = (
    waiting_for_refresh_time,
    backing_off,
    no_current_token,
    refresh_requested,
    due,
)


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
    if failure is not None and failure.reason in LOCAL_REASONS - {Reason.TOKEN_URL_NOT_ALLOWED}:
        failure = None  # every local check passed: its cause is gone
    shared = _as_held(snapshot, token)
    facts = Facts(
        now=now,
        fingerprint=snapshot.fingerprint,
        refresh_request=snapshot.refresh_request,
        token=token,
        refresh_time=_refresh_time(snapshot, token, policy),
        failure=None if failure is None or failure.reason in LOCAL_REASONS else failure,
        shared=shared,
        shared_refresh_time=_refresh_time(snapshot, shared, policy),
    )
    if adopting_shared_token(facts):
        assert shared is not None
        why = "adopting the token issued for an identical request"
        return _settled(snapshot, token, shared, why, now, policy, shared=True)
    verdict = next(fired for check in REQUEST_CHECKS if (fired := check(facts)))
    return _report(snapshot, token, failure, False, verdict, now, policy)


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

    Judged at `at`, when the request ended, not when the look began: a
    request may outlast the token it was to replace (up to `--http-timeout`),
    which is then no longer Ready. `shared`: the request was another
    EgainToken's, identical, which this one awaited instead of sending its own.
    """
    if token is not None:
        return _settled(snapshot, before.token, token, "token issued", at, policy, shared=shared)
    assert error is not None
    previous, token = before.failure, before.token
    failure = record_failure(
        previous, error.reason, error.message, error.retry_after, snapshot, token, at, policy
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
) -> Failure:
    """The failure after `previous`, with its retry time."""
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
    )


def is_ready(token: StoredToken | None, fingerprint: str | None, now: datetime) -> bool:
    """Ready: the Secret holds an unexpired token obtained for the current request."""
    return (
        token is not None
        and fingerprint is not None
        and token.fingerprint == fingerprint
        and token.is_valid(now)
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
    if failure is None or failure.reason in LOCAL_REASONS:
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
) -> Plan:
    """The plan for a verdict: Ready, `nextRefreshAt`, and when to look again."""
    ready = is_ready(token, snapshot.fingerprint, now)
    refresh_time = _refresh_time(snapshot, token, policy) if ready else None
    wake: list[datetime] = []
    if failure is not None:
        wake.append(failure.retry_at)  # a retry, or for local failures a periodic re-check
    if ready and token is not None:
        wake.append(token.expires_at)  # Ready turns False at expiry
        if refresh_time is not None and refresh_time > now:
            wake.append(refresh_time)  # when past, a failure holds the refresh back
    shortfall = (
        schedule.propagation_shortfall(token, _refresh_before(snapshot), policy) if ready else None
    )
    condition = ready_condition(
        spec_error=snapshot.spec_error,
        ready=ready,
        token=token,
        fingerprint=snapshot.fingerprint,
        failure=failure,
        now=now,
        shortfall=shortfall,
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
