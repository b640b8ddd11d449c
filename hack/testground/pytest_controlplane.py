"""Pytest fixture: a fresh local cluster (control plane and a node) for the test session.

Enable with `pytest_plugins = ["testground.pytest_controlplane"]`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testground import controlplane


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[controlplane.ControlPlane]:
    """A control plane of its own (not the `make cluster-up` one), stopped at the end."""
    state_dir = tmp_path_factory.mktemp("control-plane")
    plane = controlplane.start(state_dir)
    try:
        yield plane
    finally:
        controlplane.stop(state_dir)
