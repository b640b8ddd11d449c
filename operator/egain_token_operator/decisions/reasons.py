"""The reasons of the Ready condition, and the one error family that carries
a reason: local and eGain failures alike."""

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
    # With shared clients: found before anything is sent, from the client's policy.
    CLIENT_NOT_FOUND = "ClientNotFound"
    CLIENT_NOT_ALLOWED = "ClientNotAllowed"
    SCOPE_NOT_ALLOWED = "ScopeNotAllowed"


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


class TokenEndpointUnavailableError(TokenError):
    """A connection error, a timeout, or a 5xx."""

    reason = Reason.TOKEN_ENDPOINT_UNAVAILABLE


class RateLimitedError(TokenError):
    """HTTP 429."""

    reason = Reason.RATE_LIMITED


class InvalidTokenResponseError(TokenError):
    """A 2xx (or a redirect) that is not a usable token response."""

    reason = Reason.INVALID_TOKEN_RESPONSE


class TokenUrlNotAllowedError(TokenError):
    """The token URL's host is outside the operator's allow-list; nothing was sent."""

    reason = Reason.TOKEN_URL_NOT_ALLOWED
