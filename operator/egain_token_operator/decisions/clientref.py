"""Which eGain client an EgainToken uses, as the command line reads and shows it.

Pure: objects as the API sends them in, `spec.ClientKey`s out. The command
line selects tokens by client (`renew --client`), lists a client's tokens
(`status egc/NAME`) and names the client a token uses with these; the kinds
and references themselves are `spec.py`'s, as the operator uses them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from egain_token_operator.decisions.spec import ClientKey, ClientKind, ClientRef

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


def _reference(token: Mapping[str, Any], ref: Any, default_kind: str | None) -> ClientKey | None:
    if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str):
        return None
    kind = client_kind(str(ref.get("kind") or default_kind or ""))
    if kind is None:
        return None
    return ClientRef(kind, ref["name"]).key(token["metadata"]["namespace"])


def requested_client(token: Mapping[str, Any]) -> ClientKey | None:
    """The client `spec.clientRef` names; None for an inline token."""
    ref = (token.get("spec") or {}).get("clientRef")
    return _reference(token, ref, ClientKind.EGAIN_CLIENT.value)


def recorded_client(token: Mapping[str, Any]) -> ClientKey | None:
    """The client the operator last used for the token (`status.client`); None when
    it recorded none (an inline token, or one not looked at yet)."""
    return _reference(token, (token.get("status") or {}).get("client"), None)


def uses(token: Mapping[str, Any], client: ClientKey) -> bool:
    """True when the token's `spec.clientRef` names `client`."""
    return requested_client(token) == client
