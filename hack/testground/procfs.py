"""What /proc says of a process: its state, start time, CPU time, memory and open files."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def stat_fields(stat_file: Path) -> list[str]:
    """The fields of a `stat` file after the command name (in parentheses, which
    may hold spaces): the state first, field 3 of proc(5)."""
    return stat_file.read_text().rpartition(")")[2].split()


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system, every thread) process `pid` has used so far."""
    fields = stat_fields(Path(f"/proc/{pid}/stat"))
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def start_ticks(pid: int) -> int | None:
    """When `pid` started, in clock ticks after boot; None when it is gone."""
    try:
        return int(stat_fields(Path(f"/proc/{pid}/stat"))[19])  # field 22
    except (FileNotFoundError, ProcessLookupError):
        return None


def status_kib(pid: int, key: str) -> int:
    """A size from /proc/PID/status, in KiB: `VmRSS`, `VmHWM`..."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} for process {pid}")


def open_files(pid: int) -> tuple[int, int]:
    """How many file descriptors `pid` has open, and how many of them are sockets."""
    links = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            links.append(os.readlink(fd))
    return len(links), sum(link.startswith("socket:") for link in links)
