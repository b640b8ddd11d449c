"""Secrets that a team labels as the operator's cost the operator their metadata, not their data.

The `managed-by` label is anyone's to write. A team puts it (and the token
label) on dozens of 700 KiB Secrets of its own, in a namespace the operator
serves: the operator's resident memory grows by no more than their names and
versions, and a new EgainToken in another namespace is still served at once.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Iterator

import pytest

from testground.emulator import EgainEmulator
from tests.e2e.conftest import MakeClient, StartOperator, client_app_spec
from tests.e2e.support import Cluster, credentials_secret, egain_token, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

FORGED = 40
FORGED_BYTES = 700 * 1024
# What the operator may grow by: each forged Secret's name, namespace and
# resourceVersion in the watch's index (well under 1 KiB each), plus room for
# the allocator, which need not give back at once what it lent for the 40
# bodies passing through (about 1 MiB of JSON each). Holding their data, as a
# cache of every labelled Secret in full does, is 40 x 933 KiB of base64 text:
# over 36 MiB.
RSS_GROWTH_BOUND_MIB = FORGED * 1 / 1024 + 12


@pytest.fixture
def tenant(cluster: Cluster, scanned_namespaces: list[str]) -> Iterator[str]:
    """A second namespace the operator serves: the forging team's."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", name)
    scanned_namespaces.append(name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def forged_secret(namespace: str, name: str) -> dict[str, object]:
    """A Secret of `FORGED_BYTES` carrying the operator's labels, written by a team."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/managed-by": "egain-token-operator",
                "egain.cloud/token": "sentinel",
            },
        },
        "type": "Opaque",
        "data": {"blob": base64.b64encode(os.urandom(FORGED_BYTES)).decode()},
    }


def test_forged_managed_secrets_cost_the_operator_their_metadata_only(
    tenant: str,
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    start_operator: StartOperator,
) -> None:
    operator = start_operator("--namespace", tenant)
    client = make_client()
    cluster.apply(
        credentials_secret(tenant, client.secret_name, client.client_id, client.used_secrets[0])
    )
    # The team's own EgainToken: its Secret is what the operator needs there.
    cluster.apply(egain_token(tenant, "sentinel", client_app_spec(emulator, client)))
    cluster.wait_ready(tenant, "sentinel")
    issued = cluster.secret_data(tenant, "sentinel")
    before = operator.rss_mib()

    manifests = [forged_secret(tenant, f"forged-{i}") for i in range(FORGED)]
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests})
    cluster.kubectl("create", "-f", "-", input=body)
    # One watch brings a namespace's labelled Secrets, in order: once the
    # operator restores the team's own Secret, edited after the forged ones
    # were created, it has taken every one of them.
    patch = json.dumps({"data": {"access_token": base64.b64encode(b"edited").decode()}})
    cluster.kubectl("patch", "secret", "sentinel", "-n", tenant, "--type=merge", "-p", patch)
    wait_until(
        lambda: cluster.secret_data(tenant, "sentinel") == issued,
        "the team's own Secret restored after the forged ones",
        60,
    )
    after = operator.rss_mib()

    neighbour = make_client(secret_name="neighbour-client")
    started = time.monotonic()
    cluster.apply(egain_token(namespace, "neighbour", client_app_spec(emulator, neighbour)))
    cluster.wait_ready(namespace, "neighbour", timeout=10)
    to_ready = time.monotonic() - started

    growth = after - before
    print(
        f"\nforged Secrets: {FORGED} x {FORGED_BYTES // 1024} KiB; operator RSS "
        f"{before:.1f} -> {after:.1f} MiB ({growth:+.1f} MiB, "
        f"{growth * 1024 / FORGED:+.0f} KiB per forged Secret; bound "
        f"{RSS_GROWTH_BOUND_MIB:.1f} MiB); another namespace's token Ready in {to_ready:.1f}s"
    )
    assert growth <= RSS_GROWTH_BOUND_MIB, (
        f"the operator grew by {growth:.1f} MiB for {FORGED} Secrets it does not serve"
    )
