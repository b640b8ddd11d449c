"""Which reasons are transient or local, as the error types say; and the Ready
condition as a status records it."""

from egain_token_operator.decisions.readiness import ready_in
from egain_token_operator.decisions.reasons import (
    CHECKED_REASONS,
    LOCAL_REASONS,
    TRANSIENT_REASONS,
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
