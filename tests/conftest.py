"""Fixtures shared by the whole suite: the local control plane and the eGain emulator."""

pytest_plugins = [
    "testground.pytest_controlplane",
    "testground.pytest_emulator",
    "pytester",
]
