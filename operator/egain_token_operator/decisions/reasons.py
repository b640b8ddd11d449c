"""The reasons of the Ready condition, and the one error family that carries
a reason: local and eGain failures alike.

Which failures may clear by themselves (`TransientTokenError`) and which are
found without asking eGain (`LocalTokenError`, and the policy's local checks)
is said here, once; `TRANSIENT_REASONS` and `LOCAL_REASONS` classify a reason
read back from a status, where only the reason remains.
"""

from __future__ import annotations

from enum import StrEnum

# The reason of the Warning Event posted when a token's lifetime is too short
# for the propagation allowance. An Event reason only: Ready stays TokenIssued.
LIFETIME_SHORTER_THAN_ALLOWANCE = "LifetimeShorterThanAllowance"
# The reason of the Normal Event posted when a forced refresh comes too soon
# after the last request (the request floor): it is served later, not dropped.
REFRESH_DEFERRED = "RefreshDeferred"


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
    # With shared clients: found before anything is sent, from the client's policy.
    CLIENT_NOT_FOUND = "ClientNotFound"
    CLIENT_NOT_ALLOWED = "ClientNotAllowed"
    SCOPE_NOT_ALLOWED = "ScopeNotAllowed"
    # The client requires sharing (`tokenSharing: Required`); the EgainToken opts out.
    SHARING_REQUIRED = "SharingRequired"


class ClientReason(StrEnum):
    """`status.conditions[Ready].reason` of an EgainClient or ClusterEgainClient."""

    CREDENTIALS_FOUND = "CredentialsFound"
    CREDENTIALS_NOT_FOUND = "CredentialsNotFound"
    INVALID_SPEC = "InvalidSpec"


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


class TransientTokenError(TokenError):
    """A failure that may clear by itself: retried with a short backoff.

    Every other failure needs a person to change something (the spec, the
    credentials, the operator's settings, a conflicting Secret) and is retried
    rarely, and at once when the spec or the credentials change.
    """


class LocalTokenError(TokenError):
    """A failure found without asking eGain, as a request was to be sent: nothing was sent."""


class InvalidCredentialsError(TokenError):
    """HTTP 401 or `invalid_client`: the client id or secret is wrong."""

    reason = Reason.INVALID_CREDENTIALS


class InvalidScopeError(TokenError):
    """`invalid_scope`: a requested scope is unknown or not granted to the client."""

    reason = Reason.INVALID_SCOPE


class UnauthorizedClientError(TokenError):
    """`unauthorized_client`, or HTTP 403: the client may not use this flow."""

    reason = Reason.UNAUTHORIZED_CLIENT


class InvalidRequestError(TokenError):
    """`invalid_request` or another 4xx: the request is malformed or the URL is wrong."""

    reason = Reason.INVALID_REQUEST


class TokenEndpointUnavailableError(TransientTokenError):
    """A connection error, a timeout, or a 5xx."""

    reason = Reason.TOKEN_ENDPOINT_UNAVAILABLE


class RateLimitedError(TransientTokenError):
    """HTTP 429."""

    reason = Reason.RATE_LIMITED


class InvalidTokenResponseError(TransientTokenError):
    """A 2xx (or a redirect) that is not a usable token response."""

    reason = Reason.INVALID_TOKEN_RESPONSE


class TokenUrlNotAllowedError(LocalTokenError):
    """The token URL's host is outside the operator's allow-list; nothing was sent."""

    reason = Reason.TOKEN_URL_NOT_ALLOWED


TRANSIENT_REASONS = frozenset(error.reason for error in TransientTokenError.__subclasses__())

# Failures the policy's local checks find before a request is built
# (`checks.LOCAL_CHECKS`): a reason and a message, no error raised.
CHECKED_REASONS = frozenset(
    {
        Reason.INVALID_SPEC,
        Reason.CLIENT_NOT_FOUND,
        Reason.CLIENT_NOT_ALLOWED,
        Reason.SCOPE_NOT_ALLOWED,
        Reason.SHARING_REQUIRED,
        Reason.CREDENTIALS_NOT_FOUND,
        Reason.SECRET_CONFLICT,
    }
)

# Failures found without asking eGain. A look costs nothing at eGain, so they
# are re-checked at every look and hold no request back; they are still
# recorded, for the status and for a periodic re-check.
LOCAL_REASONS = CHECKED_REASONS | {error.reason for error in LocalTokenError.__subclasses__()}
