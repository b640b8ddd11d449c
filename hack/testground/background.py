"""A socketserver served from a background thread while used as a context manager."""

from __future__ import annotations

import socketserver
import threading
from types import TracebackType
from typing import Self


class BackgroundServer:
    """Serves `server` in a thread named `name` between `__enter__` and `__exit__`."""

    def __init__(self, server: socketserver.BaseServer, name: str) -> None:
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
