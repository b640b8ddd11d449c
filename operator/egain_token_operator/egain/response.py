"""What eGain answers, and whether to believe it.

Every failure is a `TokenError` whose `reason` is exactly one Ready reason, so
the caller never has to interpret strings. Error messages are built from status
codes, hosts and eGain's error codes only, and anything echoed from the server
is scrubbed of the credentials and of unprintable characters, so they are safe
for status, events and logs.

A response is not trusted: its body is read up to `MAX_RESPONSE_BYTES` and no
further, and a token is accepted only if it can go into an HTTP header as it
is and lives a plausible time (`MIN_TOKEN_LIFETIME` to `MAX_TOKEN_LIFETIME`).
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from egain_token_operator.decisions.reasons import (
    InvalidCredentialsError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTokenResponseError,
    RateLimitedError,
    TokenEndpointUnavailableError,
    TokenError,
    UnauthorizedClientError,
)

_MAX_DESCRIPTION = 200

# The most of a response body that is read; a token response is a few KiB.
MAX_RESPONSE_BYTES = 64 * 1024
# Lifetimes outside these bounds are not believed: a token that expires within
# a second cannot be used, and one said to outlive a year is a bug somewhere.
MIN_TOKEN_LIFETIME = 1.0
MAX_TOKEN_LIFETIME = 366 * 24 * 3600.0
# What each field may hold so that `<token_type> <access_token>` is a valid
# HTTP header value: RFC 6749's VSCHAR for the token, an HTTP token (RFC 9110)
# for its type, visible ASCII for each scope.
_ACCESS_TOKEN = re.compile(r"[\x20-\x7e]+")
_TOKEN_TYPE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_SCOPE = re.compile(r"[\x21-\x7e]+")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """A parsed, successful token response."""

    access_token: str = field(repr=False)
    token_type: str
    expires_in: float
    scopes: tuple[str, ...]
    expires_in_defaulted: bool

    def expires_at(self, issued_at: datetime) -> datetime:
        """The instant the token expires, for a token received at `issued_at`."""
        return issued_at + timedelta(seconds=self.expires_in)


_OAUTH_ERRORS: Mapping[str, type[TokenError]] = {
    "invalid_client": InvalidCredentialsError,
    "invalid_grant": InvalidCredentialsError,
    "invalid_scope": InvalidScopeError,
    "unauthorized_client": UnauthorizedClientError,
    "access_denied": UnauthorizedClientError,
    "invalid_request": InvalidRequestError,
    "unsupported_grant_type": InvalidRequestError,
}


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every secret replaced, on one line of printable characters, cut
    to a length fit for a status message.

    The longest first: a secret that holds another (a client secret that holds
    the client id) is replaced whole, not around the shorter one.
    """
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "[redacted]")
    text = "".join(c if c.isprintable() else " " for c in text)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DESCRIPTION else text[: _MAX_DESCRIPTION - 3] + "..."


def _retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _json_object(body: bytes) -> tuple[dict[str, Any] | None, str]:
    """The body as a JSON object, or None and what is wrong with it."""
    try:
        payload = json.loads(body)
    except RecursionError:
        return None, "the body is JSON nested too deeply"
    except ValueError:  # UnicodeDecodeError included
        return None, "the body is not a JSON object"
    if not isinstance(payload, dict):
        return None, "the body is not a JSON object"
    return payload, ""


def _expires_in(value: Any, origin: str) -> float:
    """`expires_in` as eGain deployments send it: a JSON number or a numeric string.

    Anything else, and a lifetime outside `MIN_TOKEN_LIFETIME` to
    `MAX_TOKEN_LIFETIME`, is an `InvalidTokenResponseError`.
    """
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        value = float(value.strip())
    nan = isinstance(value, float) and math.isnan(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or nan:
        raise InvalidTokenResponseError(f"{origin}: expires_in is not a number")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds) or seconds > MAX_TOKEN_LIFETIME:
        raise InvalidTokenResponseError(
            f"{origin}: expires_in is more than {MAX_TOKEN_LIFETIME:.0f}s (366 days)"
        )
    if seconds < MIN_TOKEN_LIFETIME:
        raise InvalidTokenResponseError(
            f"{origin}: expires_in {seconds:g}s is shorter than {MIN_TOKEN_LIFETIME:g}s"
        )
    return seconds


