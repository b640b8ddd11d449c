"""The operator as a local process, run as its console script would run it, logging to a file.

Used by the end-to-end tests and the soak (`hack/soak.py`); also the polling
helper both wait with.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar

import httpx

from testground.controlplane import REPO, ControlPlane

T = TypeVar("T")


def wait_until(predicate: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """Poll `predicate` until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class OperatorProcess:
    """The operator, run as its console script would run it, logging to a file."""

    def __init__(
        self,
        control_plane: ControlPlane,
        log_path: Path,
        args: Iterable[str],
        kubeconfig: Path | None = None,
        env: Mapping[str, str] | None = None,
        listen_host: str = "127.0.0.1",
    ) -> None:
        self.log_path = log_path
        # Where /metrics and /healthz listen: a loopback address, IPv6 in brackets.
        self.listen = f"[{listen_host}]" if ":" in listen_host else listen_host
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.args = [
            *args,
            "--metrics-address",
            f"{self.listen}:{self.metrics_port}",
            "--health-address",
            f"{self.listen}:{self.health_port}",
        ]
        self.env = {
            **control_plane.env(),
            "PYTHONPATH": str(REPO / "operator"),
            "PYTHONUNBUFFERED": "1",
            **({"KUBECONFIG": str(kubeconfig)} if kubeconfig else {}),
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "egain_token_operator", "run", *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(self._healthy, "the operator's health endpoint", timeout=60)
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"the operator exited with {self.process.returncode}; see {self.log_path}"
            )
        try:
            return (
                httpx.get(f"http://{self.listen}:{self.health_port}/healthz", timeout=1).status_code
                == 200
            )
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def kill(self) -> None:
        """End it the hard way (SIGKILL), as a crashed or evicted Pod ends."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def metrics(self) -> str:
        return httpx.get(f"http://{self.listen}:{self.metrics_port}/metrics", timeout=5).text

    def leading(self) -> bool:
        """Whether this replica says it acts (its `egain_token_operator_leader` gauge)."""
        return "\negain_token_operator_leader 1.0" in self.metrics()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
