"""Tokens, failures and tunables shared by the schedule and policy tests."""

from datetime import UTC, datetime, timedelta

from egain_token_operator.decisions.reasons import Reason
from egain_token_operator.decisions.schedule import Failure, RetryPolicy, StoredToken

NOW = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)
POLICY = RetryPolicy(
    refresh_jitter=0.1,
    initial_delay=timedelta(seconds=1),
    max_delay=timedelta(minutes=5),
    permanent_delay=timedelta(minutes=10),
)


def token(
    issued: datetime = NOW,
    lifetime: timedelta = timedelta(hours=1),
    fingerprint: str = "fp",
    refresh_request: str | None = None,
) -> StoredToken:
    return StoredToken(
        access_token="opaque",
        token_type="Bearer",
        scopes=("a",),
        issued_at=issued,
        expires_at=issued + lifetime,
        fingerprint=fingerprint,
        refresh_request=refresh_request,
    )


def failure(reason: Reason, retry_at: datetime, fingerprint: str | None = "fp") -> Failure:
    return Failure(1, reason, "boom", NOW, retry_at, fingerprint, None)
