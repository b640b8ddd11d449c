"""Is an EgainToken Ready? The condition a look decides, and the one that a
status records.

Pure: `ready_condition` decides the condition from what a look observed;
`kstatus_conditions` says which of kstatus's `Reconciling` and `Stalled` hold
beside a Ready condition (an EgainToken's or a client's); `ready_in` finds the
Ready condition an object's status records, for whoever reads it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from egain_token_operator.decisions.reasons import TRANSIENT_REASONS, Reason
from egain_token_operator.decisions.schedule import (
    Failure,
    PropagationShortfall,
    RefreshBeforeClamp,
    StoredToken,
)
from egain_token_operator.decisions.timestamps import rfc3339

# The conditions kstatus (sigs.k8s.io/cli-utils/pkg/kstatus) reads, as Flux's
# health checks and kpt do. "Abnormal-true": written, with status True,
# only while they hold, and absent otherwise (not False), as Flux's own
# objects do; so a Ready object carries Ready alone, as before they existed.
RECONCILING = "Reconciling"
STALLED = "Stalled"

# The Ready reasons of an object on its way to Ready with nothing to fix: no
# token yet, one expired whose refresh is due, or a failure that may clear by
# itself (retried with backoff). Every other failure needs a person.
_UNDER_WAY = frozenset({Reason.PENDING, Reason.TOKEN_EXPIRED}) | TRANSIENT_REASONS


@dataclass(frozen=True, slots=True)
class Condition:
    """The Ready condition, before its transition time is known."""

    status: str
    reason: Reason
    message: str


def ready_condition(
    *,
    spec_error: str | None,
    ready: bool,
    token: StoredToken | None,
    fingerprint: str | None,
    failure: Failure | None,
    now: datetime,
    shortfall: PropagationShortfall | None = None,
    clamp: RefreshBeforeClamp | None = None,
) -> Condition:
    """The Ready condition for what was observed.

    True exactly when the Secret holds an unexpired token for the current
    request; a failure while such a token remains is reported in `lastFailure`
    only. Otherwise the failure's reason, else `TokenExpired`, else `Pending`.
    A token that falls short of the propagation allowance (`shortfall`), or
    whose `refreshBefore` the request floor clamps (`clamp`), stays
    `TokenIssued`, with a note in the message.
    """
    if spec_error is not None:
        return Condition("False", Reason.INVALID_SPEC, spec_error)
    if ready and token is not None:
        message = f"token valid until {rfc3339(token.expires_at)}"
        if clamp is not None:
            message += f"; {clamp.describe()}"
        if shortfall is not None:
            message += f"; warning: {shortfall.describe()}"
        return Condition("True", Reason.TOKEN_ISSUED, message)
    if failure is not None:
        return Condition("False", failure.reason, failure.message)
    if token is not None and token.fingerprint == fingerprint and not token.is_valid(now):
        return Condition(
            "False", Reason.TOKEN_EXPIRED, f"token expired at {rfc3339(token.expires_at)}"
        )
    return Condition("Unknown", Reason.PENDING, "requesting a token")


@dataclass(frozen=True, slots=True)
class KstatusCondition:
    """A kstatus condition that holds (status True)."""

    type: str
    reason: str
    message: str


def kstatus_conditions(status: str, reason: str, message: str) -> tuple[KstatusCondition, ...]:
    """The kstatus conditions that hold beside a Ready condition of `status`,
    `reason` and `message`, an EgainToken's or a client's; they take its
    reason and message.

    None while Ready is True. `Reconciling` while the object is on its way
    with nothing to fix (`Pending`, `TokenExpired`, a transient failure);
    `Stalled` for every other reason, a failure that needs a person to change
    the spec, the credentials or a conflicting Secret (a client's
    `CredentialsNotFound` and `InvalidSpec` among them).
    """
    if status == "True":
        return ()
    holds = RECONCILING if reason in _UNDER_WAY else STALLED
    return (KstatusCondition(holds, reason, message),)


def ready_in(status: Mapping[str, Any]) -> Mapping[str, Any]:
    """The Ready condition `status` records (an EgainToken's or a client's);
    empty when it records none."""
    conditions = status.get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Ready"), {})
