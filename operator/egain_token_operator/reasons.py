"""The reasons of the Ready condition, and which failures are worth a quick retry."""

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
