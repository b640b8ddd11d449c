"""When a new token is fetched: before expiry, for new credentials, a new spec, or on request."""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime

import pytest

from testground.emulator import EgainEmulator
from tests.e2e.conftest import MakeReadyToken, client_app_spec, parse_time, successes
from tests.e2e.support import Cluster, credentials_secret, egain_token, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300), pytest.mark.usefixtures("operator")]


def test_short_lived_token_is_replaced_before_it_expires(
    cluster: Cluster, namespace: str, emulator: EgainEmulator, make_ready_token: MakeReadyToken
) -> None:
    make_ready_token("short", client_options={"lifetime": 3})
    seen: set[str] = set()
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        data = cluster.secret_data(namespace, "short")
        assert data is not None
        info = emulator.token_info(data["access_token"].reveal())
        assert info is not None and not info.expired, "the Secret held an expired token"
        seen.add(info.fingerprint)
        time.sleep(0.2)
    # 12 s of 3 s tokens refreshed a second before expiry: about six tokens.
    assert len(seen) >= 4
    assert (cluster.ready(namespace, "short") or {}).get("status") == "True"


def test_rotated_client_secret_gets_a_new_token_within_seconds(
    cluster: Cluster, namespace: str, emulator: EgainEmulator, make_ready_token: MakeReadyToken
) -> None:
    client, ready = make_ready_token("rotating")
    first = cluster.secret_data(namespace, "rotating")
    assert first is not None
    new_secret = emulator.rotate_secret(client.client_id)
    client.used_secrets.append(new_secret)
    cluster.apply(credentials_secret(namespace, client.secret_name, client.client_id, new_secret))

    def new_token() -> bool:
        data = cluster.secret_data(namespace, "rotating")
        return data is not None and data["access_token"] != first["access_token"]

    wait_until(new_token, "a token from the new credentials", timeout=15)
    # At the change, not at the refresh planned for the hour-long token.
    assert datetime.now(UTC) < parse_time(ready["status"]["nextRefreshAt"])
    data = cluster.secret_data(namespace, "rotating")
    assert data is not None
    assert emulator.is_issued_token(data["access_token"].reveal(), client_id=client.client_id)
    assert all(r.status == 200 for r in emulator.requests(client.client_id)), (
        "sent stale credentials"
    )


def test_spec_change_gets_a_new_token_promptly(
    cluster: Cluster, namespace: str, emulator: EgainEmulator, make_ready_token: MakeReadyToken
) -> None:
    client, _ = make_ready_token(
        "changing",
        client_options={"scopes": ("knowledge.portalmgr.manage", "core.aiservices.read")},
    )
    cluster.apply(
        egain_token(
            namespace,
            "changing",
            client_app_spec(emulator, client, scopes=["core.aiservices.read"]),
        )
    )

    def rescoped() -> bool:
        data = cluster.secret_data(namespace, "changing")
        return data is not None and data["scope"] == "core.aiservices.read"

    wait_until(rescoped, "a token for the new scopes", timeout=15)
    token = cluster.wait_ready(namespace, "changing")
    assert token["status"]["observedGeneration"] == 2
    assert successes(emulator, client) == 2


def test_refresh_annotation_forces_a_refresh(
    cluster: Cluster, namespace: str, emulator: EgainEmulator, make_ready_token: MakeReadyToken
) -> None:
    # A two-minute token: its request floor (a 120th of the lifetime, at least
    # 1 s) lets a forced refresh through within two seconds of the last one,
    # and its own refresh (after a minute) comes after the test.
    client, _ = make_ready_token("forced", client_options={"lifetime": 120})
    for attempt in (1, 2):
        cluster.kubectl(
            "annotate",
            "egt",
            "forced",
            "-n",
            namespace,
            "--overwrite",
            f"egain.cloud/refresh-requested-at=r{attempt}",
        )
        wait_until(
            functools.partial(lambda n: successes(emulator, client) == n, attempt + 1),
            f"refresh {attempt}",
            timeout=15,
        )
    time.sleep(2)
    assert successes(emulator, client) == 3, "a handled refresh request was answered again"
