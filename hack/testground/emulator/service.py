"""What the emulated eGain service knows, behind one lock, and the knobs tests turn.

Its clients (`clients`), faults (`faults`), request log (`records`), issued
tokens (`tokens`) and the token requests in flight. `endpoint.EgainEmulator`
serves it and answers each request from it.
"""

from __future__ import annotations

import datetime
import enum
import secrets
import threading
from collections.abc import Iterable

from testground.emulator.clients import ClientRegistry, new_client
from testground.emulator.faults import Fault, FaultBoard, FaultKind, checked_fault
from testground.emulator.oauth import Client, Flow
from testground.emulator.records import Concurrency, InFlight, RequestLog, RequestRecord
from testground.emulator.tokens import IssuedToken, TokenStore, find_secrets, token_fingerprint


class KeepType(enum.Enum):
    """The type of `KEEP`."""

    KEEP = "keep"


KEEP = KeepType.KEEP  # "leave as it is", where None means something


class EmulatedService:
    """The emulated service's clients, faults, request log and issued tokens.

    Thread-safe: tests call any method while requests are answered.
    """

    def __init__(self) -> None:
        # One lock over all the state below, so that each request is judged,
        # answered and recorded at once.
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # notified on each new record
        self._clients = ClientRegistry()
        self._faults = FaultBoard()
        self._records = RequestLog()
        self._tokens = TokenStore()
        self._in_flight = InFlight()
        self._hang_release = threading.Event()

    # -- clients -----------------------------------------------------------

    def register_client(
        self,
        client_id: str,
        client_secret: str,
        tenant: str,
        scopes: Iterable[str],
        lifetime: int = 3600,
        flows: Iterable[Flow | str] = tuple(Flow),
        expires_at: float | None = None,
    ) -> None:
        """Register (or replace) a client allowed `scopes` (unprefixed) on `flows`.

        Its tokens live `lifetime` seconds, or, with `expires_at` (Unix time),
        all expire at that instant (at least 1 s after their issue).
        """
        client = new_client(client_id, client_secret, tenant, scopes, lifetime, flows, expires_at)
        with self._lock:
            self._clients.put(client)

    def update_client(
        self,
        client_id: str,
        *,
        client_secret: str | None = None,
        tenant: str | None = None,
        scopes: Iterable[str] | None = None,
        lifetime: int | None = None,
        flows: Iterable[Flow | str] | None = None,
        expires_at: float | KeepType | None = KEEP,
    ) -> None:
        """Change some attributes of a registered client (`expires_at=None` clears it)."""
        with self._lock:
            current = self._clients[client_id]
        self.register_client(
            client_id,
            current.client_secret if client_secret is None else client_secret,
            current.tenant if tenant is None else tenant,
            current.scopes if scopes is None else scopes,
            current.lifetime if lifetime is None else lifetime,
            current.flows if flows is None else flows,
            current.expires_at if isinstance(expires_at, KeepType) else expires_at,
        )

    def rotate_secret(self, client_id: str, new_secret: str | None = None) -> str:
        """Replace a client's secret (random unless given); the old one stops working."""
        secret = new_secret or secrets.token_urlsafe(32)
        self.update_client(client_id, client_secret=secret)
        return secret

    def remove_client(self, client_id: str) -> None:
        """Forget a client: its requests get invalid_client from now on."""
        with self._lock:
            self._clients.remove(client_id)

    def clients(self) -> list[Client]:
        """The registered clients."""
        with self._lock:
            return self._clients.all()

    # -- faults ------------------------------------------------------------

    def set_fault(
        self,
        kind: FaultKind | str,
        *,
        count: int | None = 1,
        client_id: str | None = None,
        status: int | None = None,
        retry_after: int | None = 1,
        delay: float = 0.0,
        location: str | None = None,
        value: object = None,
        text: str = Fault.text,
        size: int = Fault.size,
        depth: int = Fault.depth,
    ) -> Fault:
        """Make the next `count` token requests (None or -1: all, until cleared) misbehave.

        `client_id` limits the fault to that client's requests. Setting a fault
        replaces the one of the same kind and client_id. When several apply,
        the latency one delays and the most recently set other one acts.
        `value`, `text`, `size` and `depth` shape the hostile answers (see
        `FaultKind`).
        """
        kind = FaultKind(kind)
        fault = checked_fault(
            Fault(
                kind,
                count,
                client_id,
                status,
                retry_after,
                delay,
                location,
                value=value,
                text=text,
                size=size,
                depth=depth,
            )
        )
        with self._lock:
            self._faults.put(fault)
        return fault

    def faults(self) -> list[Fault]:
        """The active faults, with their remaining counts."""
        with self._lock:
            return self._faults.all()

    def clear_faults(self, kind: FaultKind | str | None = None) -> None:
        """Remove all faults (or those of one kind) and release hung requests."""
        with self._lock:
            self._faults.clear(kind)
        self._release_hangs()

    def _release_hangs(self) -> None:
        with self._lock:
            released, self._hang_release = self._hang_release, threading.Event()
        released.set()

    # -- request log and issued tokens -------------------------------------

    def requests(
        self, client_id: str | None = None, *, flow: Flow | str | None = None
    ) -> list[RequestRecord]:
        """Recorded token requests, oldest first, optionally of one client or flow."""
        with self._lock:
            return self._records.find(client_id, flow)

    def wait_for_requests(
        self,
        count: int = 1,
        client_id: str | None = None,
        *,
        flow: Flow | str | None = None,
        timeout: float = 10.0,
    ) -> list[RequestRecord]:
        """Block until at least `count` matching requests are recorded; return them.

        Raises TimeoutError after `timeout` seconds.
        """
        with self._changed:
            done = self._changed.wait_for(
                lambda: len(self._records.find(client_id, flow)) >= count, timeout=timeout
            )
            found = self._records.find(client_id, flow)
        if not done:
            raise TimeoutError(f"{len(found)} of {count} expected token requests after {timeout}s")
        return found

    def concurrency(self) -> Concurrency:
        """Token requests in flight now, and the most at once since the last reset."""
        with self._lock:
            return self._in_flight.now()

    def reset(self) -> None:
        """Forget the request log and the peak concurrency, and clear faults.

        Clients and issued tokens are kept, as the real service keeps them: a
        token issued before a reset still checks out with is_issued_token().
        """
        with self._lock:
            self._records.clear()
            self._in_flight.reset_peak()
        self.clear_faults()

    token_fingerprint = staticmethod(token_fingerprint)

    def token_info(self, token: str) -> IssuedToken | None:
        """What this emulator issued as `token`, or None."""
        with self._lock:
            return self._tokens.info(token)

    def is_issued_token(self, token: str, *, client_id: str | None = None) -> bool:
        """Whether this emulator issued `token` (to `client_id`, if given)."""
        info = self.token_info(token)
        return info is not None and client_id in (None, info.client_id)

    def issued_tokens(self, client_id: str | None = None) -> list[IssuedToken]:
        """Metadata of the tokens issued (to `client_id`, if given), oldest first."""
        with self._lock:
            tokens = self._tokens.all()
        return [t for t in tokens if client_id in (None, t.client_id)]

    def secrets_in(self, text: str) -> dict[str, str]:
        """Every client secret ever registered and every issued token in `text`.

        The keys are the secret values themselves (for redaction); only the
        values, which describe them, are safe to show.
        """
        with self._lock:
            known = self._clients.secrets()
        return find_secrets(text, known, self.token_info)

    def last_issued_expiry(self, client_id: str) -> datetime.datetime | None:
        """When the newest token issued to `client_id` expires, or None if none was."""
        tokens = self.issued_tokens(client_id)
        return tokens[-1].expires_at if tokens else None
