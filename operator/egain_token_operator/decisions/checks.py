"""The chain of checks a look goes through: one look's snapshot in, the first
check that fires decides.

First the local checks (`LOCAL_CHECKS`): a failure found without asking eGain,
from the spec, the client the EgainToken names, the credentials Secret, the
managed Secret. Then the request checks (`REQUEST_CHECKS`), over the `Facts`
the local checks left: is a token requested now? Each check is a small named
function, so every rule is a table row in a unit test; `policy.plan` runs the
chain and turns its verdict into a plan.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from egain_token_operator.decisions.clients import ClientRef, ClientSpec
from egain_token_operator.decisions.hosts import HostAllowList
from egain_token_operator.decisions.reasons import Reason
from egain_token_operator.decisions.schedule import Failure, StoredToken
from egain_token_operator.decisions.timestamps import rfc3339
from egain_token_operator.decisions.tokenspec import TokenSharing, TokenSpec


@dataclass(frozen=True, slots=True)
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
    # The operator's token-host allow-list (`--allowed-token-hosts`).
    allowed_hosts: HostAllowList | None = None
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
    verb = "is" if len(outside) == 1 else "are"
    return (
        Reason.SCOPE_NOT_ALLOWED,
        f"{_named(outside)} {verb} not allowed by {client.key} (allowedScopes)",
    )


def granted_scope_not_allowed(
    client: ClientSpec | None, granted: tuple[str, ...]
) -> tuple[Reason, str] | None:
    """A scope a token response grants is outside the client's `allowedScopes`.

    `allowedScopes` bounds what a token may do, not only what is asked: an
    issuer may grant more than was requested (an Entra-style `.default`
    scope, a misconfigured client), and such a token is refused, not written.
    Judged per EgainToken, against the client it names: EgainTokens that
    share a token (`sharing.py`) may name different clients with the same
    credentials. A response without `scope` is read as granting what was
    asked (RFC 6749, 5.1), which `scope_not_allowed` passed.
    """
    if client is None:
        return None
    outside = client.scopes_not_allowed(granted)
    if not outside:
        return None
    return (
        Reason.SCOPE_NOT_ALLOWED,
        f"the token response grants {_named(outside)}, which {client.key} does not allow "
        "(allowedScopes); the token is not used",
    )


def _named(scopes: tuple[str, ...]) -> str:
    return f"scope {scopes[0]}" if len(scopes) == 1 else f"scopes {' '.join(scopes)}"


def sharing_required(snapshot: Snapshot) -> tuple[Reason, str] | None:
    """The client requires sharing (`tokenSharing: Required`) and the EgainToken opts out."""
    client, spec = snapshot.client, snapshot.spec
    if client is None or spec is None or not client.sharing_required:
        return None
    if spec.token_sharing is not TokenSharing.DISABLED:
        return None
    return (
        Reason.SHARING_REQUIRED,
        f"{client.key} requires token sharing (tokenSharing: Required); "
        "spec.tokenSharing: Disabled is not allowed with it",
    )


def token_host_not_allowed(snapshot: Snapshot) -> tuple[Reason, str] | None:
    """The token URL's host is outside the operator's allow-list: nothing is sent there.

    Only the scheme, user info, host and port decide, and a flow's URL keeps the
    spec's (the anonymous flow only adds a query), so `tokenUrl` is judged. The
    transport asks the same list again before it connects, and the address guard
    checks the resolved addresses then.
    """
    spec, allowed = snapshot.spec, snapshot.allowed_hosts
    if spec is None or allowed is None:
        return None
    refused = allowed.refusal(spec.token_url)
    return None if refused is None else (Reason.TOKEN_URL_NOT_ALLOWED, refused)


def credentials_missing(snapshot: Snapshot) -> tuple[Reason, str] | None:
    """The credentials Secret or one of its keys is missing."""
    found = snapshot.credentials_error
    return None if found is None else (Reason.CREDENTIALS_NOT_FOUND, found)


def secret_taken(snapshot: Snapshot) -> tuple[Reason, str] | None:
    """A Secret of the managed name belongs to somebody else."""
    found = snapshot.conflict
    return None if found is None else (Reason.SECRET_CONFLICT, found)


# The client's policy, checked before its credentials are even read (`client_refusal`).
CLIENT_CHECKS: tuple[LocalCheck, ...] = (
    client_missing,
    client_not_allowed,
    scope_not_allowed,
    sharing_required,
)
LOCAL_CHECKS: tuple[LocalCheck, ...] = (
    spec_invalid,
    *CLIENT_CHECKS,
    token_host_not_allowed,
    credentials_missing,
    secret_taken,
)


def client_refusal(snapshot: Snapshot) -> tuple[Reason, str] | None:
    """Why the client the EgainToken names refuses it, if it does: the first of
    `CLIENT_CHECKS` that fires. `observe` stops gathering there, so a
    refused EgainToken has no request built, no credentials read, no Secret written."""
    return next((found for check in CLIENT_CHECKS if (found := check(snapshot))), None)


# --- the request checks: is a token requested now? --------------------------


@dataclass(frozen=True, slots=True)
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
    # The earliest instant of the next request for this EgainToken, by the
    # request floor (`schedule.next_request_allowed`); None without a token.
    request_allowed_at: datetime | None = None

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

    @property
    def due(self) -> bool:
        """The token's own refresh time has come."""
        return self.refresh_time is not None and self.now >= self.refresh_time


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

    Only for this EgainToken's own reasons (its rollout targets are restarted
    for a token it takes): it has no current token (none yet, or its spec or
    credentials changed), its own token is due, or its own refresh is forced.
    A sharer that refreshed early or was forced does not make the others take
    its token over: they keep theirs, still valid, until their own refresh
    time, and take the latest token then.
    """
    shared, own = facts.shared, facts.token
    own_reason = not facts.current or facts.due or facts.forced
    return (
        shared is not None
        and own_reason
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


def forced_refresh_deferred_until(facts: Facts) -> datetime | None:
    """When a forced refresh of a current token is served, if it comes sooner
    after the last request than the request floor allows; None when it is not
    held back (a token that is due is refreshed anyway: its refresh time keeps
    the floor)."""
    allowed = facts.request_allowed_at
    if not facts.forced or not facts.current or facts.due:
        return None
    return allowed if allowed is not None and facts.now < allowed else None


def forced_too_soon(facts: Facts) -> Verdict | None:
    """A forced refresh too soon after the last request is deferred, never dropped."""
    until = forced_refresh_deferred_until(facts)
    if until is None:
        return None
    return False, f"forced refresh deferred until {rfc3339(until)} (request floor)"


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
    forced_too_soon,
    refresh_requested,
    due,
)


def is_ready(token: StoredToken | None, fingerprint: str | None, now: datetime) -> bool:
    """Ready: the Secret holds an unexpired token obtained for the current request."""
    return (
        token is not None
        and fingerprint is not None
        and token.fingerprint == fingerprint
        and token.is_valid(now)
    )
