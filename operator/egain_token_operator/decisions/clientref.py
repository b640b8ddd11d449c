"""Which eGain client an EgainToken uses, as the command line reads and shows it.

Pure: objects as the API sends them in, `ClientKey`s out. The command
line selects tokens by client (`renew --client`), lists a client's tokens
(`status egc/NAME`) and names the client a token uses with these; the kinds
and references themselves are `clients.py`'s, read as the operator reads them
(`parse_client_ref`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from egain_token_operator.decisions.clients import (
    ClientKey,
    ClientKind,
    ClientRef,
    parse_client_ref,
)

# The spellings kubectl accepts for each kind: kind, singular, plural, short name.
CLIENT_KIND_NAMES = {
    **dict.fromkeys(("egainclient", "egainclients", "egc"), ClientKind.EGAIN_CLIENT),
    **dict.fromkeys(
        ("clusteregainclient", "clusteregainclients", "cegc"), ClientKind.CLUSTER_EGAIN_CLIENT
    ),
}


def client_kind(text: str) -> ClientKind | None:
    """The client kind `text` names, as kubectl would read it (`egc`, `ClusterEgainClient`...)."""
    return CLIENT_KIND_NAMES.get(text.lower())


def client_argument(text: str) -> ClientRef:
    """`KIND/NAME` as typed on the command line (`cegc/support-portal`).

    Raises `ValueError` with a message for the user.
    """
    kind_text, _, name = text.partition("/")
    kind = client_kind(kind_text)
    if kind is None or not name or "/" in name:
        raise ValueError(
            f"{text!r} is not KIND/NAME with KIND EgainClient (egc) or ClusterEgainClient (cegc)"
        )
    return ClientRef(kind, name)


def slashed(key: ClientKey) -> str:
    """`Kind/name`, as the command line shows a client."""
    return f"{key.kind.value}/{key.name}"


def requested_client(token: Mapping[str, Any]) -> ClientKey | None:
    """The client `spec.clientRef` names; None for an inline token, or one whose
    `clientRef` the operator cannot serve."""
    return _key(token, parse_client_ref(token.get("spec") or {}, lenient=True))


def recorded_client(token: Mapping[str, Any]) -> ClientKey | None:
    """The client the operator last used for the token (`status.client`); None when
    it recorded none (an inline token, or one not looked at yet)."""
    # `status.client` is written as the `spec.clientRef` that was served (`render_status`).
    served = {"clientRef": (token.get("status") or {}).get("client")}
    return _key(token, parse_client_ref(served, lenient=True))


def _key(token: Mapping[str, Any], ref: ClientRef | None) -> ClientKey | None:
    return None if ref is None else ref.key(token["metadata"]["namespace"])


def uses(token: Mapping[str, Any], client: ClientKey) -> bool:
    """True when the token's `spec.clientRef` names `client`."""
    return requested_client(token) == client
