"""EgainTokens with identical requests share one upstream token, across namespaces.

Ten inline EgainTokens in five namespaces (the same credentials in each, the
same URL, the scopes in either order) cost one token request per refresh;
one that opts out gets its own; rotating the credentials everywhere costs one
request; a restart costs none while the tokens are valid. The requests per
refresh are measured at the emulator and printed (counts only).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest

from testground.emulator import EgainEmulator
from testground.leaks import assert_no_secret_material, cluster_record
from tests.e2e.conftest import EgainClient, MakeClient, StartOperator, client_app_spec
from tests.e2e.support import Cluster, credentials_secret, egain_token, wait_until

# Long: several refresh rounds, then a rotation, an opt-out and a restart.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]

SCOPES = ("knowledge.portalmgr.manage", "core.aiservices.read")
PER_NAMESPACE = 2
# Requests at the emulator closer together than this belong to one refresh:
# a refresh round of short tokens comes every few seconds, and the requests of
# one round (were they not shared) would come within milliseconds.
ROUND_GAP = 1.0
# Short enough for several refreshes within the test, long enough that the
# Secrets can be read between two of them.
SHORT_LIFETIME = 8

Key = tuple[str, str]


@pytest.fixture
def namespaces(cluster: Cluster, namespace: str, emulator: EgainEmulator) -> Iterator[list[str]]:
    """The test's namespace and four more, searched for leaks and deleted after."""
    extra = [f"t-{uuid.uuid4().hex[:10]}" for _ in range(4)]
    for name in extra:
        cluster.kubectl("create", "namespace", name)
    yield [namespace, *extra]
    assert_no_secret_material([cluster_record(cluster.control_plane, extra)], [emulator])
    for name in extra:
        cluster.kubectl("delete", "namespace", name, "--wait=false")


def served(namespaces: list[str]) -> list[str]:
    """Operator arguments serving `namespaces` (the fixture adds the first)."""
    return [arg for name in namespaces[1:] for arg in ("--namespace", name)]


def held_tokens(cluster: Cluster, emulator: EgainEmulator, namespaces: list[str]) -> dict[Key, str]:
    """The emulator's name (a fingerprint, never the token) of the token each
    managed Secret in `namespaces` holds, read in one request."""
    listed = cluster.kubectl(
        "get", "secrets", "-A", "-l", "app.kubernetes.io/managed-by=egain-token-operator",
        "-o", "json",
    )  # fmt: skip
    held = {}
    for secret in json.loads(listed.stdout)["items"]:
        metadata = secret["metadata"]
        if metadata["namespace"] in namespaces:
            token = base64.b64decode(secret["data"]["access_token"]).decode()
            held[(metadata["namespace"], metadata["name"])] = emulator.token_fingerprint(token)
    return held


def requests_per_refresh(emulator: EgainEmulator, client: EgainClient, since: int = 0) -> list[int]:
    """The token requests of `client` (from the `since`-th), grouped into refresh
    rounds by the time between them: how many requests each round cost."""
    times = [record.monotonic for record in emulator.requests(client.client_id)[since:]]
    rounds: list[int] = []
    for previous, current in zip([None, *times], times, strict=False):
        if previous is None or current - previous > ROUND_GAP:
            rounds.append(0)
        rounds[-1] += 1
    return rounds


def latest_issued(emulator: EgainEmulator, client: EgainClient) -> str:
    issued = emulator.issued_tokens(client.client_id)
    assert issued, "no token was issued"
    return issued[-1].fingerprint


def all_hold(held: dict[Key, str], keys: list[Key], fingerprint: str) -> bool:
    return all(held.get(key) == fingerprint for key in keys)


