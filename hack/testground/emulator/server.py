"""The HTTPS server: certificates, TLS, one thread per connection, and sending replies.

Stdlib `http.server` is used rather than aiohttp: one thread per connection
makes "close the socket without answering" and "never answer" trivial to do
without disturbing other requests. The server knows nothing of OAuth: it
hands each request to its `Routes` and carries out the `Reply` it gets back.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import socket
import socketserver
import ssl
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from testground import pki
from testground.emulator.admin import ADMIN_PREFIX
from testground.emulator.replies import Reply, json_reply

logger = logging.getLogger(__name__)

_MAX_BODY = 64 * 1024
_MAX_DRAIN = 1024 * 1024
_HANDSHAKE_TIMEOUT = 5.0
# A hang is released by clear_faults()/reset()/stop(); this only bounds a
# forgotten one so that a thread cannot outlive a long demo forever.
_MAX_HANG = 600.0


@dataclass(frozen=True)
class Routes:
    """Who answers what: `/admin/...` requests, every other request, and when to stop."""

    # method, target, content type, user agent, body
    token: Callable[[str, str, str | None, str | None, str, bytes], Reply]
    admin: Callable[[str, str, bytes], tuple[int, object]]  # method, target, body
    stopping: threading.Event  # once set, requests get no answer
    answering: Callable[[], AbstractContextManager[None]]  # held while a token request is served


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def serving_certificate(
    state_dir: Path, host: str, url_host: str, dns_names: Sequence[str]
) -> tuple[pki.KeyPair, pki.KeyPair]:
    """The emulator's CA and a serving certificate it signed, both kept in `state_dir`.

    The certificate names localhost, `url_host` and `dns_names`, and `host`
    when it is an address (so that clients elsewhere can reach it by that).
    """
    ca = pki.create_ca(state_dir, "egain-emulator-ca")
    names = ("localhost", url_host, *dns_names)
    dns = tuple(name for name in dict.fromkeys(names) if not _is_address(name))
    named = (
        a for a in (host, url_host) if _is_address(a) and not ipaddress.ip_address(a).is_unspecified
    )
    addresses = tuple(dict.fromkeys(("127.0.0.1", "::1", *named)))
    # The file name depends on the names so that reused state never serves
    # a certificate issued for other names.
    digest = hashlib.sha256(" ".join(dns + addresses).encode()).hexdigest()[:8]
    serving = pki.issue(
        ca,
        state_dir,
        f"egain-emulator-{digest}",
        common_name="egain-emulator",
        dns_names=dns,
        ip_addresses=addresses,
        server=True,
    )
    return ca, serving


class HttpsServer:
    """A bound HTTPS server, served by a background thread between start() and stop()."""

    def __init__(self, address: tuple[str, int], cert: pki.KeyPair, routes: Routes) -> None:
        """Bind `address` (port 0: any free one) to serve `cert` over TLS 1.2 or later."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert.cert, cert.key)
        self._server = _Server(address, context, routes)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.name = f"egain-emulator:{self.port}"

    def start(self) -> None:
        """Start accepting connections."""
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, close every connection, free the port."""
        server = self._server
        server.shutdown()
        server.server_close()
        with server.idle:
            connections = list(server.connections)
        for connection in connections:
            # The base class method, so as not to touch the SSL object that
            # the handler thread may be reading through right now.
            with contextlib.suppress(OSError):  # already closed by its handler
                socket.socket.shutdown(connection, socket.SHUT_RDWR)
        with server.idle:
            server.idle.wait_for(lambda: not server.connections, timeout=2.0)
        self._thread.join(timeout=2.0)


class _Server(ThreadingHTTPServer):
    """A threading HTTPS server whose TLS handshakes happen in the worker threads."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, routes: Routes) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.routes = routes
        self.ssl_context = context
        self.connections: set[ssl.SSLSocket] = set()
        self.idle = threading.Condition()  # notified as each connection ends
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() resolves the host name (getfqdn), which can
        # stall for seconds without DNS; nothing here needs it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def finish_request(self, request: Any, client_address: Any) -> None:
        # Wrapping here (not on the listening socket) keeps a slow or plain-HTTP
        # client from stalling the accept loop; a failed handshake gets no answer.
        request.settimeout(_HANDSHAKE_TIMEOUT)
        # Headers and body are separate small writes: without this, Nagle and
        # delayed ACKs add ~40 ms to every answer.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            connection = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            logger.debug("TLS handshake failed from %s: %s", client_address[0], exc)
            return
        with self._tracked(connection):
            _Handler(connection, client_address, self)

    @contextlib.contextmanager
    def _tracked(self, connection: ssl.SSLSocket) -> Iterator[None]:
        """Keep `connection` known while it is served, so that stop() can close it."""
        with self.idle:
            self.connections.add(connection)
        try:
            yield
        finally:
            connection.close()
            with self.idle:
                self.connections.discard(connection)
                self.idle.notify_all()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients going away mid-request are routine here (timeouts, resets).
        logger.debug("connection from %s ended with an error", client_address[0], exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    """One connection: HTTP/1.1 keep-alive, every method routed to _dispatch."""

    protocol_version = "HTTP/1.1"
    server_version = "eGainEmulator/1"
    sys_version = ""
    timeout = 30  # idle keep-alive connections are dropped after this
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        # The stdlib logs raw request lines to stderr; the emulator logs its own
        # sanitised line per request instead.
        pass

    def _dispatch(self) -> None:
        routes = self.server.routes
        if routes.stopping.is_set():
            self.close_connection = True
            return
        body = self._read_body()
        if body is None:
            return
        target = self.path
        if target.startswith(ADMIN_PREFIX):
            status, payload = routes.admin(self.command, target, body)
            self._send(json_reply(status, payload))
            return
        with routes.answering():
            reply = routes.token(
                self.command,
                target,
                self.headers.get("Content-Type"),
                self.headers.get("User-Agent"),
                str(self.client_address[0]),
                body,
            )
            match reply.action:
                case "respond":
                    self._send(reply)
                case "reset":
                    self._reset()
                case "hang":
                    assert reply.hang_release is not None
                    reply.hang_release.wait(_MAX_HANG)
                    self.close_connection = True
                case "close":
                    self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def _read_body(self) -> bytes | None:
        """The request body; None (after answering) when it cannot be read."""
        if self.headers.get("Transfer-Encoding"):
            self._refuse(411, "send a Content-Length")
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY:
            # Drain what is reasonable: closing on unread data sends a TCP RST,
            # which can overtake the answer and turn a 413 into a reset.
            self.rfile.read(min(max(length, 0), _MAX_DRAIN))
            self._refuse(413, "bad Content-Length")
            return None
        return self.rfile.read(length)

    def _refuse(self, status: int, description: str) -> None:
        # The body was not read, so the connection cannot be reused.
        self.close_connection = True
        payload = {"error": "invalid_request", "error_description": description}
        self._send(json_reply(status, payload))

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        if reply.status == 405:
            self.send_header("Allow", "POST")
        self.send_header("Content-Length", str(len(reply.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def _reset(self) -> None:
        """Abort the connection with a TCP RST, answering nothing."""
        # Linger 0 turns close() into a reset. The buffered reader holds a
        # reference to the socket, so it goes first or close() would be deferred.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.connection.close()
        self.close_connection = True
