"""The emulator as a server: stopping and restarting, TLS only, and run as a program."""

from __future__ import annotations

import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

import testground
from testground.emulator import ANONYMOUS_SCOPE_PREFIX, EgainEmulator, FaultKind
from tests.harness.conftest import MANAGE, READ, TENANT

# Where `testground` is importable from, for the emulator run as a program.
HACK_DIR = Path(testground.__file__).resolve().parents[1]


# -- stop and restart -------------------------------------------------------


def test_stop_does_not_wait_for_hung_requests(tmp_path: Path) -> None:
    with EgainEmulator(tmp_path) as emulator:
        emulator.set_fault(FaultKind.HANG, count=None)
        errors: list[BaseException] = []

        def call() -> None:
            with httpx.Client(verify=emulator.client_ssl_context(), timeout=30) as client:
                try:
                    client.post(emulator.client_app_token_url(TENANT), data={"a": "b"})
                except httpx.TransportError as exc:
                    errors.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        emulator.wait_for_requests(1, timeout=5)
        started = time.monotonic()
        emulator.stop()
        caller.join(timeout=5)
        assert time.monotonic() - started < 3
    assert not caller.is_alive()
    assert len(errors) == 1  # the hung client got its connection closed, not an answer


def test_restart_keeps_the_port(tmp_path: Path) -> None:
    emulator = EgainEmulator(tmp_path)
    with emulator:
        url = emulator.base_url
    with httpx.Client(verify=emulator.client_ssl_context()) as client:
        with pytest.raises(httpx.ConnectError):
            client.get(url + "/down")
        with emulator:
            assert emulator.base_url == url
            assert client.get(url + "/up").status_code == 404


# -- transport ----------------------------------------------------------------


def test_plain_http_is_refused(emulator: EgainEmulator) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.post(f"http://localhost:{emulator.port}/system/auth/{TENANT}-U/oauth2/token")
    assert emulator.requests() == []


def test_certificate_is_not_trusted_by_default(emulator: EgainEmulator) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(emulator.base_url + "/")


def test_certificate_covers_the_loopback_address(emulator: EgainEmulator) -> None:
    context = emulator.client_ssl_context()
    response = httpx.get(f"https://127.0.0.1:{emulator.port}/", verify=context)
    assert response.status_code == 404


# -- command line -------------------------------------------------------------


@pytest.mark.timeout(30)
def test_command_line(tmp_path: Path) -> None:
    clients_file = tmp_path / "clients.yaml"
    file_secret = secrets.token_urlsafe(24)
    clients_file.write_text(
        "clients:\n"
        f"  - {{client_id: anon, client_secret: {file_secret}, tenant: {TENANT},"
        f" scopes: [{READ}], flows: [AnonymousCustomer]}}\n"
    )
    flag_secret = secrets.token_urlsafe(24)
    command = [
        sys.executable, "-m", "testground.emulator", "--port", "0",
        "--state-dir", str(tmp_path / "state"), "--clients-file", str(clients_file),
        "--client", f"app:{flag_secret}:{TENANT}:{READ},{MANAGE}:120",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(HACK_DIR)}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        printed: dict[str, str] = {}
        assert process.stdout is not None
        while "anonymous_token_url" not in printed:
            line = process.stdout.readline()
            assert line, "the emulator exited before printing its URLs"
            key, _, value = line.strip().partition("=")
            printed[key] = value
        assert printed["client_app_token_url"].startswith(printed["base_url"])
        assert (
            json.loads((tmp_path / "state" / "endpoint.json").read_text())["base_url"]
            == (printed["base_url"])
        )
        context = ssl.create_default_context(cafile=printed["ca_file"])
        with httpx.Client(verify=context) as client:
            app = client.post(
                printed["client_app_token_url"],
                data={
                    "grant_type": "client_credentials",
                    "client_id": "app",
                    "client_secret": flag_secret,
                    "scope": f"{READ} {MANAGE}",
                },
            )
            anon = client.post(
                printed["anonymous_token_url"],
                params={"user_type": "customer", "domain_hint": TENANT},
                data={
                    "grant_type": "client_credentials",
                    "client_id": "anon",
                    "client_secret": file_secret,
                    "scope": ANONYMOUS_SCOPE_PREFIX + READ,
                },
            )
        assert app.json()["expires_in"] == 120
        assert anon.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "client_id=app" in err
    tokens = [response.json()["access_token"] for response in (app, anon)]
    for value in (flag_secret, file_secret, *tokens):
        assert value not in out + err
