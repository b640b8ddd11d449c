"""The reasons of the Ready condition, which failures are worth a quick retry,
and the one error family that carries a reason."""

from __future__ import annotations

from enum import StrEnum

# The reason of the Warning Event posted when a token's lifetime is too short
# for the propagation allowance. An Event reason only: Ready stays TokenIssued.
LIFETIME_SHORTER_THAN_ALLOWANCE = "LifetimeShorterThanAllowance"


class Reason(StrEnum):
    """`status.conditions[Ready].reason`, as listed in the API contract."""

    TOKEN_ISSUED = "TokenIssued"
    PENDING = "Pending"
    CREDENTIALS_NOT_FOUND = "CredentialsNotFound"
    INVALID_CREDENTIALS = "InvalidCredentials"
    INVALID_SCOPE = "InvalidScope"
    UNAUTHORIZED_CLIENT = "UnauthorizedClient"
    INVALID_REQUEST = "InvalidRequest"
    TOKEN_ENDPOINT_UNAVAILABLE = "TokenEndpointUnavailable"
    RATE_LIMITED = "RateLimited"
    INVALID_TOKEN_RESPONSE = "InvalidTokenResponse"
    TOKEN_URL_NOT_ALLOWED = "TokenUrlNotAllowed"
    SECRET_CONFLICT = "SecretConflict"
    TOKEN_EXPIRED = "TokenExpired"
    INVALID_SPEC = "InvalidSpec"

    @property
    def transient(self) -> bool:
        """Failures that may clear by themselves, so they are retried with a short backoff.

        Every other failure needs a person to change something (the spec, the
        credentials, the operator's settings, a conflicting Secret) and is
        retried rarely, and at once when the spec or the credentials change.
        """
        return self in _TRANSIENT


_TRANSIENT = frozenset(
    {Reason.TOKEN_ENDPOINT_UNAVAILABLE, Reason.RATE_LIMITED, Reason.INVALID_TOKEN_RESPONSE}
)


class TokenError(Exception):
    """Why no token could be had, found locally or reported by eGain.

    `reason` is the Ready reason it maps to: a subclass names it once for all
    its instances, or it is given here. `message` is safe for status, events
    and logs: it never holds the client secret or a token.
    """

    reason: Reason

    def __init__(
        self, message: str, *, reason: Reason | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        self.message = message
        self.retry_after = retry_after
