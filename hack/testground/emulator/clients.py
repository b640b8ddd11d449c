"""The client registry of the emulated tenant: who may ask for tokens, and with what secret.

Every secret ever registered is remembered with its client id, so that a
rotated or removed one is still recognised in a text (see
`EgainEmulator.secrets_in`). The registry is not thread-safe by itself:
`EgainEmulator` guards it with its lock.
"""

from __future__ import annotations

from collections.abc import Iterable

from testground.emulator.oauth import Client, Flow


def new_client(
    client_id: str,
    client_secret: str,
    tenant: str,
    scopes: Iterable[str],
    lifetime: int,
    flows: Iterable[Flow | str],
    expires_at: float | None = None,
) -> Client:
    """A checked `Client`; raises ValueError on an empty name or a negative lifetime."""
    client = Client(
        client_id=client_id,
        client_secret=client_secret,
        tenant=tenant,
        scopes=frozenset(scopes),
        lifetime=int(lifetime),
        flows=frozenset(Flow(f) for f in flows),
        expires_at=None if expires_at is None else float(expires_at),
    )
    if not client_id or not client_secret or not tenant:
        raise ValueError("client_id, client_secret and tenant must not be empty")
    if client.lifetime < 0:
        raise ValueError("lifetime must not be negative")
    return client


def public_client(client: Client) -> dict[str, object]:
    """A client as JSON-ready data, without its secret."""
    return {
        "client_id": client.client_id,
        "tenant": client.tenant,
        "scopes": sorted(client.scopes),
        "lifetime": client.lifetime,
        "flows": sorted(client.flows),
        "expires_at": client.expires_at,
    }


class ClientRegistry:
    """The registered clients, and every secret any of them ever had."""

    def __init__(self) -> None:
        self._clients: dict[str, Client] = {}
        self._secrets: dict[str, str] = {}  # secret → client id

    def put(self, client: Client) -> None:
        """Register `client`, replacing any of the same id."""
        self._clients[client.client_id] = client
        self._secrets[client.client_secret] = client.client_id

    def __getitem__(self, client_id: str) -> Client:
        """The client of that id; KeyError if there is none."""
        return self._clients[client_id]

    def get(self, client_id: str) -> Client | None:
        """The client of that id, or None."""
        return self._clients.get(client_id)

    def remove(self, client_id: str) -> None:
        """Forget a client (but not its secrets)."""
        self._clients.pop(client_id, None)

    def all(self) -> list[Client]:
        """The registered clients."""
        return list(self._clients.values())

    def secrets(self) -> dict[str, str]:
        """Every secret ever registered → its client id."""
        return dict(self._secrets)
