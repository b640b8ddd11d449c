"""`make bench PROFILE=1` (`--profile`): where an operator's CPU goes during a burst.

py-spy samples the operator process from outside (no change to it, no
restart) for the length of the burst, and writes the stacks it saw in its
`raw` format (one line per stack, `frame;frame;... count`), which speedscope
and flamegraph tools read. `summary` boils them down to the entries the table
prints: the share of the busy samples each of the operator's own functions
was on the stack for (where its work goes, by the product's steps) and each
function the samples ended in (where the CPU was spent, whoever called it).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PY_SPY = Path(sys.executable).parent / "py-spy"
OWN = "egain_token_operator/"  # the operator's frames, as py-spy names their files
TOP = 12  # entries of each list kept in the figures


class Profiler:
    """py-spy recording process `pid` into `path` until stopped."""

    def __init__(self, pid: int, path: Path, rate: int = 200) -> None:
        self.path = path
        self._process = subprocess.Popen(
            [
                str(PY_SPY),
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--nolineno",
                "--nonblocking",  # the operator is never paused by the sampling
                "--output",
                str(path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> dict[str, Any]:
        """Stop recording; the summary of what was recorded."""
        self._process.send_signal(signal.SIGINT)  # py-spy writes its output and exits
        self._process.wait(timeout=60)
        return summary(self.path.read_text().splitlines()) | {"file": str(self.path)}


def summary(lines: Iterable[str]) -> dict[str, Any]:
    """The busy samples of py-spy `raw` lines, and the top entries: the operator's
    functions by the share of samples they were on the stack for, and the functions
    samples ended in (leaves) by their share."""
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    samples = 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        samples += int(count)
        leaves[frames[-1]] += int(count)
        for frame in set(frames):
            if OWN in frame:
                inclusive[frame] += int(count)
    return {
        "samples": samples,
        "operator": _shares(inclusive, samples),
        "leaves": _shares(leaves, samples),
    }


def _shares(counts: Counter[str], samples: int) -> list[tuple[str, float]]:
    return [(frame, count / samples) for frame, count in counts.most_common(TOP)] if samples else []
