"""A team hammering a shared client cannot drain it nor churn its neighbour.

Team A (a namespace of its own) asks for a refresh a second short of its
token's hour-long lifetime and forces refreshes several times in a row;
team B (the test's namespace) uses the same ClusterEgainClient, which allows
one request a minute and requires sharing, for the same scope, and its
Deployment is a restart target. The requests at the emulator keep the
request floor and the budget, A's deferred forced refresh is served (with
its Event), and B's Deployment is not rolled: its Secret keeps the token it
had, still valid. The request counts are printed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from egain_token_operator.controller.restarts import COALESCE_WINDOW
from egain_token_operator.decisions.schedule import request_floor
from testground.emulator import EgainEmulator
from tests.e2e.conftest import MakeClient, parse_time
from tests.e2e.support import Cluster, deployment, egain_token, wait_until
from tests.e2e.test_clients import (  # noqa: F401 (fixtures)
    cluster_client,
    cluster_clients,
    operator,
    resource_namespace,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300), pytest.mark.usefixtures("operator")]

SCOPE = "knowledge.portalmgr.manage"
LIFETIME = timedelta(hours=1)
# The client's budget: one request a minute, so that it binds within the test.
BUDGET = 1
FORCED = "egain.cloud/refresh-requested-at"
# Requests are recorded when answered, not when sent: the first, over a new
# connection, may take longer to answer than the next.
LATENCY = 1.0


@pytest.fixture
def team_a(cluster: Cluster, scanned_namespaces: list[str]) -> Iterator[str]:
    """Team A's namespace, searched for leaks after the test and deleted."""
    name = f"{scanned_namespaces[0]}-a"
    cluster.kubectl("create", "namespace", name)
    scanned_namespaces.append(name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def using(namespace: str, name: str, client: str, **spec: object) -> dict[str, object]:
    ref = {"kind": "ClusterEgainClient", "name": client}
    return egain_token(namespace, name, {"clientRef": ref, "scopes": [SCOPE], **spec})


def test_a_hammering_team_keeps_the_floor_and_the_budget_and_does_not_churn_its_neighbour(
    cluster: Cluster,
    namespace: str,
    team_a: str,
    resource_namespace: str,  # noqa: F811
    emulator: EgainEmulator,
    make_client: MakeClient,
    cluster_clients: list[str],  # noqa: F811
) -> None:
    name = f"{namespace}-shared"
    client = cluster_client(
        cluster,
        emulator,
        make_client,
        resource_namespace,
        cluster_clients,
        name,
        allowedNamespaces={"names": [namespace, team_a]},
        requestsPerMinute=BUDGET,
        tokenSharing="Required",
    )
    # Team B: a Deployment restarted by its token; its first token restarts it once.
    targets = [{"kind": "Deployment", "name": "web"}]
    cluster.apply(
        deployment(namespace, "web"), using(namespace, "b", name, rolloutRestartTargets=targets)
    )
    cluster.wait_ready(namespace, "b")
    restarted = wait_until(lambda: cluster.restarted_at(namespace, "web"), "B's first restart", 15)
    held_b = cluster.secret_data(namespace, "b")
    assert held_b is not None

    # Team A: a second short of the lifetime, then forced refreshes in a row.
    cluster.apply(using(team_a, "a", name, refreshBefore="59m59s"))
    ready_a = cluster.wait_ready(team_a, "a", timeout=90)
    message = ready_a["status"]["conditions"][0]["message"]
    assert "refreshBefore 3599s is taken as 3569s" in message, message
    values = [f"forced-{i}" for i in range(5)]
    for value in values:
        cluster.kubectl("annotate", "egt", "a", "-n", team_a, f"{FORCED}={value}", "--overwrite")

    def deferred() -> list[dict[str, object]] | None:
        said = [e for e in cluster.events(team_a) if e["reason"] == "RefreshDeferred"]
        return said or None

    said = wait_until(deferred, "A's RefreshDeferred Event", 15)
    assert all(e["type"] == "Normal" for e in said)

    def served() -> dict[str, object] | None:
        secret = cluster.get("secret", "a", team_a) or {}
        annotations = (secret.get("metadata") or {}).get("annotations") or {}
        return secret if annotations.get(FORCED) == values[-1] else None

    # Deferred past the floor, then held by the budget: served within two minutes.
    wait_until(served, "A's last forced refresh served", 150)
    issued_a = parse_time(cluster.token(team_a, "a")["status"]["issuedAt"])
    # A restart that B's taking the token over would ask for is written by now.
    wait_until(
        lambda: datetime.now(UTC) >= issued_a + COALESCE_WINDOW + timedelta(seconds=2),
        "a restart for A's new token to have been written",
        15,
    )

    records = emulator.requests(client.client_id)
    times = [record.monotonic for record in records]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    floor = request_floor(LIFETIME).total_seconds()
    print(
        f"hammering: {len(records)} token requests with the shared client over "
        f"{times[-1] - times[0]:.1f} s, gaps {[round(g, 1) for g in gaps]} s "
        f"(floor {floor:g} s per EgainToken, budget {BUDGET} a minute); "
        f"{len(said)} RefreshDeferred Events for {len(values)} forced values"
    )
    assert all(record.token_issued for record in records)
    # B's first token, then A's forced and clamped refresh together, once the
    # budget had room: not one per forced value, nor one a second.
    assert len(records) == 2, len(records)
    assert min(gaps) >= max(floor, 60 / BUDGET) - LATENCY
    # B was neither due nor forced: not rolled, its Secret untouched and valid.
    assert cluster.restarted_at(namespace, "web") == restarted
    assert cluster.secret_data(namespace, "b") == held_b
    info = emulator.token_info(held_b["access_token"].reveal())
    assert info is not None and not info.expired
