"""`make demo` runs: the operator Pod writes the Secret, the token refreshes in it and in a
consumer Pod's file, and everything the demo started stops."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.support import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def test_demo_shows_a_token_appear_and_refresh(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'hack'}{os.pathsep}{REPO / 'operator'}"}
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "hack" / "demo.py"),
            "--state-dir",
            str(tmp_path),
            "--lifetime",
            "40",
            "--refreshes",
            "2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "knowledge-portal   True    TokenIssued   knowledge-portal-token" in out
    expiries = [line for line in out.splitlines() if "expires_at=" in line]
    assert len(expiries) == 3
    assert len({line.rsplit("=", 1)[1].split()[0] for line in expiries}) == 3
    seen = [line for line in out.splitlines() if line.startswith("consumer Pod reads:")]
    assert len(seen) == 3
    assert len({line.split()[5] for line in seen}) == 3
    # Everything the demo started has stopped.
    assert not (tmp_path / "cluster" / "state.json").exists()
    for line in out.splitlines():
        assert "access_token" not in line or "expires_at" in line