def parse_token_response(
    status_code: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    host: str,
    requested_scopes: tuple[str, ...],
    default_lifetime: float,
    secrets: tuple[str, ...],
    now: datetime,
    unread: str | None = None,
) -> TokenResponse:
    """Turn an HTTP response into a `TokenResponse`, or raise the matching error.

    `secrets` are scrubbed from anything of the body that reaches a message.
    `unread` says why the body was not read (too large, say), when it was not.
    """
    origin = f"HTTP {status_code} from {host}"
    if 300 <= status_code < 400:
        raise InvalidTokenResponseError(f"{origin}: redirects are never followed")
    if status_code == 429:
        raise RateLimitedError(origin, retry_after=_retry_after(headers.get("retry-after"), now))
    if status_code >= 500 or status_code == 408:
        raise TokenEndpointUnavailableError(
            origin, retry_after=_retry_after(headers.get("retry-after"), now)
        )
    payload, malformed = _json_object(body) if unread is None else (None, unread)
    if status_code >= 400:
        error = payload.get("error") if payload else None
        description = payload.get("error_description") if payload else None
        message = origin
        if isinstance(error, str):
            message += f": {redact(error, secrets)}"
            if isinstance(description, str) and description:
                message += f" ({redact(description, secrets)})"
        if status_code == 401:
            raise InvalidCredentialsError(message)
        fallback = UnauthorizedClientError if status_code == 403 else InvalidRequestError
        error_class = _OAUTH_ERRORS.get(error, fallback) if isinstance(error, str) else fallback
        raise error_class(message)
    if status_code < 200 or status_code >= 300:
        raise InvalidTokenResponseError(f"{origin}: not a token response")
    if payload is None:
        raise InvalidTokenResponseError(f"{origin}: {malformed}")
    access_token = payload.get("access_token")
    if not isinstance(access_token, str) or not access_token.strip():
        raise InvalidTokenResponseError(f"{origin}: no access_token in the response")
    access_token = access_token.strip()
    if not _ACCESS_TOKEN.fullmatch(access_token):
        # Never say which characters: they are part of the token.
        raise InvalidTokenResponseError(
            f"{origin}: access_token holds characters that cannot go in an HTTP header "
            "(control characters, line breaks or non-ASCII)"
        )
    token_type = payload.get("token_type")
    if token_type is not None and (not isinstance(token_type, str) or not token_type.strip()):
        raise InvalidTokenResponseError(f"{origin}: token_type is not a string")
    token_type = sys.intern(token_type.strip()) if token_type else "Bearer"  # one copy for all
    if not _TOKEN_TYPE.fullmatch(token_type):
        raise InvalidTokenResponseError(
            f"{origin}: token_type is not an HTTP authentication scheme"
        )
    defaulted = "expires_in" not in payload or payload["expires_in"] is None
    expires_in = default_lifetime if defaulted else _expires_in(payload["expires_in"], origin)
    scope = payload.get("scope")
    granted = tuple(scope.split()) if isinstance(scope, str) and scope.strip() else requested_scopes
    if not all(_SCOPE.fullmatch(item) for item in granted):
        raise InvalidTokenResponseError(f"{origin}: scope holds characters outside visible ASCII")
    return TokenResponse(
        access_token=access_token,
        token_type=token_type,
        expires_in=expires_in,
        scopes=granted,
        expires_in_defaulted=defaulted,
    )


async def read_body(response: httpx.Response) -> tuple[bytes, str | None]:
    """At most `MAX_RESPONSE_BYTES` of the body, streamed; else why it was left unread.

    What is not read is dropped with the connection. A compressed body was not
    asked for and is not unpacked: a few KiB of it can hold gigabytes.
    """
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return b"", f"the body is compressed ({encoding[:20]}), which was not asked for"
    too_large = f"the body is larger than {MAX_RESPONSE_BYTES // 1024} KiB"
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        return b"", too_large
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            return b"", too_large
    return bytes(body), None
