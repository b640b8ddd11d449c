"""Supervising the test ground's processes: start one in a session of its own, wait for it,
tell whether it lives, freeze it, end it; and a free port for it to listen on."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from testground import procfs

_STOP_GRACE = 15.0  # seconds a process gets for each of SIGTERM and SIGKILL
_SIGNAL_TIMEOUT = 10.0  # seconds for a SIGSTOP or SIGCONT to reach every thread


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def spawn(command: list[str], log: Path, env: Mapping[str, str] | None = None) -> int:
    """Start `command` in a session of its own, appending its output to `log`; its pid."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return process.pid


def alive(pid: int) -> bool:
    """Whether `pid` still runs; a zombie (exited, not yet reaped) does not."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
    try:
        state = procfs.stat_fields(Path(f"/proc/{pid}/stat"))[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def wait_ready(ready: Callable[[], bool], pids: Mapping[str, int], within: float) -> str | None:
    """Poll `ready` until it holds (None); or why not: which of `pids` exited, or "timed out"
    after `within` seconds."""
    deadline = time.monotonic() + within
    while not ready():
        dead = [name for name, pid in pids.items() if not alive(pid)]
        if dead:
            return f"{', '.join(dead)} exited"
        if time.monotonic() > deadline:
            return "timed out"
        time.sleep(0.2)
    return None


def terminate(pid: int) -> None:
    """End the session `pid` leads: SIGTERM, then SIGKILL, each with a grace."""
    for sig, grace in ((signal.SIGTERM, _STOP_GRACE), (signal.SIGKILL, _STOP_GRACE)):
        if not alive(pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + grace
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    if alive(pid):
        raise RuntimeError(f"process {pid} survived SIGKILL")


def thread_states(pid: int) -> list[str]:
    """The state letter of every thread of `pid` (`R`, `S`, `T`...); [] when it is gone."""
    states = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            states.append(procfs.stat_fields(task / "stat")[0])
    return states


def await_threads(pid: int, stopped: bool, what: str) -> None:
    """Wait until every thread of `pid` is stopped (`T`), or none is."""
    deadline = time.monotonic() + _SIGNAL_TIMEOUT
    while True:
        states = thread_states(pid)
        if not states:
            raise RuntimeError(f"{what} (pid {pid}) is gone")
        if all(state == "T" for state in states) if stopped else "T" not in states:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{what} (pid {pid}) not {'stopped' if stopped else 'running'} "
                f"{_SIGNAL_TIMEOUT:.0f} s after the signal; thread states {''.join(states)}"
            )
        time.sleep(0.01)
