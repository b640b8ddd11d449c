"""Reading the client credentials from their Secret.

The client secret is held in memory only: nothing derived from it is stored
except the request fingerprint, a SHA-256 it cannot be read back from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from egain_token_operator.decisions.issuer import CredentialsRef
from egain_token_operator.decisions.readback import decode_data
from egain_token_operator.decisions.reasons import Reason, TokenError
from egain_token_operator.egain.request import ClientCredentials


def read_credentials(secret: Mapping[str, Any] | None, ref: CredentialsRef) -> ClientCredentials:
    """The client id and secret `ref` points to, or a `CredentialsNotFound` error."""
    if secret is None:
        raise TokenError(f"Secret {ref.describe()} not found", reason=Reason.CREDENTIALS_NOT_FOUND)
    data = secret.get("data") or {}
    values = []
    for key in (ref.client_id_key, ref.client_secret_key):
        value = (decode_data(data.get(key)) or "").strip()
        if not value:
            raise TokenError(
                f"Secret {ref.describe()} has no non-empty key {key}",
                reason=Reason.CREDENTIALS_NOT_FOUND,
            )
        values.append(value)
    return ClientCredentials(values[0], values[1])
