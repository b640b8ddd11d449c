"""A namespace whose token requests hang leaves request slots for another namespace.

One namespace has 40 EgainTokens whose requests the emulator never answers
(its client hangs); the operator's HTTP timeout is long, so each holds its
slot for it. Promised (docs/api.md, "Shared fairly among namespaces"): that
namespace holds at most its share of `--max-concurrent-requests`, and another
namespace's first token is requested at once, while the 40 still hang. The
neighbour's time to Ready is measured and printed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from egain_token_operator.decisions.slots import share_of
from testground.emulator import EgainEmulator, FaultKind
from testground.leaks import assert_no_secret_material, cluster_record
from tests.e2e.conftest import MakeClient, StartOperator, client_app_spec
from tests.e2e.support import Cluster, credentials_secret, egain_token, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

HANGING = 40
MAX_CONCURRENT_REQUESTS = 16  # the default
# Long, so that the hanging requests hold their slots for the whole test: with
# one plain limit, the neighbour would wait two timeouts (the first 16 hanging
# requests, then the next 16, all queued before it).
HTTP_TIMEOUT = 20.0


@pytest.fixture
def neighbour(cluster: Cluster, emulator: EgainEmulator) -> Iterator[str]:
    """A second namespace, searched for leaks and deleted after the test."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    assert_no_secret_material([cluster_record(cluster.control_plane, [name])], [emulator])
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def test_a_namespace_whose_requests_hang_leaves_slots_for_another(
    cluster: Cluster,
    namespace: str,
    neighbour: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    start_operator: StartOperator,
) -> None:
    start_operator("--namespace", neighbour, "--http-timeout", str(HTTP_TIMEOUT))
    hanging = make_client(secret_name="hanging-client")
    emulator.set_fault(FaultKind.HANG, count=None, client_id=hanging.client_id)
    # Each its own request (no sharing): 40 requests that hang.
    spec = client_app_spec(emulator, hanging, tokenSharing="Disabled")
    cluster.apply(*(egain_token(namespace, f"hanging-{i}", spec) for i in range(HANGING)))
    share = share_of(MAX_CONCURRENT_REQUESTS)
    wait_until(
        lambda: len(emulator.requests(hanging.client_id)) >= share,
        f"{share} hanging requests at the emulator",
    )

    other = make_client(secret_name="neighbour-client", write_secret=False)
    cluster.apply(
        credentials_secret(neighbour, other.secret_name, other.client_id, other.used_secrets[0])
    )
    applied = time.monotonic()
    cluster.apply(egain_token(neighbour, "first", client_app_spec(emulator, other)))
    cluster.wait_ready(neighbour, "first", "True", "TokenIssued", timeout=3 * HTTP_TIMEOUT)
    ready = time.monotonic()

    hung = emulator.requests(hanging.client_id)
    [issued] = [r for r in emulator.requests(other.client_id) if r.token_issued]
    print(
        f"neighbour: token requested {issued.monotonic - applied:.2f} s and Ready "
        f"{ready - applied:.2f} s after its EgainToken was applied, with {len(hung)} requests "
        f"of the {HANGING} hanging EgainTokens at the emulator (their share: {share} of "
        f"{MAX_CONCURRENT_REQUESTS}), the first for {issued.monotonic - hung[0].monotonic:.1f} s"
    )
    # The hanging namespace held its share, no more, and none of its requests had
    # timed out (none was sent again): the neighbour was served while they hung.
    assert len(hung) == share, [r.wall_time for r in hung]
    assert issued.monotonic < hung[0].monotonic + HTTP_TIMEOUT
    emulator.clear_faults()
