"""Which reasons are transient or local, as the error types say; the kstatus
conditions beside each Ready condition; and the Ready condition as a status
records it."""

import pytest

from egain_token_operator.decisions.readiness import (
    RECONCILING,
    STALLED,
    KstatusCondition,
    kstatus_conditions,
    ready_in,
)
from egain_token_operator.decisions.reasons import (
    CHECKED_REASONS,
    LOCAL_REASONS,
    TRANSIENT_REASONS,
    ClientReason,
    LocalTokenError,
    Reason,
    TokenUrlNotAllowedError,
)


def test_the_transient_reasons_are_those_of_the_transient_error_types() -> None:
    assert {
        Reason.TOKEN_ENDPOINT_UNAVAILABLE,
        Reason.RATE_LIMITED,
        Reason.INVALID_TOKEN_RESPONSE,
    } == TRANSIENT_REASONS


def test_the_local_reasons_are_the_checked_ones_and_those_of_the_local_error_types() -> None:
    assert issubclass(TokenUrlNotAllowedError, LocalTokenError)
    assert {
        Reason.INVALID_SPEC,
        Reason.CLIENT_NOT_FOUND,
        Reason.CLIENT_NOT_ALLOWED,
        Reason.SCOPE_NOT_ALLOWED,
        Reason.SHARING_REQUIRED,
        Reason.CREDENTIALS_NOT_FOUND,
        Reason.SECRET_CONFLICT,
        Reason.TOKEN_URL_NOT_ALLOWED,
    } == LOCAL_REASONS
    assert {Reason.TOKEN_URL_NOT_ALLOWED} == LOCAL_REASONS - CHECKED_REASONS
    assert not LOCAL_REASONS & TRANSIENT_REASONS


def test_the_ready_condition_a_status_records() -> None:
    ready = {"type": "Ready", "status": "True", "reason": "TokenIssued"}
    assert ready_in({"conditions": [{"type": "Other", "status": "False"}, ready]}) == ready
    assert ready_in({"conditions": []}) == {}
    assert ready_in({}) == {}


# Each Ready condition an EgainToken's or a client's status can hold (its
# status and reason) → the kstatus condition that holds beside it, if any.
KSTATUS_TABLE: list[tuple[str, str, str | None]] = [
    ("True", Reason.TOKEN_ISSUED, None),
    # On its way, nothing to fix: kstatus reads InProgress.
    ("Unknown", Reason.PENDING, RECONCILING),
    ("False", Reason.TOKEN_EXPIRED, RECONCILING),
    ("False", Reason.TOKEN_ENDPOINT_UNAVAILABLE, RECONCILING),
    ("False", Reason.RATE_LIMITED, RECONCILING),
    ("False", Reason.INVALID_TOKEN_RESPONSE, RECONCILING),
    # A person must change something: kstatus reads Failed.
    ("False", Reason.CREDENTIALS_NOT_FOUND, STALLED),
    ("False", Reason.INVALID_CREDENTIALS, STALLED),
    ("False", Reason.INVALID_SCOPE, STALLED),
    ("False", Reason.UNAUTHORIZED_CLIENT, STALLED),
    ("False", Reason.INVALID_REQUEST, STALLED),
    ("False", Reason.TOKEN_URL_NOT_ALLOWED, STALLED),
    ("False", Reason.SECRET_CONFLICT, STALLED),
    ("False", Reason.INVALID_SPEC, STALLED),
    ("False", Reason.CLIENT_NOT_FOUND, STALLED),
    ("False", Reason.CLIENT_NOT_ALLOWED, STALLED),
    ("False", Reason.SCOPE_NOT_ALLOWED, STALLED),
    ("False", Reason.SHARING_REQUIRED, STALLED),
    # A client's.
    ("True", ClientReason.CREDENTIALS_FOUND, None),
    ("False", ClientReason.CREDENTIALS_NOT_FOUND, STALLED),
    ("False", ClientReason.INVALID_SPEC, STALLED),
]


@pytest.mark.parametrize(("status", "reason", "holds"), KSTATUS_TABLE)
def test_the_kstatus_condition_beside_each_ready_condition(
    status: str, reason: str, holds: str | None
) -> None:
    found = kstatus_conditions(status, reason, "what Ready says")
    assert found == (() if holds is None else (KstatusCondition(holds, reason, "what Ready says"),))


def test_the_kstatus_table_covers_every_ready_reason() -> None:
    assert {reason for _, reason, _ in KSTATUS_TABLE} == set(Reason) | set(ClientReason)
