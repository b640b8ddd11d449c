"""What the operator wrote, read back: the token a managed Secret holds, the
failure a status records, one value of a Secret's `data`.

Pure: the counterpart of `render.py`. A value that is absent or malformed
reads as None, never as an error.
"""

from __future__ import annotations

import base64
import binascii
import sys
from collections.abc import Mapping
from typing import Any

from egain_token_operator.decisions.reasons import Reason
from egain_token_operator.decisions.render import (
    EXPIRES_AT_ANNOTATION,
    FINGERPRINT_ANNOTATION,
    ISSUED_AT_ANNOTATION,
    REFRESH_REQUESTED_AT_ANNOTATION,
)
from egain_token_operator.decisions.schedule import Failure, StoredToken
from egain_token_operator.decisions.timestamps import parse_rfc3339


def decode_data(value: Any) -> str | None:
    """One value of a Secret's `data`, decoded; None when absent or not text."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def stored_token(secret: Mapping[str, Any]) -> StoredToken | None:
    """The token a managed Secret holds, or None when it holds no usable one."""
    data = secret.get("data") or {}
    annotations = (secret.get("metadata") or {}).get("annotations") or {}
    access_token = decode_data(data.get("access_token"))
    token_type = decode_data(data.get("token_type"))
    scope = decode_data(data.get("scope"))
    try:
        issued_at = parse_rfc3339(annotations[ISSUED_AT_ANNOTATION])
        expires_at = parse_rfc3339(annotations[EXPIRES_AT_ANNOTATION])
    except (KeyError, TypeError, ValueError):
        return None
    fingerprint = annotations.get(FINGERPRINT_ANNOTATION)
    if not access_token or not token_type or scope is None or not fingerprint:
        return None
    return StoredToken(
        access_token=access_token,
        token_type=sys.intern(token_type),  # one copy for all
        scopes=tuple(scope.split()),
        issued_at=issued_at,
        expires_at=expires_at,
        fingerprint=fingerprint,
        refresh_request=annotations.get(REFRESH_REQUESTED_AT_ANNOTATION),
    )


def recorded_failure(status: Mapping[str, Any], refresh_request: str | None) -> Failure | None:
    """The failure a status records (`lastFailure`, `consecutiveFailures`,
    `nextRefreshAt`), as `render_status` wrote it; None when it records none.

    What the attempt was for is not stored, so its fingerprint is unknown; the
    credentials Secret's resourceVersion it was built from is. A
    `ScopeNotAllowed` recorded with that version was found in a token response
    (`Failure.answered`): the local check that gives the same reason stops a
    look before the credentials are read (`observe`), so it records none.
    """
    last = status.get("lastFailure") or {}
    try:
        reason = Reason(str(last.get("reason")))
        at = parse_rfc3339(last["time"])
        retry_at = parse_rfc3339(status["nextRefreshAt"])
    except (KeyError, TypeError, ValueError):
        return None
    version = last.get("credentialsVersion")
    return Failure(
        count=int(status.get("consecutiveFailures") or 1),
        reason=reason,
        message=str(last.get("message", "")),
        at=at,
        retry_at=retry_at,
        fingerprint=None,
        refresh_request=refresh_request,
        credentials_version=version,
        answered=reason is Reason.SCOPE_NOT_ALLOWED and version is not None,
    )
