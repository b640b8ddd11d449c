"""The operator under test, as a local process: started, measured (RSS, CPU), stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from testground import procfs
from testground.controlplane import ControlPlane
from testground.operatorprocess import free_port

REPO = Path(__file__).resolve().parents[2]


class Operator:
    """`egain-token-operator run` with the given flags, its own identity and log file."""

    def __init__(
        self, plane: ControlPlane, kubeconfig: Path, log_path: Path, flags: Sequence[str]
    ) -> None:
        self._health_port = free_port()
        self._command = [
            sys.executable, "-m", "egain_token_operator", "run", *flags,
            "--metrics-address", f"127.0.0.1:{free_port()}",
            "--health-address", f"127.0.0.1:{self._health_port}",
        ]  # fmt: skip
        self._env = {
            **plane.env(),
            "KUBECONFIG": str(kubeconfig),
            "PYTHONPATH": str(REPO / "operator"),
        }
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0  # Unix time of the start
        self._log_start = 0  # where this start's lines begin in the log

    def start(self) -> float:
        """Start it (without waiting); return the Unix time it was started at."""
        with self._log_path.open("ab") as log:
            self._log_start = log.tell()
            self.started_at = time.time()
            self._process = subprocess.Popen(
                self._command,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.started_at

    @property
    def pid(self) -> int:
        """The process id."""
        assert self._process is not None, "not started"
        return self._process.pid

    async def wait_healthy(self, within: float = 60.0) -> None:
        """Wait until its health endpoint answers 200; TimeoutError after `within` seconds."""
        deadline = time.monotonic() + within
        url = f"http://127.0.0.1:{self._health_port}/healthz"
        async with httpx.AsyncClient(timeout=1.0) as client:
            while True:
                assert self._process is not None
                if self._process.poll() is not None:
                    raise RuntimeError(f"the operator exited; see {self._log_path}")
                try:
                    if (await client.get(url)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the operator was not healthy after {within:.0f} s")
                await asyncio.sleep(0.1)

    async def wait_for_line(self, text: str, within: float) -> str | None:
        """The first line of its log (since this start) holding `text`, once it
        appears; None after `within` seconds without one."""
        deadline = time.monotonic() + within
        with self._log_path.open("rb") as log:
            log.seek(self._log_start)
            pending = b""
            while time.monotonic() < deadline:
                pending += log.read()
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if text.encode() in line:
                        return line.decode(errors="replace")
                await asyncio.sleep(0.05)
        return None

    def rss_mib(self) -> float:
        """Resident memory, in MiB."""
        return procfs.status_kib(self.pid, "VmRSS") / 1024

    def peak_rss_mib(self) -> float:
        """The most resident memory it has had since its start, in MiB."""
        return procfs.status_kib(self.pid, "VmHWM") / 1024

    def cpu_seconds(self) -> float:
        """CPU time used so far (user and system, every thread)."""
        return procfs.cpu_seconds(self.pid)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 30 s; safe to call twice."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
