"""`EgainEmulator`: the emulated token endpoint, its knobs, and its answer to each request.

It serves what the emulated service knows (`service`: clients, faults,
request log, issued tokens, behind one lock) by the HTTPS server (`server`),
answering each token request by the OAuth rules (`oauth`), with the admin
API (`admin`) beside the token paths.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Self

from testground.emulator import admin, oauth
from testground.emulator.faults import (
    DELAY,
    REDIRECT_TARGET_PATH,
    SHAPE,
    TAKEOVER,
    Fault,
    shaped_reply,
    takeover_reply,
)
from testground.emulator.oauth import Client, Flow, OAuthError, Seen
from testground.emulator.replies import Reply
from testground.emulator.server import HttpsServer, Routes, serving_certificate
from testground.emulator.service import EmulatedService
from testground.emulator.tokens import IssuedToken

logger = logging.getLogger(__name__)


class EgainEmulator(EmulatedService):
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
        super().__init__()
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

    # -- the token endpoint ------------------------------------------------

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
