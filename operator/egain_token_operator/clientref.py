"""Which eGain client an EgainToken uses: the two client kinds and references to them.

Pure: objects as the API sends them in, plain values out. The command line
selects tokens by client (`renew --client`), lists a client's tokens
(`status egc/NAME`) and names the client a token uses with these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ClientKind(StrEnum):
    """The kinds an EgainToken's `spec.clientRef.kind` may name."""

    EGAIN_CLIENT = "EgainClient"
    CLUSTER_EGAIN_CLIENT = "ClusterEgainClient"

    @property
    def plural(self) -> str:
        """The resource name in the API's paths."""
        return self.value.lower() + "s"

    @property
    def namespaced(self) -> bool:
        """True for `EgainClient`, usable only by EgainTokens of its own namespace."""
        return self is ClientKind.EGAIN_CLIENT


# `spec.clientRef.kind` when it is left out.
DEFAULT_CLIENT_KIND = ClientKind.EGAIN_CLIENT

# The spellings kubectl accepts for each kind: kind, singular, plural, short name.
CLIENT_KIND_NAMES = {
    **dict.fromkeys(("egainclient", "egainclients", "egc"), ClientKind.EGAIN_CLIENT),
    **dict.fromkeys(
        ("clusteregainclient", "clusteregainclients", "cegc"), ClientKind.CLUSTER_EGAIN_CLIENT
    ),
}


@dataclass(frozen=True)
class ClientRef:
    """One EgainClient (in `namespace`) or ClusterEgainClient (`namespace` None)."""

    kind: ClientKind
    name: str
    namespace: str | None = None

    @classmethod
    def of(cls, kind: ClientKind, name: str, namespace: str) -> ClientRef:
        """`kind/name`, an EgainClient taken in `namespace`."""
        return cls(kind, name, namespace if kind.namespaced else None)

    def __str__(self) -> str:
        return f"{self.kind.value}/{self.name}"


def client_kind(text: str) -> ClientKind | None:
    """The client kind `text` names, as kubectl would read it (`egc`, `ClusterEgainClient`...)."""
    return CLIENT_KIND_NAMES.get(text.lower())


def parse_client(text: str) -> tuple[ClientKind, str]:
    """`KIND/NAME` as typed on the command line (`cegc/support-portal`).

    Raises `ValueError` with a message for the user.
    """
    kind_text, _, name = text.partition("/")
    kind = client_kind(kind_text)
    if kind is None or not name or "/" in name:
        raise ValueError(
            f"{text!r} is not KIND/NAME with KIND EgainClient (egc) or ClusterEgainClient (cegc)"
        )
    return kind, name


def _reference(token: Mapping[str, Any], ref: Any, default_kind: str | None) -> ClientRef | None:
    if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str):
        return None
    kind = client_kind(str(ref.get("kind") or default_kind or ""))
    if kind is None:
        return None
    return ClientRef.of(kind, ref["name"], token["metadata"]["namespace"])


def requested_client(token: Mapping[str, Any]) -> ClientRef | None:
    """The client `spec.clientRef` names; None for an inline token."""
    ref = (token.get("spec") or {}).get("clientRef")
    return _reference(token, ref, DEFAULT_CLIENT_KIND.value)


def recorded_client(token: Mapping[str, Any]) -> ClientRef | None:
    """The client the operator last used for the token (`status.client`); None when
    it recorded none (an inline token, or one not looked at yet)."""
    return _reference(token, (token.get("status") or {}).get("client"), None)


def uses(token: Mapping[str, Any], client: ClientRef) -> bool:
    """True when the token's `spec.clientRef` names `client`."""
    return requested_client(token) == client
