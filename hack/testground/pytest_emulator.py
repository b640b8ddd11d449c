"""Pytest fixtures for the eGain token endpoint emulator.

Enable with `pytest_plugins = ["testground.pytest_emulator"]` (or `-p`).
One emulator serves the whole session on loopback; each test that asks for
`emulator` gets it with an empty request log and no faults, and leaves it that
way (so a hang fault can never outlive its test). `pod_emulator` is the same
for a second emulator that Pods reach: it listens on the node bridge's
gateway address of the session's `control_plane`. Registered clients and issued tokens
persist across tests: register clients with ids unique to the test.

The report of a failed test is redacted: any client secret the emulator was
given and any token it issued is replaced by `<hidden>`, so that an assertion
message that happens to show one never reaches the test output.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from testground.controlplane import ControlPlane
from testground.emulator import EgainEmulator


@pytest.fixture(scope="session")
def egain_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EgainEmulator]:
    """The session's emulator, serving HTTPS on a free loopback port."""
    with EgainEmulator(tmp_path_factory.mktemp("egain-emulator")) as emulator:
        yield emulator


def _reset_around(emulator: EgainEmulator) -> Iterator[EgainEmulator]:
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def emulator(egain_emulator: EgainEmulator) -> Iterator[EgainEmulator]:
    """The session's emulator, its log and faults reset before and after the test."""
    yield from _reset_around(egain_emulator)


@pytest.fixture(scope="session")
def pod_egain_emulator(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EgainEmulator]:
    """The session's emulator for Pods, serving HTTPS on the node's gateway address."""
    gateway = control_plane.gateway
    state_dir = tmp_path_factory.mktemp("pod-egain-emulator")
    with EgainEmulator(state_dir, host=gateway, url_host=gateway) as emulator:
        yield emulator


@pytest.fixture
def pod_emulator(pod_egain_emulator: EgainEmulator) -> Iterator[EgainEmulator]:
    """The emulator for Pods, its log and faults reset before and after the test."""
    yield from _reset_around(pod_egain_emulator)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    funcargs = getattr(item, "funcargs", {})
    emulators = [funcargs.get(name) for name in ("egain_emulator", "pod_egain_emulator")]
    if report.longrepr is None:
        return report
    text = str(report.longrepr)
    found: dict[str, str] = {}
    for emulator in emulators:
        if isinstance(emulator, EgainEmulator):
            found.update(emulator.secrets_in(text))
    for secret in sorted(found, key=len, reverse=True):
        text = text.replace(secret, "<hidden>")
    if found:
        report.longrepr = text
    return report
