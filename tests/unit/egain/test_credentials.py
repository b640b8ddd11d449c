"""Reading the client credentials: what they are, where they were read, and a
failure that says the same whatever the Secret holds."""

import base64
from typing import Any

import pytest

from egain_token_operator.decisions.issuer import CredentialsRef
from egain_token_operator.decisions.reasons import Reason, TokenError
from egain_token_operator.egain.credentials import read_credentials
from egain_token_operator.egain.request import CredentialsOrigin

REF = CredentialsRef("portal-client", "id", "secret", namespace="platform")
MISSING = "Secret platform/portal-client with keys id and secret not found"


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def secret(data: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "platform",
            "name": "portal-client",
            "uid": "u-1",
            "resourceVersion": "42",
        },
        "data": {key: b64(value) for key, value in data.items()},
    }


def test_reads_the_values_and_where_they_were_read() -> None:
    read = read_credentials(secret({"id": " portal-id\n", "secret": "s3cret"}), REF)
    assert (read.client_id, read.client_secret) == ("portal-id", "s3cret")
    assert read.origin == CredentialsOrigin(
        "platform", "portal-client", "u-1", "42", "id", "secret"
    )


@pytest.mark.parametrize(
    "found",
    [
        None,
        secret({}),
        secret({"id": "portal-id"}),
        secret({"secret": "s3cret"}),
        secret({"id": "portal-id", "secret": "  "}),
        secret({"client_id": "portal-id", "client_secret": "s3cret", "other": "x"}),
    ],
)
def test_a_missing_secret_or_key_reads_the_same(found: dict[str, Any] | None) -> None:
    # Nothing tells a Secret that exists from one that does not, nor which keys it has.
    with pytest.raises(TokenError) as caught:
        read_credentials(found, REF)
    assert caught.value.reason is Reason.CREDENTIALS_NOT_FOUND
    assert caught.value.message == MISSING
    assert "portal-id" not in caught.value.message and "s3cret" not in caught.value.message
