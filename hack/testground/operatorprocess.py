"""The operator as a local process, run as its console script would run it, logging to a file.

The one "start the operator, wait for health, stop it" of the test ground:
the end-to-end tests and the soak start it and wait in one call (`start`);
the benchmark starts it (`launch`), waits without blocking its event loop
(`wait_healthy`, `wait_for_line`) and reads what it costs (RSS, CPU). Also
the polling helper the tests and the soak wait with.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from testground import procfs
from testground.controlplane import REPO, ControlPlane
from testground.supervision import free_port

T = TypeVar("T")

_HEALTHY_WITHIN = 60.0  # seconds a start may take before its health endpoint answers
_STOP_GRACE = 20.0  # seconds SIGTERM gets before SIGKILL


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
        self._log_start = 0  # where the last launch's lines begin in the log

    def launch(self) -> float:
        """Start it without waiting; return the Unix time it was started at."""
        with self.log_path.open("ab") as log:
            self._log_start = log.tell()
            started_at = time.time()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "egain_token_operator", "run", *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return started_at

    def start(self) -> OperatorProcess:
        """Start it and wait until its health endpoint answers."""
        self.launch()
        wait_until(self.healthy, "the operator's health endpoint", timeout=_HEALTHY_WITHIN)
        return self

    async def wait_healthy(self, within: float = _HEALTHY_WITHIN) -> None:
        """Wait, without blocking the event loop, until its health endpoint answers;
        TimeoutError after `within` seconds."""
        deadline = time.monotonic() + within
        while not await asyncio.to_thread(self.healthy):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the operator was not healthy after {within:.0f} s")
            await asyncio.sleep(0.1)

    def healthy(self) -> bool:
        """Whether its health endpoint answers 200; RuntimeError once it has exited."""
        process = self._running()
        if process.poll() is not None:
            raise RuntimeError(
                f"the operator exited with {process.returncode}; see {self.log_path}"
            )
        try:
            url = f"http://{self.listen}:{self.health_port}/healthz"
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    async def wait_for_line(self, text: str, within: float) -> str | None:
        """The first line of its log (since the last launch) holding `text`, once it
        appears; None after `within` seconds without one."""
        deadline = time.monotonic() + within
        with self.log_path.open("rb") as log:
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

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace; safe to call twice, or before a start."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=_STOP_GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def kill(self) -> None:
        """End it the hard way (SIGKILL), as a crashed or evicted Pod ends."""
        process = self._running()
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def metrics(self, *names: str) -> str:
        """Its `/metrics` page; only the metrics `names`, if any are given."""
        url = f"http://{self.listen}:{self.metrics_port}/metrics"
        return httpx.get(url, params={"name[]": names} if names else None, timeout=5).text

    def metric(self, name: str) -> float | None:
        """Its unlabelled metric `name` (a gauge such as `egain_token_operator_leader`),
        asked for alone: the whole page grows with the tokens served. None when
        it has none."""
        for family in text_string_to_metric_families(self.metrics(name)):
            for sample in family.samples:
                if sample.name == name and not sample.labels:
                    return sample.value
        return None

    def leading(self) -> bool:
        """Whether this replica says it acts (its `egain_token_operator_leader` gauge)."""
        return self.metric("egain_token_operator_leader") == 1

    async def events_posted(self, within: float) -> float:
        """Wait, without blocking the event loop, until it has posted every Event
        it queued (`egain_token_operator_events_pending` at 0); when, as Unix
        time. TimeoutError after `within` seconds."""
        deadline = time.monotonic() + within
        while await asyncio.to_thread(self.metric, "egain_token_operator_events_pending") != 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the operator's Events were not posted after {within:.0f} s")
            await asyncio.sleep(0.1)
        return time.time()

    def log(self) -> str:
        """Its log so far, every launch."""
        return self.log_path.read_text(errors="replace")

    def rss_mib(self) -> float:
        """Resident memory, in MiB."""
        return procfs.status_kib(self._running().pid, "VmRSS") / 1024

    def peak_rss_mib(self) -> float:
        """The most resident memory it has had since its launch, in MiB."""
        return procfs.status_kib(self._running().pid, "VmHWM") / 1024

    def cpu_seconds(self) -> float:
        """CPU time used so far (user and system, every thread)."""
        return procfs.cpu_seconds(self._running().pid)

    def _running(self) -> subprocess.Popen[bytes]:
        assert self.process is not None, "not launched"
        return self.process
