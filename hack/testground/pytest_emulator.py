"""Pytest fixtures for the eGain token endpoint emulator.

Enable with `pytest_plugins = ["testground.pytest_emulator"]` (or `-p`).
One emulator serves the whole session; each test that asks for `emulator`
gets it with an empty request log and no faults, and leaves it that way (so a
hang fault can never outlive its test). Registered clients and issued tokens
persist across tests: register clients with ids unique to the test.

The report of a failed test is redacted: any client secret the emulator was
given and any token it issued is replaced by `<hidden>`, so that an assertion
message that happens to show one never reaches the test output.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from testground.emulator import EgainEmulator


@pytest.fixture(scope="session")
def egain_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EgainEmulator]:
    """The session's emulator, serving HTTPS on a free loopback port."""
    with EgainEmulator(tmp_path_factory.mktemp("egain-emulator")) as emulator:
        yield emulator


@pytest.fixture
def emulator(egain_emulator: EgainEmulator) -> Iterator[EgainEmulator]:
    """The session's emulator, its log and faults reset before and after the test."""
    egain_emulator.reset()
    yield egain_emulator
    egain_emulator.reset()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    emulator = getattr(item, "funcargs", {}).get("egain_emulator")
    if report.longrepr is not None and isinstance(emulator, EgainEmulator):
        text = str(report.longrepr)
        found = emulator.secrets_in(text)
        for secret in sorted(found, key=len, reverse=True):
            text = text.replace(secret, "<hidden>")
        if found:
            report.longrepr = text
    return report
