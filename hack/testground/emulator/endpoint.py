"""`EgainEmulator`: the emulated token endpoint, its knobs, and its answer to each request.

It ties the parts together behind one lock: the OAuth rules (`oauth`), the
client registry (`clients`), faults (`faults`), issued tokens (`tokens`) and
the request log (`records`), served by the HTTPS server (`server`) with the
admin API (`admin`) beside the token paths.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import functools
import json
import logging
import secrets
import ssl
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Self

from testground.emulator import admin, oauth
from testground.emulator.clients import ClientRegistry, new_client
from testground.emulator.faults import (
    DELAY,
    REDIRECT_TARGET_PATH,
    SHAPE,
    TAKEOVER,
    Fault,
    FaultBoard,
    FaultKind,
    checked_fault,
    shaped_reply,
    takeover_reply,
)
from testground.emulator.oauth import Client, Flow, OAuthError, Seen
from testground.emulator.records import Concurrency, InFlight, RequestLog, RequestRecord
from testground.emulator.replies import Reply
from testground.emulator.server import HttpsServer, Routes, serving_certificate
from testground.emulator.tokens import IssuedToken, TokenStore, find_secrets, token_fingerprint

logger = logging.getLogger(__name__)


class KeepType(enum.Enum):
    """The type of `KEEP`."""

    KEEP = "keep"


KEEP = KeepType.KEEP  # "leave as it is", where None means something


class EgainEmulator:
    """The eGain token endpoint, in a background thread, with fault knobs.

    Thread-safe: tests call any method while the server answers requests.
    """

    def __init__(
        self,
        state_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        url_host: str = "localhost",
        dns_names: Sequence[str] = (),
    ) -> None:
        """Prepare (not start) an emulator keeping its CA and certificate in `state_dir`.

        `url_host` is the host name (or address) used in `base_url`; `dns_names`
        are extra names for the serving certificate (e.g. a Service name in a
        cluster). The certificate also names `host` when it is an address, so
        that clients elsewhere (Pods on the node's bridge) can reach it by that.
        """
        self._state_dir = Path(state_dir)
        self._host = host
        self._port = port
        self._url_host = url_host
        self._ca, self._serving = serving_certificate(self._state_dir, host, url_host, dns_names)
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
        self._stopping = threading.Event()
        self._server: HttpsServer | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Start serving in a background thread. After a stop(), the same port is reused."""
        if self._server is not None:
            raise RuntimeError("emulator already started")
        self._stopping.clear()
        routes = Routes(
            token=self._answer,
            admin=functools.partial(admin.serve_admin, self),
            stopping=self._stopping,
            answering=self._answering,
        )
        server = HttpsServer((self._host, self._port), self._serving, routes)
        self._port = server.port
        self._server = server
        server.start()
        self._write_endpoint_file()
        logger.info("eGain emulator serving on %s", self.base_url)

    def stop(self) -> None:
        """Stop serving: release hangs, close every connection, free the port."""
        server = self._server
        if server is None:
            return
        self._stopping.set()
        self._release_hangs()
        server.stop()
        self._server = None
        logger.info("eGain emulator on port %d stopped", self._port)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _write_endpoint_file(self) -> None:
        """Let other processes (the demo, scripts) find the emulator."""
        endpoint = {
            "base_url": self.base_url,
            "ca_file": str(self.ca_file),
            "admin_url": self.admin_url,
            "anonymous_token_url": self.anonymous_token_url(),
        }
        (self._state_dir / "endpoint.json").write_text(json.dumps(endpoint, indent=2) + "\n")

    # -- addresses ---------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port (known once started)."""
        if not self._port:
            raise RuntimeError("emulator not started")
        return self._port

    @property
    def base_url(self) -> str:
        """E.g. `https://localhost:40123`."""
        return f"https://{self._url_host}:{self.port}"

    @property
    def ca_file(self) -> Path:
        """PEM file of the CA that signed the serving certificate."""
        return self._ca.cert

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client-side SSL context trusting only this emulator's CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def client_app_token_url(self, tenant: str, suffix: str = "U") -> str:
        """Token URL of the client-app flow for `tenant`."""
        return f"{self.base_url}/system/auth/{tenant}-{suffix}/oauth2/token"

    def anonymous_token_url(self) -> str:
        """Token URL of the anonymous-customer flow, without its query."""
        return self.base_url + oauth.ANONYMOUS_TOKEN_PATH

    @property
    def redirect_target_url(self) -> str:
        """Where a redirect fault points unless told otherwise."""
        return self.base_url + REDIRECT_TARGET_PATH

    @property
    def admin_url(self) -> str:
        """Base of the admin endpoints (`/admin/faults`, `/admin/requests`, ...)."""
        return self.base_url + admin.ADMIN_PREFIX.rstrip("/")

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

    @contextlib.contextmanager
    def _answering(self) -> Iterator[None]:
        """Count a token request as in flight from its arrival until its answer is sent."""
        with self._lock:
            self._in_flight.enter()
        try:
            yield
        finally:
            with self._lock:
                self._in_flight.leave()

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

    # -- the token endpoint ------------------------------------------------

    def _answer(
        self,
        method: str,
        target: str,
        content_type: str | None,
        user_agent: str | None,
        peer: str,
        body: bytes,
    ) -> Reply:
        """Decide the answer to one non-admin request and record it."""
        seen, query, form = oauth.observe(method, target, content_type, body)
        seen.user_agent, seen.peer = user_agent, peer
        if seen.flow is None:
            with self._lock:
                return self._record(seen, oauth.not_found_reply(), error="not_found")

        with self._lock:
            latency = self._faults.take(DELAY, seen.client_id)
        delayed = latency.delay if latency else 0.0
        # Interruptible, so that stop() never waits for a slow answer.
        if delayed and self._stopping.wait(delayed):
            return Reply(action="close")

        with self._lock:
            fault = self._faults.take(TAKEOVER, seen.client_id)
            if fault is not None:
                reply = takeover_reply(
                    fault,
                    stopping=self._stopping.is_set(),
                    hang_release=self._hang_release,
                    redirect_target=self.redirect_target_url,
                )
                return self._record(seen, reply, fault=fault, delayed=delayed)
            try:
                client, scope = oauth.authorize(seen, query, form, self._clients.get)
            except OAuthError as exc:
                reply = oauth.error_reply(exc)
                return self._record(seen, reply, error=exc.error, delayed=delayed)
            return self._issue(seen, seen.flow, client, scope, delayed)

    def _issue(self, seen: Seen, flow: Flow, client: Client, scope: str, delayed: float) -> Reply:
        """Issue a token to an authorised request, shaped by any shaping fault. Lock held."""
        shaping = self._faults.take(SHAPE, client.client_id)
        lifetime = client.lifetime_at(time.time())
        token, issued = self._tokens.issue(client, flow, scope, lifetime)
        reply = shaped_reply(oauth.token_payload(token, lifetime, scope), shaping)
        return self._record(seen, reply, fault=shaping, delayed=delayed, token=issued)

    def _record(
        self,
        seen: Seen,
        reply: Reply,
        *,
        error: str | None = None,
        fault: Fault | None = None,
        delayed: float = 0.0,
        token: IssuedToken | None = None,
    ) -> Reply:
        """Log a request before it is answered, so no client sees the answer first. Lock held."""
        status = reply.status if reply.action == "respond" else None
        self._records.add(seen, status, error=error, fault=fault, delayed=delayed, token=token)
        self._changed.notify_all()
        return reply
