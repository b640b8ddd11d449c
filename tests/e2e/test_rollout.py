"""Rollout restarts of the workloads that read a token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from egain_token_operator.controller.restarts import COALESCE_WINDOW
from testground.emulator import EgainEmulator
from tests.e2e.conftest import (
    ROLLOUT_MIN_INTERVAL,
    EgainClient,
    MakeClient,
    StartOperator,
    client_app_spec,
    parse_time,
)
from tests.e2e.support import Cluster, OperatorProcess, deployment, egain_token, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

# The minimum interval across an operator restart: longer than stopping one
# operator, starting another and getting a token takes, so that an operator
# that forgot the last restart would restart the workload well within it.
LONG_MIN_INTERVAL = 30


def restarting_web(
    namespace: str, name: str, emulator: EgainEmulator, client: EgainClient
) -> dict[str, Any]:
    """An EgainToken whose new tokens restart the Deployment `web`."""
    targets = [{"kind": "Deployment", "name": "web"}]
    spec = client_app_spec(emulator, client, secretName=name, rolloutRestartTargets=targets)
    return egain_token(namespace, name, spec)


def generation(cluster: Cluster, namespace: str) -> int:
    """The Deployment `web`'s generation: 1 when created, one more for each restart."""
    found = cluster.get("deployment", "web", namespace)
    assert found is not None
    value: int = found["metadata"]["generation"]
    return value


def restarted_since(cluster: Cluster, namespace: str, last: str, what: str, timeout: float) -> str:
    """Wait for a restart of `web` after the one at `last`; its `restarted-at`."""

    def restarted() -> str | None:
        now = cluster.restarted_at(namespace, "web")
        return now if now != last else None

    return wait_until(restarted, what, timeout)


def test_rollout_restart_is_coalesced(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    operator: OperatorProcess,
) -> None:
    cluster.apply(deployment(namespace, "web"))
    client = make_client()
    cluster.apply(
        restarting_web(namespace, "one", emulator, client),
        restarting_web(namespace, "two", emulator, client),
    )
    cluster.wait_ready(namespace, "one")
    cluster.wait_ready(namespace, "two")

    wait_until(lambda: cluster.restarted_at(namespace, "web"), "the restart annotation", 15)
    # A second restart for either token would come by the end of the minimum
    # interval since the first, at the latest.
    first = cluster.wait_past_min_interval(namespace, "web", ROLLOUT_MIN_INTERVAL)
    # Created at generation 1; two tokens written together restart it once.
    assert generation(cluster, namespace) == 2

    # A token written after the interval restarts it again, once: the operator
    # kept acting while nothing else was restarted.
    cluster.apply(restarting_web(namespace, "three", emulator, client))
    cluster.wait_ready(namespace, "three")
    restarted_since(cluster, namespace, first, "the restart for a later token", 15)
    assert generation(cluster, namespace) == 3
    said = operator.log().count(f"rollout restart: Deployment {namespace}/web restarted")
    assert said == 2, f"the operator restarted web {said} times"


def test_the_minimum_interval_holds_across_an_operator_restart(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    start_operator: StartOperator,
) -> None:
    interval = ("--rollout-restart-min-interval", str(LONG_MIN_INTERVAL))
    first_operator = start_operator(*interval)
    cluster.apply(deployment(namespace, "web"))
    client = make_client()
    cluster.apply(restarting_web(namespace, "one", emulator, client))
    cluster.wait_ready(namespace, "one")
    first = wait_until(lambda: cluster.restarted_at(namespace, "web"), "the first restart", 15)

    first_operator.stop()
    start_operator(*interval)
    cluster.apply(restarting_web(namespace, "two", emulator, client))
    cluster.wait_ready(namespace, "two")
    asked = datetime.now(UTC)  # the restart is asked for before Ready is written
    due = parse_time(first) + timedelta(seconds=LONG_MIN_INTERVAL)
    # Otherwise this test could not tell a remembered interval from a forgotten one.
    assert asked + COALESCE_WINDOW < due, (
        f"restarting the operator took too long: asked at {asked}, due at {due}"
    )
    second = restarted_since(
        cluster, namespace, first, "the restart held back", LONG_MIN_INTERVAL + 15
    )
    # Counted from the annotation the first operator wrote, not forgotten with it.
    assert parse_time(second) >= due, f"restarted at {second}, {first} plus the interval is {due}"
    assert generation(cluster, namespace) == 3
