"""Two operators on disjoint shards (`--selector`) share a namespace, each with its own Lease."""

from __future__ import annotations

import time
from typing import Any

import pytest

from testground.emulator import EgainEmulator
from tests.e2e.conftest import FORCEABLE, MakeClient, StartOperator, client_app_spec, successes
from tests.e2e.support import Cluster, egain_token, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def sharded_token(namespace: str, name: str, shard: str, spec: dict[str, Any]) -> dict[str, Any]:
    token = egain_token(namespace, name, spec)
    token["metadata"]["labels"] = {"egain.cloud/shard": shard}
    return token


def lease_holder(cluster: Cluster, namespace: str, name: str) -> str | None:
    lease = cluster.get("lease", name, namespace)
    return None if lease is None else lease["spec"].get("holderIdentity")


def test_operators_on_disjoint_shards_never_touch_each_others_tokens(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    start_operator: StartOperator,
) -> None:
    shard_a = start_operator(
        "--selector", "egain.cloud/shard=a", "--leader-election-lease", f"{namespace}/shard-a"
    )
    shard_b = start_operator(
        "--selector", "egain.cloud/shard=b", "--leader-election-lease", f"{namespace}/shard-b"
    )
    client_a = make_client(secret_name="client-a", lifetime=FORCEABLE)
    client_b = make_client(secret_name="client-b", lifetime=FORCEABLE)
    cluster.apply(
        sharded_token(namespace, "token-a", "a", client_app_spec(emulator, client_a)),
        sharded_token(namespace, "token-b", "b", client_app_spec(emulator, client_b)),
    )
    cluster.wait_ready(namespace, "token-a", "True", "TokenIssued")
    cluster.wait_ready(namespace, "token-b", "True", "TokenIssued")
    # Each shard elected its own leader with its own Lease.
    assert lease_holder(cluster, namespace, "shard-a") is not None
    assert lease_holder(cluster, namespace, "shard-b") is not None
    assert lease_holder(cluster, namespace, "shard-a") != lease_holder(
        cluster, namespace, "shard-b"
    )
    assert (successes(emulator, client_a), successes(emulator, client_b)) == (1, 1)
    # The API server filters by the selector: neither operator ever sees the other's token.
    assert f"{namespace}/token-a" in shard_a.log()
    assert f"{namespace}/token-b" not in shard_a.log()
    assert f"{namespace}/token-b" in shard_b.log()
    assert f"{namespace}/token-a" not in shard_b.log()

    # With shard b's operator gone, its token waits: shard a's operator does not serve it.
    shard_b.stop()
    for name in ("token-a", "token-b"):
        cluster.kubectl(
            "annotate", "egt", name, "-n", namespace, "egain.cloud/refresh-requested-at=1"
        )
    wait_until(lambda: successes(emulator, client_a) == 2, "shard a to answer its refresh request")
    time.sleep(3)
    assert successes(emulator, client_b) == 1, "an operator served a token outside its shard"
    assert f"{namespace}/token-b" not in shard_a.log()

    # Moving the token to shard a hands it over: read back from its Secret, it is
    # served there (the pending refresh request answered) by shard a's operator.
    cluster.kubectl(
        "label", "egt", "token-b", "-n", namespace, "egain.cloud/shard=a", "--overwrite"
    )
    wait_until(lambda: successes(emulator, client_b) == 2, "shard a to take over token-b")
    assert f"{namespace}/token-b" in shard_a.log()