def test_identical_requests_share_one_upstream_token(
    cluster: Cluster,
    namespaces: list[str],
    emulator: EgainEmulator,
    make_client: MakeClient,
    start_operator: StartOperator,
) -> None:
    client = make_client(scopes=SCOPES, lifetime=SHORT_LIFETIME)
    for name in namespaces[1:]:
        cluster.apply(
            credentials_secret(name, client.secret_name, client.client_id, client.used_secrets[0])
        )
    operator = start_operator(*served(namespaces))
    sharers: list[Key] = [
        (name, f"shared-{index}") for name in namespaces for index in range(PER_NAMESPACE)
    ]
    cluster.apply(
        *(
            egain_token(
                name,
                token,
                client_app_spec(
                    emulator, client, scopes=list(SCOPES if i % 2 else reversed(SCOPES))
                ),
            )
            for i, (name, token) in enumerate(sharers)
        )
    )
    for name, token in sharers:
        cluster.wait_ready(name, token)

    # Short tokens: wait for three refreshes, each a new token in every Secret.
    seen: set[str] = set()

    def refreshed_thrice() -> bool:
        held = held_tokens(cluster, emulator, namespaces)
        if len({held.get(key) for key in sharers}) == 1:
            seen.add(held[sharers[0]])
        return len(seen) >= 4

    wait_until(refreshed_thrice, "three refreshes of the shared token", timeout=90)
    # Then a long lifetime, so that what follows is not a refresh; the next
    # refresh brings such a token to every Secret.
    emulator.update_client(client.client_id, lifetime=3600)

    def long_lived_everywhere() -> bool:
        latest = emulator.issued_tokens(client.client_id)[-1]
        held = held_tokens(cluster, emulator, namespaces)
        long_lived = latest.expires_at - latest.issued_at > timedelta(minutes=30)
        return long_lived and all_hold(held, sharers, latest.fingerprint)

    wait_until(long_lived_everywhere, "a long-lived shared token in every Secret", timeout=30)
    rounds = requests_per_refresh(emulator, client)
    print(f"\nrequests per refresh, {len(sharers)} sharers: {rounds}")
    assert len(rounds) >= 5, rounds
    assert rounds == [1] * len(rounds), f"identical requests were not shared: {rounds}"
    for name, token in sharers:
        assert (cluster.ready(name, token) or {}).get("status") == "True"
    shared = sum(
        float(line.rsplit(" ", 1)[1])
        for line in operator.metrics().splitlines()
        if line.startswith("egain_token_shared_refresh_total{")
    )
    # Every new token reached all but one sharer without a request of its own.
    assert shared == (len(sharers) - 1) * len(rounds), shared

    # Rotated credentials, in every namespace: one request for all.
    before = len(emulator.requests(client.client_id))
    previous = latest_issued(emulator, client)
    new_secret = emulator.rotate_secret(client.client_id)
    client.used_secrets.append(new_secret)
    cluster.apply(
        *(
            credentials_secret(name, client.secret_name, client.client_id, new_secret)
            for name in namespaces
        )
    )
    wait_until(
        lambda: (
            latest_issued(emulator, client) != previous
            and all_hold(
                held_tokens(cluster, emulator, namespaces), sharers, latest_issued(emulator, client)
            )
        ),
        "a token from the new credentials in every Secret",
        timeout=30,
    )
    rotation = requests_per_refresh(emulator, client, since=before)
    print(f"requests for the rotation: {rotation}")
    assert rotation == [1], rotation
    assert all(r.status == 200 for r in emulator.requests(client.client_id)[before:])

    # One that opts out gets a token of its own, with a request of its own.
    before = len(emulator.requests(client.client_id))
    shared_token = latest_issued(emulator, client)
    alone: Key = (namespaces[0], "alone")
    cluster.apply(
        egain_token(
            *alone, client_app_spec(emulator, client, scopes=list(SCOPES), tokenSharing="Disabled")
        )
    )
    cluster.wait_ready(*alone)
    held = held_tokens(cluster, emulator, namespaces)
    assert held[alone] != shared_token, "an EgainToken that opted out got the shared token"
    assert all_hold(held, sharers, shared_token)
    assert len(emulator.requests(client.client_id)) == before + 1

    # A restart requests nothing while the tokens are valid.
    before = len(emulator.requests(client.client_id))
    held_before = held_tokens(cluster, emulator, namespaces)
    operator.stop()
    restarted = start_operator(*served(namespaces))

    def looked_at_all() -> bool:
        text = restarted.metrics()
        return all(
            f'egain_token_ready_status{{condition="True",name="{token}",namespace="{name}"}} 1.0'
            in text
            for name, token in [*sharers, alone]
        )

    wait_until(looked_at_all, "the restarted operator to look at every EgainToken", timeout=60)
    after = len(emulator.requests(client.client_id))
    print(f"requests after the restart: {after - before}")
    assert after == before, "a restarted operator requested tokens its Secrets held"
    assert held_tokens(cluster, emulator, namespaces) == held_before
