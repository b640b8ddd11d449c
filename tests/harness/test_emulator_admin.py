"""The admin endpoint: faults, the request log, reset, clients and token introspection."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from testground.emulator import EgainEmulator, FaultKind, token_fingerprint
from tests.harness.conftest import AC, CA, READ, TENANT, Creds, new_client, token_request


def test_admin_sets_lists_and_clears_faults(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds
) -> None:
    admin = emulator.admin_url
    created = http.post(admin + "/faults", json={"kind": "server_error", "status": 502})
    assert created.status_code == 201
    assert created.json()["status"] == 502
    assert token_request(http, emulator, CA, creds).status_code == 502
    assert http.get(admin + "/faults").json() == []

    http.post(admin + "/faults", json={"kind": "rate_limited", "count": None, "retry_after": 3})
    http.post(admin + "/faults", json={"kind": "latency", "delay": 0.01, "client_id": "x"})
    assert [f["kind"] for f in http.get(admin + "/faults").json()] == ["rate_limited", "latency"]
    assert http.delete(admin + "/faults", params={"kind": "latency"}).status_code == 200
    assert [f.kind for f in emulator.faults()] == [FaultKind.RATE_LIMITED]
    assert http.delete(admin + "/faults").status_code == 200
    assert emulator.faults() == []


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/faults", {"kind": "nonsense"}, 400),
        ("POST", "/faults", {"kind": "hang", "bogus": 1}, 400),
        ("POST", "/faults", {"count": 1}, 400),
        ("POST", "/faults", None, 400),
        ("POST", "/clients", {"client_id": "x"}, 400),
        ("GET", "/nothing", None, 404),
    ],
)
def test_admin_refuses_bad_requests(
    http: httpx.Client,
    emulator: EgainEmulator,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
) -> None:
    content = b"{not json" if body is None and method == "POST" else json.dumps(body).encode()
    response = http.request(method, emulator.admin_url + path, content=content)
    assert response.status_code == status
    assert "error" in response.json()
    assert emulator.faults() == []


def test_admin_request_log_and_reset(
    http: httpx.Client, emulator: EgainEmulator, creds: Creds
) -> None:
    other = new_client(emulator)
    token_request(http, emulator, CA, creds)
    token_request(http, emulator, AC, other)
    http.post(emulator.admin_url + "/faults", json={"kind": "hang"})

    logged = http.get(emulator.admin_url + "/requests").json()
    assert logged == [r.to_json() for r in emulator.requests()]  # admin calls are not logged
    assert logged[1]["flow"] == "AnonymousCustomer"
    mine = http.get(emulator.admin_url + "/requests", params={"client_id": creds.client_id})
    assert [r["client_id"] for r in mine.json()] == [creds.client_id]
    tokens = http.get(emulator.admin_url + "/tokens", params={"client_id": creds.client_id})
    [token] = tokens.json()
    assert token["client_id"] == creds.client_id

    assert http.post(emulator.admin_url + "/reset").status_code == 200
    assert emulator.requests() == []
    assert emulator.faults() == []
    assert len(emulator.issued_tokens(creds.client_id)) == 1  # tokens are kept...
    assert token_request(http, emulator, CA, creds).status_code == 200  # ...and clients


def test_admin_registers_clients_and_introspects_tokens(
    http: httpx.Client, emulator: EgainEmulator
) -> None:
    client = {
        "client_id": "from-admin",
        "client_secret": "admin-given-secret",
        "tenant": TENANT,
        "scopes": [READ],
        "lifetime": 60,
        "flows": ["AnonymousCustomer"],
    }
    assert http.post(emulator.admin_url + "/clients", json=client).status_code == 201
    listed = {c["client_id"]: c for c in http.get(emulator.admin_url + "/clients").json()}
    assert listed["from-admin"] == {
        "client_id": "from-admin",
        "tenant": TENANT,
        "scopes": [READ],
        "lifetime": 60,
        "flows": ["AnonymousCustomer"],
        "expires_at": None,
    }
    creds = Creds("from-admin", "admin-given-secret")
    token = token_request(http, emulator, AC, creds).json()["access_token"]

    info = http.post(emulator.admin_url + "/introspect", json={"token": token}).json()
    assert (info["active"], info["client_id"], info["fingerprint"]) == (
        True,
        "from-admin",
        token_fingerprint(token),
    )
    unknown = http.post(emulator.admin_url + "/introspect", json={"token": "forged"})
    assert unknown.json() == {"active": False}
