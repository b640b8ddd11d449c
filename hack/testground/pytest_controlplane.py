"""Pytest fixture: a fresh local cluster (control plane and a node) for the test session.

Enable with `pytest_plugins = ["testground.pytest_controlplane"]`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from testground import controlplane


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest) -> Iterator[controlplane.ControlPlane]:
    """A control plane of its own (not the `make cluster-up` one), stopped at the end.

    Its state lives under `.testground/`, not pytest's temporary directory: a
    pytest session started meanwhile on the machine deletes all but the three
    newest of those, and with them the record `stop` needs to undo the
    cluster. Kept after a session with failures, for the component logs.
    """
    parent = controlplane.DEFAULT_STATE_DIR.parent
    parent.mkdir(parents=True, exist_ok=True)
    state_dir = Path(tempfile.mkdtemp(prefix="control-plane-", dir=parent))
    plane = controlplane.start(state_dir)
    try:
        yield plane
    finally:
        controlplane.stop(state_dir)
        if not request.session.testsfailed:
            shutil.rmtree(state_dir, ignore_errors=True)
