"""A forward proxy for HTTPS (HTTP CONNECT tunnels only), recording each target.

It stands in for the egress proxy many clusters make the operator go through:
the client sends `CONNECT host:port`, the proxy opens a TCP connection there,
answers 200 and then copies bytes both ways. TLS stays end to end, so the proxy
never sees a token or a client secret.
"""

from __future__ import annotations

import http.server
import select
import socket
import socketserver
import threading

from testground.background import BackgroundServer

_CHUNK = 65536


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.targets: list[str] = []
        self.lock = threading.Lock()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_CONNECT(self) -> None:
        host, _, port = self.path.rpartition(":")
        with self.server.lock:
            self.server.targets.append(self.path)
        try:
            upstream = socket.create_connection((host, int(port)), timeout=10)
        except (OSError, ValueError):
            self.send_error(502, "cannot reach the target")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        with upstream:
            _pipe(self.connection, upstream)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the recorded targets are what tests look at."""


def _pipe(one: socket.socket, other: socket.socket) -> None:
    peers = {one: other, other: one}
    while True:
        readable, _, _ = select.select(list(peers), [], [], 30)
        if not readable:
            return
        for source in readable:
            data = source.recv(_CHUNK)
            if not data:
                return
            peers[source].sendall(data)


class ConnectProxy(BackgroundServer):
    """Serves in a background thread while used as a context manager."""

    def __init__(self) -> None:
        self._proxy = _Server()
        super().__init__(self._proxy, "connect-proxy")

    @property
    def url(self) -> str:
        host, port = self._proxy.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def targets(self) -> list[str]:
        """Every `host:port` a client asked to be connected to, in order."""
        with self._proxy.lock:
            return list(self._proxy.targets)
