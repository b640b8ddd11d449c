"""Clusters starting together choose their /24 one at a time."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from testground import node

HOLDER = textwrap.dedent(
    """
    import sys
    from testground import node
    with node.network_lock():
        print("held", flush=True)
        sys.stdin.readline()
    """
)

HACK = str(Path(node.__file__).resolve().parents[1])


def start_holder() -> subprocess.Popen[str]:
    """Another process holding the lock until its stdin gets a line."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": HACK},
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


def test_a_second_start_waits_for_the_lock_and_gets_it_once_released() -> None:
    holder = start_holder()
    try:
        with pytest.raises(RuntimeError, match="held the network lock"), node.network_lock(0.3):
            pass
    finally:
        holder.communicate("\n", timeout=10)
    with node.network_lock(5):
        pass


def test_a_killed_holder_releases_the_lock() -> None:
    holder = start_holder()
    holder.kill()
    holder.wait(timeout=10)
    with node.network_lock(5):
        pass
