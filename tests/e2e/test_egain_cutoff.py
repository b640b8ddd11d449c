"""The operator cut off from eGain, not from the API server, for longer than a token lives.

Every token request fails from just after a token is issued until well past
its expiry: either it hangs until `--http-timeout` (packets dropped on the
way) or the connection is reset (refused). The operator runs with the
default retry settings and HTTP timeout. Promised (docs/api.md, *Status* and
*When a failed request is retried*): Ready stays True until the token
expires and turns False, with `TokenEndpointUnavailable`, when it does, even
with a request in flight; the retries stay within the documented backoff;
and a token is issued within 20 s plus one request of eGain answering again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from testground.emulator import EgainEmulator, FaultKind
from tests.e2e.conftest import MakeClient, StartOperator, client_app_spec, parse_time
from tests.e2e.support import Backoff, Cluster, egain_token, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

LIFETIME = 45
HTTP_TIMEOUT = 10.0  # the default
# Failed requests seen after expiry before eGain heals: at 10-20 s apart, about a minute.
RETRIES_AFTER_EXPIRY = 4


def seconds(instant: datetime, since: datetime) -> float:
    return (instant - since).total_seconds()


@pytest.mark.parametrize("fault", [FaultKind.HANG, FaultKind.RESET])
def test_cut_off_from_egain_past_expiry_turns_not_ready_at_expiry_and_recovers(
    cluster: Cluster,
    namespace: str,
    emulator: EgainEmulator,
    make_client: MakeClient,
    start_operator: StartOperator,
    fault: FaultKind,
) -> None:
    backoff = Backoff()
    start_operator(
        "--retry-initial-delay", str(backoff.initial),
        "--retry-max-delay", str(backoff.maximum),
        "--http-timeout", str(HTTP_TIMEOUT),
        "--propagation-allowance", "0",
    )  # fmt: skip
    client = make_client(lifetime=LIFETIME)
    cluster.apply(egain_token(namespace, "cutoff", client_app_spec(emulator, client)))
    token = cluster.wait_ready(namespace, "cutoff", "True", "TokenIssued")
    expires = parse_time(token["status"]["expiresAt"])
    refresh = parse_time(token["status"]["nextRefreshAt"])
    issued = len(emulator.requests(client.client_id))
    emulator.set_fault(fault, count=None, client_id=client.client_id)
    cut = datetime.now(UTC)

    # Ready until the token expires, then False with the failure's reason.
    early: list[str] = []

    def not_ready() -> dict[str, str] | None:
        ready = cluster.ready(namespace, "cutoff") or {}
        if ready.get("status") == "True":
            return None
        if datetime.now(UTC) < expires:
            early.append(f"{ready.get('status')} {ready.get('reason')}")
        return ready

    ready = wait_until(not_ready, "Ready to turn False", LIFETIME + 30)
    seen_false = datetime.now(UTC)
    assert not early, f"Ready turned False before the token expired: {early}"
    assert ready["status"] == "False" and ready["reason"] == "TokenEndpointUnavailable", ready
    turned = parse_time(ready["lastTransitionTime"])
    # Whole seconds, as both are written: at expiry, not a request's timeout later.
    assert expires <= turned <= expires + timedelta(seconds=2), (turned, expires)
    failed_before = [
        r for r in emulator.requests(client.client_id)[issued:] if r.wall_time < expires
    ]
    assert failed_before, "no refresh was tried before the token expired"

    def failed_after_expiry() -> int:
        records = emulator.requests(client.client_id)[issued:]
        return sum(r.wall_time >= expires for r in records)

    wait_until(
        lambda: failed_after_expiry() >= RETRIES_AFTER_EXPIRY,
        f"{RETRIES_AFTER_EXPIRY} retries after expiry",
        RETRIES_AFTER_EXPIRY * (backoff.expired_cap + HTTP_TIMEOUT) + 20,
    )
    emulator.clear_faults()
    healed = datetime.now(UTC)
    cluster.wait_ready(
        namespace, "cutoff", "True", "TokenIssued", timeout=backoff.expired_cap + HTTP_TIMEOUT + 30
    )
    recovered = datetime.now(UTC)

    records = emulator.requests(client.client_id)[issued:]
    during = [r for r in records if r.wall_time < healed]
    assert all(not r.token_issued for r in during)
    assert len([r for r in records if r.token_issued]) == 1
    before = [r for r in during if r.wall_time < expires]
    after = [r for r in during if r.wall_time >= expires]
    # The documented schedule from the planned refresh (written in whole
    # seconds: up to 1 s early, which only allows more) to the healing.
    most_before, most_after = backoff.most_requests(
        seconds(refresh, cut) - 1, seconds(expires, cut), seconds(healed, cut) + 1
    )
    span = seconds(after[-1].wall_time, after[0].wall_time)
    per_minute = (len(after) - 1) / span * 60 if span > 0 else float("nan")
    print(
        f"{fault}: Ready False {seconds(turned, expires):+.0f} s after expiresAt "
        f"(seen {seconds(seen_false, expires):+.1f} s); requests while valid {len(before)} "
        f"(the schedule allows {most_before}), after expiry {len(after)} in "
        f"{seconds(healed, expires):.0f} s, {per_minute:.1f} a minute (allowed {most_after}, "
        f"at most {60 / backoff.shortest_wait(99, 0):.0f} a minute); token issued "
        f"{seconds(recovered, healed):.1f} s after eGain healed"
    )
    assert len(during) <= most_before + most_after, [r.wall_time for r in during]
    # One sent just before expiry may reach eGain just after it.
    assert len(after) <= most_after + 1, [r.wall_time for r in after]
    # Within 20 s plus one request of healing (docs/api.md), read back through kubectl.
    assert seconds(recovered, healed) <= backoff.expired_cap + HTTP_TIMEOUT + 5
