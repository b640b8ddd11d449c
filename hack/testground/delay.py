"""A TCP forwarder that makes a server slow, or cuts it off: what the client sends arrives late.

It listens on loopback and forwards each connection to `target`; every chunk
the client sends (with HTTP/1.1, a request) is held for `delay()` seconds
before it goes on, while what the server sends comes back at once. TLS stays
end to end. Put it between a client and the API server (a kubeconfig whose
server is `https://127.0.0.1:<port>`: the API server's certificate names
127.0.0.1) and every request takes that much longer, watches included.

`cut()` stops every byte in both directions, on the open connections and on
new ones (which are accepted, as a dropped SYN's retries would be once the
path is back), until `heal()`: a network partition as the client sees it,
with what was held delivered after the heal, as TCP's retransmissions would.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from pathlib import Path

from testground.background import BackgroundServer

_CHUNK = 65536


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, target: tuple[str, int], delay: Callable[[], float]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.target, self.delay = target, delay
        self.connections = 0
        self.held = 0.0  # seconds of delay added, over every chunk
        self.lock = threading.Lock()
        self.passing = threading.Event()  # cleared while cut
        self.passing.set()


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        try:
            upstream = socket.create_connection(self.server.target, timeout=10)
        except OSError:
            return
        with self.server.lock:
            self.server.connections += 1
        upstream.settimeout(None)
        back = threading.Thread(
            target=_copy, args=(upstream, self.request, self.server.passing), daemon=True
        )
        back.start()
        with upstream:
            while True:
                try:
                    data = self.request.recv(_CHUNK)
                except OSError:
                    break
                if not data:
                    break
                pause = self.server.delay()
                with self.server.lock:
                    self.server.held += pause
                time.sleep(pause)
                self.server.passing.wait()
                try:
                    upstream.sendall(data)
                except OSError:
                    break
            _shut(upstream)
            back.join(timeout=5)


def _copy(source: socket.socket, sink: socket.socket, passing: threading.Event) -> None:
    while True:
        try:
            data = source.recv(_CHUNK)
        except OSError:
            break
        if not data:
            break
        passing.wait()
        try:
            sink.sendall(data)
        except OSError:
            break
    _shut(sink)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class DelayingForwarder(BackgroundServer):
    """Serves in a background thread while used as a context manager."""

    def __init__(self, target: tuple[str, int], delay: Callable[[], float]) -> None:
        self._forwarder = _Server(target, delay)
        super().__init__(self._forwarder, "delaying-forwarder")

    @property
    def port(self) -> int:
        port: int = self._forwarder.server_address[1]
        return port

    @property
    def connections(self) -> int:
        with self._forwarder.lock:
            return self._forwarder.connections

    @property
    def held(self) -> float:
        """Seconds of delay added so far, summed over every chunk."""
        with self._forwarder.lock:
            return self._forwarder.held

    def cut(self) -> None:
        """Let nothing through, either way, until `heal`."""
        self._forwarder.passing.clear()

    def heal(self) -> None:
        """Let everything through again, what was held first."""
        self._forwarder.passing.set()


def kubeconfig_through(kubeconfig: Path, port: int, path: Path) -> Path:
    """`kubeconfig` with its server behind a forwarder on loopback `port`, written to `path`."""
    config = json.loads(kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path
