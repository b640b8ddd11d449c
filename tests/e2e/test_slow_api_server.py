"""An API server that answers in seconds: tokens still refreshed in time, once each.

The operator reaches the API server through `testground.delay`, which holds
every request for 1 to 3 s (watches too; eGain is reached directly). Short
tokens refresh several times while the test samples each Secret directly
every second. Required: no Secret ever holds an expired token; each refresh
writes its Secret once (the audit log's Secret writes equal the tokens eGain
issued); the operator's watches resume rather than relisting in a loop (a
handful of LIST requests per kind, however long it runs). Printed: the
refresh lead (how long before the old token expired the new one was
issued) under the delay, and the writes per refresh.
"""

from __future__ import annotations

import itertools
import json
import random
import statistics
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from testground.delay import DelayingForwarder, kubeconfig_through
from testground.emulator import EgainEmulator
from tests.e2e.conftest import MakeClient, StartOperator, client_app_spec
from tests.e2e.support import Cluster, egain_token, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

TOKENS = 10
LIFETIME = 90  # seconds; refreshed half-way (the default allowance caps the lead there)
RUN = 150  # seconds of sampling: three refreshes or so per token


def audit_entries(audit_log: Path, namespace: str, since: float) -> list[dict[str, Any]]:
    """What the operator (any client but kubectl) asked of the API server in `namespace`."""
    found = []
    for line in audit_log.read_text().splitlines():
        if namespace not in line:
            continue
        entry = json.loads(line)
        received = datetime.fromisoformat(entry["requestReceivedTimestamp"]).timestamp()
        if received < since or entry.get("userAgent", "").startswith("kubectl"):
            continue
        if (entry.get("objectRef") or {}).get("namespace") == namespace:
            found.append(entry)
    return found


def test_a_slow_api_server_delays_no_refresh_past_expiry_and_duplicates_no_write(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    start_operator: StartOperator,
    tmp_path: Path,
) -> None:
    plane = cluster.control_plane
    target = (plane.gateway, 443)
    with DelayingForwarder(target, lambda: random.uniform(1.0, 3.0)) as forwarder:
        kubeconfig = kubeconfig_through(
            plane.kubeconfig, forwarder.port, tmp_path / "slow.kubeconfig"
        )
        started = time.time()
        start_operator(kubeconfig=kubeconfig)
        clients = {}
        for index in range(TOKENS):
            client = make_client(lifetime=LIFETIME, secret_name=f"client-{index}")
            cluster.apply(
                egain_token(namespace, f"token-{index}", client_app_spec(emulator, client))
            )
            clients[f"token-{index}"] = client.client_id
        for name in clients:
            cluster.wait_ready(namespace, name, timeout=120)

        expired: list[tuple[str, float]] = []
        first_seen: dict[str, float] = {}  # token fingerprint -> when a sample first had it
        deadline = time.monotonic() + RUN
        samples = 0

        def sample() -> dict[str, str]:
            """Each Secret's token fingerprint, counting expired ones."""
            nonlocal samples
            at, held = time.time(), {}
            for name in clients:
                data = cluster.secret_data(namespace, name)
                assert data is not None
                info = emulator.token_info(data["access_token"].reveal())
                samples += 1
                if info is None or info.expires_at.timestamp() <= at:
                    expired.append((name, at))
                else:
                    first_seen.setdefault(info.fingerprint, at)
                    held[name] = info.fingerprint
            return held

        while time.monotonic() < deadline:
            sample()
            time.sleep(1)

        def settled() -> dict[str, int] | None:
            """Tokens issued per EgainToken, at a moment every Secret holds its latest."""
            issued = {name: emulator.issued_tokens(c) for name, c in clients.items()}
            held = sample()
            latest = {name: max(t, key=lambda t: t.issued_at) for name, t in issued.items()}
            if all(held.get(name) == token.fingerprint for name, token in latest.items()):
                return {name: len(tokens) for name, tokens in issued.items()}
            return None

        counted = wait_until(settled, "every Secret to hold its latest token", timeout=60)
        settled_at = time.time()
        delayed = forwarder.held

    # The refresh lead: how long before a token expired its successor was issued,
    # and was first seen in the Secret.
    leads, visible = [], []
    for client_id in clients.values():
        tokens = sorted(emulator.issued_tokens(client_id), key=lambda t: t.issued_at)
        for old, new in itertools.pairwise(tokens):
            leads.append((old.expires_at - new.issued_at).total_seconds())
            if new.fingerprint in first_seen:
                visible.append(old.expires_at.timestamp() - first_seen[new.fingerprint])
    entries = [
        entry
        for entry in audit_entries(plane.audit_log, namespace, started)
        if datetime.fromisoformat(entry["requestReceivedTimestamp"]).timestamp() <= settled_at
    ]
    secret_writes = Counter(
        entry["objectRef"].get("name")
        for entry in entries
        if entry["objectRef"].get("resource") == "secrets"
        and entry["verb"] in ("create", "update", "patch")
    )
    lists = Counter(
        entry["objectRef"].get("resource") for entry in entries if entry["verb"] == "list"
    )
    status_writes = sum(
        1
        for entry in entries
        if entry["objectRef"].get("subresource") == "status"
        and entry["verb"] in ("update", "patch")
    )
    print(
        f"slow API server (1-3 s a request, {delayed:.0f} s held in all): {samples} samples, "
        f"{len(expired)} expired; {sum(counted.values())} tokens issued; refresh lead at "
        f"issue min {min(leads):.1f} s, median {statistics.median(leads):.1f} s, in the "
        f"Secret min {min(visible):.1f} s, median {statistics.median(visible):.1f} s; "
        "Secret writes "
        f"{sum(secret_writes.values())}, status writes {status_writes}; lists {dict(lists)}"
    )
    assert leads and len(leads) >= TOKENS * 2, "too few refreshes to judge"
    assert not expired, f"Secrets held expired tokens: {expired[:10]}"
    assert secret_writes == Counter(counted), "Secret writes differ from tokens issued"
    # One list per kind at start, and one for each watch that had to start over.
    assert all(count <= 3 for count in lists.values()), lists
