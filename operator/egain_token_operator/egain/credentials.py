"""Reading the client credentials from their Secret.

The client secret is held in memory only: nothing derived from its value is
stored (the request fingerprint names the Secret's identity and version
instead, see `TokenRequest.fingerprint`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from egain_token_operator.decisions.issuer import CredentialsRef
from egain_token_operator.decisions.readback import decode_data
from egain_token_operator.decisions.reasons import Reason, TokenError
from egain_token_operator.egain.request import ClientCredentials, CredentialsOrigin


def read_credentials(secret: Mapping[str, Any] | None, ref: CredentialsRef) -> ClientCredentials:
    """The client id and secret `ref` points to, or a `CredentialsNotFound` error.

    A missing Secret and a Secret without either key fail alike: the message
    names the Secret and the keys expected, never which keys a Secret has, so
    it says nothing of a Secret the EgainToken's team may not be allowed to read.
    """
    data = (secret or {}).get("data") or {}
    keys = (ref.client_id_key, ref.client_secret_key)
    values = [(decode_data(data.get(key)) or "").strip() for key in keys]
    if secret is None or not all(values):
        raise TokenError(
            f"Secret {ref.describe()} with keys {keys[0]} and {keys[1]} not found",
            reason=Reason.CREDENTIALS_NOT_FOUND,
        )
    metadata = secret.get("metadata") or {}
    origin = CredentialsOrigin(
        namespace=str(metadata.get("namespace") or ""),
        name=str(metadata.get("name") or ref.name),
        uid=str(metadata.get("uid") or ""),
        resource_version=str(metadata.get("resourceVersion") or ""),
        client_id_key=keys[0],
        client_secret_key=keys[1],
    )
    return ClientCredentials(values[0], values[1], origin)
