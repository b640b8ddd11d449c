"""The request log, and secrecy: no client secret or token shows in the log or anywhere else."""

from __future__ import annotations

import base64
import datetime
import json
import time

import httpx
import pytest

from testground.emulator import ANONYMOUS_SCOPE_PREFIX, EgainEmulator, Flow, token_fingerprint
from tests.harness.conftest import AC, CA, FORM, READ, TENANT, Creds, new_client, token_request

# -- the request log --------------------------------------------------------


@pytest.mark.parametrize("flow", list(Flow))
def test_records_describe_each_request(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds, flow: Flow
) -> None:
    other = new_client(emulator)
    before = time.monotonic()
    token = token_request(http, emulator, flow, creds).json()["access_token"]
    token_request(http, emulator, flow, other, form={"grant_type": "password"})

    [record] = emulator.requests(creds.client_id)
    assert before <= record.monotonic <= time.monotonic()
    now = datetime.datetime.now(datetime.UTC)
    assert abs(record.wall_time - now) < datetime.timedelta(seconds=5)
    assert record.method == "POST"
    assert record.flow is flow
    assert record.tenant == TENANT
    assert record.client_id == creds.client_id
    assert record.grant_type == "client_credentials"
    assert record.content_type == FORM
    assert (record.status, record.error, record.fault) == (200, None, None)
    assert record.token_issued
    assert record.token_fingerprint == token_fingerprint(token)
    if flow is Flow.ANONYMOUS_CUSTOMER:
        assert record.path == "/core/authmgr/v3/oauth2/v2.0/anonymous/token"
        assert (record.user_type, record.domain_hint) == ("customer", TENANT)
        assert record.scopes == (ANONYMOUS_SCOPE_PREFIX + READ,)
    else:
        assert record.path == f"/system/auth/{TENANT}-U/oauth2/token"
        assert (record.user_type, record.domain_hint) == (None, None)
        assert record.scopes == (READ,)
    [rejected] = emulator.requests(other.client_id, flow=flow)
    assert (rejected.grant_type, rejected.error) == ("password", "unsupported_grant_type")
    assert len(emulator.requests(flow=flow)) == 2


def test_wait_for_requests_times_out(emulator: EgainEmulator) -> None:
    with pytest.raises(TimeoutError):
        emulator.wait_for_requests(1, timeout=0.05)


# -- secrecy ----------------------------------------------------------------


def test_secrets_and_tokens_never_leak(
    http: httpx.Client,
    emulator: EgainEmulator,
    creds: Creds,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    tokens = [token_request(http, emulator, flow, creds).json()["access_token"] for flow in Flow]
    token_request(http, emulator, CA, creds, form={"client_secret": creds.client_secret + "x"})
    token_request(http, emulator, AC, creds, form={"grant_type": "password"})
    emulator.set_fault("string_expires_in")
    tokens.append(token_request(http, emulator, CA, creds).json()["access_token"])
    admin = (
        http.get(emulator.admin_url + "/requests").text
        + http.get(emulator.admin_url + "/clients").text
    )
    introspected = http.post(emulator.admin_url + "/introspect", json={"token": tokens[0]})
    assert introspected.json()["active"] is True

    records = emulator.requests()
    assert len(records) == 5
    captured = capsys.readouterr()
    exposed = "\n".join(
        [
            repr(records),
            json.dumps([r.to_json() for r in records]),
            repr(emulator.clients()),
            repr(emulator.issued_tokens()),
            repr(emulator.faults()),
            introspected.text,
            admin,
            caplog.text,
            captured.out,
            captured.err,
        ]
    )
    assert creds.client_id in caplog.text  # the log does name the client
    for value in (creds.client_secret, *tokens):
        assert value not in exposed


def test_secrets_in_finds_client_secrets_and_issued_tokens(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds
) -> None:
    token = token_request(http, emulator, CA, creds).json()["access_token"]
    old_secret = creds.client_secret
    emulator.rotate_secret(creds.client_id)
    found = emulator.secrets_in(f"id={creds.client_id} secret={old_secret} Bearer {token}.")
    assert set(found) == {old_secret, token}
    for description in found.values():
        assert old_secret not in description
        assert token not in description
    assert emulator.secrets_in(f"{creds.client_id} and a-long-run-of-harmless-characters") == {}


def test_secrets_in_finds_them_base64_encoded(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds
) -> None:
    token = token_request(http, emulator, CA, creds).json()["access_token"]

    def encoded(text: str, alphabet: bytes | None = None) -> str:
        return base64.b64encode(text.encode(), alphabet).decode()

    # As a dumped Secret shows them: the data values, base64 of the whole value.
    dumped = json.dumps(
        {
            "data": {
                "client_secret": encoded(creds.client_secret),
                "authorization": encoded(f"Bearer {token}"),
                "token": encoded(token, b"-_").rstrip("="),
            }
        }
    )
    found = emulator.secrets_in(dumped)
    assert set(found) == {
        encoded(creds.client_secret),
        encoded(f"Bearer {token}"),
        encoded(token, b"-_").rstrip("="),
    }
    assert all(d.startswith("base64 of ") for d in found.values())
    harmless = encoded(f"client {creds.client_id} got a token")
    assert emulator.secrets_in(f"data: {harmless}") == {}


def test_failure_reports_never_show_a_secret(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_shows_a_secret(emulator):
            emulator.register_client("c", "the-client-secret-0123456789", "T", ["s"])
            assert "the-client-secret-0123456789" == "", "the-client-secret-0123456789"
        """
    )
    result = pytester.runpytest_inprocess("-p", "testground.pytest_emulator", "-ra")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "the-client-secret-0123456789" not in output
    assert "<hidden>" in output
