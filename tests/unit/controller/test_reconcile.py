"""One look of the controller, with in-memory Kubernetes and eGain and an injected clock."""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime, timedelta

from egain_token_operator.controller.observe import TokenWorker
from egain_token_operator.controller.workers import WorkerRegistry
from egain_token_operator.decisions.hosts import HostAllowList
from egain_token_operator.decisions.reasons import (
    InvalidCredentialsError,
    TokenEndpointUnavailableError,
)
from egain_token_operator.decisions.schedule import RetryPolicy
from egain_token_operator.decisions.timestamps import rfc3339
from tests.unit.clock import Clock
from tests.unit.controller.support import (
    BODY,
    START,
    FakeEgain,
    b64,
    controller,
    look,
    ready,
    recorder,
    registry,
    setup,
)
from tests.unit.fakes import FakeKube


def test_issues_writes_and_sleeps_until_the_refresh_time() -> None:
    kube, egain, clock = setup()
    made, events = controller(kube, egain, clock)
    worker = TokenWorker(("ns", "portal"), BODY)
    wake_at = look(made, worker)
    assert egain.requests == 1
    secret = kube.secrets[("ns", "portal")]
    assert base64.b64decode(secret["data"]["access_token"]).decode() == "token-1"
    assert ready(kube) == ("True", "TokenIssued")
    assert events == ["Normal TokenIssued"]
    assert wake_at is not None
    assert START + timedelta(minutes=36) <= wake_at <= START + timedelta(minutes=40)

    clock.now = wake_at - timedelta(seconds=1)
    assert look(made, worker) == wake_at
    assert egain.requests == 1, "a look before the refresh time requested a token"
    statuses = len(kube.statuses)
    clock.now = wake_at
    look(made, worker)
    assert egain.requests == 2
    assert len(kube.statuses) == statuses + 1


def test_a_looks_events_are_posted_once_its_secret_and_status_are_written() -> None:
    kube, egain, clock = setup()
    seen: list[tuple[str, bool, object]] = []

    def post(body: object, kind: str, reason: str, message: str) -> None:
        seen.append((reason, ("ns", "portal") in kube.secrets, kube.statuses and ready(kube)))

    made = registry(kube, egain, clock, post)
    look(made, TokenWorker(("ns", "portal"), BODY))
    assert seen == [("TokenIssued", True, ("True", "TokenIssued"))]


def test_failed_refresh_keeps_ready_until_expiry() -> None:
    kube, egain, clock = setup()
    made, events = controller(kube, egain, clock)
    worker = TokenWorker(("ns", "portal"), BODY)
    refresh = look(made, worker)
    assert refresh is not None
    egain.failure = TokenEndpointUnavailableError("HTTP 503 from ai.egain.cloud")
    clock.now = refresh
    retry = look(made, worker)
    assert ready(kube) == ("True", "TokenIssued")
    assert kube.statuses[-1]["lastFailure"]["reason"] == "TokenEndpointUnavailable"
    assert kube.statuses[-1]["consecutiveFailures"] == 1
    assert events[-1] == "Warning TokenEndpointUnavailable"
    assert retry is not None
    assert retry - clock.now <= timedelta(seconds=1)
    clock.now = START + timedelta(hours=1)
    look(made, worker)
    assert ready(kube) == ("False", "TokenEndpointUnavailable")
    egain.failure = None
    clock.now += timedelta(minutes=10)
    look(made, worker)
    assert ready(kube) == ("True", "TokenIssued")
    assert kube.statuses[-1]["lastFailure"] is None


def test_a_refresh_in_flight_at_expiry_turns_ready_false_at_expiry() -> None:
    kube, egain, clock = setup()
    made, _ = controller(kube, egain, clock)
    worker = TokenWorker(("ns", "portal"), BODY)
    refresh = look(made, worker)
    assert refresh is not None
    expires = START + timedelta(hours=1)
    egain.failure = TokenEndpointUnavailableError("HTTP 503 from ai.egain.cloud")
    clock.now = refresh
    retry = look(made, worker)  # failed while the token is valid: still Ready
    assert retry is not None and ready(kube) == ("True", "TokenIssued")

    # eGain cut off: the next request hangs until past the token's expiry.
    released = asyncio.Event()
    expired_at = expires + timedelta(seconds=1)

    async def cut_off() -> None:
        clock.now = expired_at
        await released.wait()

    egain.in_flight = cut_off
    egain.failure = TokenEndpointUnavailableError("timed out after 10s")
    clock.now = retry

    async def scenario() -> datetime | None:
        looking = asyncio.create_task(made.reconciler.reconcile(worker))
        for _ in range(50):
            await asyncio.sleep(0)
            if ready(kube)[0] == "False":
                break
        # Reported at expiry, while the request is still in flight.
        assert not looking.done()
        assert ready(kube) == ("False", "TokenEndpointUnavailable")
        condition = kube.statuses[-1]["conditions"][0]
        assert condition["lastTransitionTime"] == rfc3339(expired_at)
        assert condition["message"] == "HTTP 503 from ai.egain.cloud"
        assert kube.statuses[-1]["consecutiveFailures"] == 1
        released.set()
        return await looking

    wake_at = asyncio.run(scenario())
    # The request's end settles it: Ready stays False (not True again), the
    # transition time kept, the failure counted.
    assert ready(kube) == ("False", "TokenEndpointUnavailable")
    held = kube.held[("ns", "portal")]
    assert held["conditions"][0]["lastTransitionTime"] == rfc3339(expired_at)
    assert held["consecutiveFailures"] == 2
    assert held["conditions"][0]["message"] == "timed out after 10s"
    assert wake_at is not None
    assert timedelta(seconds=0.5) <= wake_at - expired_at <= timedelta(seconds=20)
    assert egain.requests == 3


def test_a_refresh_that_ends_before_expiry_reports_nothing_meanwhile() -> None:
    kube, egain, clock = setup()
    made, _ = controller(kube, egain, clock)
    worker = TokenWorker(("ns", "portal"), BODY)
    refresh = look(made, worker)
    assert refresh is not None
    statuses = len(kube.statuses)

    async def slow() -> None:
        clock.now += timedelta(seconds=5)  # well before expiry
        await asyncio.sleep(0)

    egain.in_flight = slow
    clock.now = refresh
    look(made, worker)
    assert egain.requests == 2
    assert len(kube.statuses) == statuses + 1, "a status was patched while the request was out"
    assert ready(kube) == ("True", "TokenIssued")


def test_a_restarted_controller_keeps_the_stored_token() -> None:
    kube, egain, clock = setup()
    first, _ = controller(kube, egain, clock)
    refresh = look(first, TokenWorker(("ns", "portal"), BODY))
    clock.now += timedelta(minutes=5)
    second, _ = controller(kube, egain, clock)
    assert look(second, TokenWorker(("ns", "portal"), BODY)) == refresh
    assert egain.requests == 1


def restarted(kube: FakeKube, egain: FakeEgain, clock: Clock) -> tuple[WorkerRegistry, TokenWorker]:
    """A new controller, and a worker seeing the EgainToken with the status the API holds."""
    made, _ = controller(kube, egain, clock)
    return made, TokenWorker(("ns", "portal"), {**BODY, "status": kube.held[("ns", "portal")]})


def test_a_restarted_controller_keeps_the_backoff_until_the_credentials_change() -> None:
    kube, egain, clock = setup()
    kube.secrets[("ns", "creds")]["metadata"] = {"resourceVersion": "1"}
    egain.failure = InvalidCredentialsError("invalid_client")
    first, _ = controller(kube, egain, clock)
    retry = look(first, TokenWorker(("ns", "portal"), BODY))
    assert ready(kube) == ("False", "InvalidCredentials")
    assert retry is not None
    assert retry - clock.now >= timedelta(minutes=5)

    clock.now += timedelta(minutes=1)
    second, worker = restarted(kube, egain, clock)
    assert look(second, worker) == retry
    assert egain.requests == 1, "a restart retried a permanent failure before its backoff"

    kube.secrets[("ns", "creds")]["metadata"]["resourceVersion"] = "2"  # written while down
    egain.failure = None
    third, worker = restarted(kube, egain, clock)
    look(third, worker)
    assert egain.requests == 2, "credentials changed while down were not tried at once"
    assert ready(kube) == ("True", "TokenIssued")


def test_a_restarted_controller_writes_no_status_that_is_current() -> None:
    kube, egain, clock = setup()
    first, _ = controller(kube, egain, clock)
    refresh = look(first, TokenWorker(("ns", "portal"), BODY))
    written = len(kube.statuses)
    clock.now += timedelta(minutes=5)  # the restart
    second, worker = restarted(kube, egain, clock)
    assert look(second, worker) == refresh
    assert (egain.requests, len(kube.statuses)) == (1, written), "a current status was patched"

    # Judged against what the API server holds, not what this process sent:
    # a status changed by someone else meanwhile is written again.
    kube.held[("ns", "portal")]["secretName"] = "elsewhere"
    worker.body = {**BODY, "status": kube.held[("ns", "portal")]}
    look(second, worker)
    assert len(kube.statuses) == written + 1
    assert kube.held[("ns", "portal")]["secretName"] == "portal"
    look(second, worker)  # the answer of that patch is what the next look compares with
    assert len(kube.statuses) == written + 1


def test_a_restarted_controller_writes_the_status_of_a_new_generation() -> None:
    kube, egain, clock = setup()
    first, _ = controller(kube, egain, clock)
    look(first, TokenWorker(("ns", "portal"), BODY))
    written = len(kube.statuses)
    second, worker = restarted(kube, egain, clock)
    metadata = {"namespace": "ns", "name": "portal", "uid": "uid-1", "generation": 2}
    worker.body = {**worker.body, "metadata": metadata}
    look(second, worker)
    assert len(kube.statuses) == written + 1
    assert kube.held[("ns", "portal")]["observedGeneration"] == 2


def test_rotated_credentials_get_a_new_token_at_once() -> None:
    kube, egain, clock = setup()
    made, _ = controller(kube, egain, clock)
    worker = TokenWorker(("ns", "portal"), BODY)
    look(made, worker)
    # Any edit gives the Secret a new resourceVersion: what the fingerprint names.
    kube.secrets[("ns", "creds")] = {
        "metadata": {"resourceVersion": "2"},
        "data": {"client_id": b64("id"), "client_secret": b64("new")},
    }
    look(made, worker)
    assert egain.requests == 2


def test_a_secret_written_by_someone_else_during_the_look_is_not_overwritten() -> None:
    # Created while the token request was out: the look's create is refused
    # (AlreadyExists), the Secret left as it is, and the worker woken to look again.
    kube, egain, clock = setup()
    made, _ = controller(kube, egain, clock)
    theirs = {"metadata": {"name": "portal"}, "data": {"owner": b64("someone else")}}

    async def meanwhile() -> None:
        await kube.create_secret("ns", theirs)

    egain.in_flight = meanwhile
    worker = TokenWorker(("ns", "portal"), BODY)
    look(made, worker)
    assert egain.requests == 1
    assert kube.secrets[("ns", "portal")]["data"] == theirs["data"]
    assert worker.wake.is_set(), "the look was not taken again"


def test_missing_credentials_and_foreign_secret_send_nothing() -> None:
    kube, egain, clock = setup()
    made, _ = controller(kube, egain, clock)
    del kube.secrets[("ns", "creds")]
    worker = TokenWorker(("ns", "portal"), BODY)
    look(made, worker)
    assert ready(kube) == ("False", "CredentialsNotFound")
    kube.secrets[("ns", "creds")] = {"data": {"client_id": b64("id"), "client_secret": b64("s")}}
    kube.secrets[("ns", "portal")] = {"metadata": {"name": "portal"}, "data": {}}
    look(made, worker)
    assert ready(kube) == ("False", "SecretConflict")
    assert egain.requests == 0
    del kube.secrets[("ns", "portal")]
    look(made, worker)
    assert ready(kube) == ("True", "TokenIssued")


def test_a_token_host_outside_the_allow_list_is_refused_by_the_policy_before_any_request() -> None:
    kube, egain, clock = setup()
    made, _ = controller(kube, egain, clock)
    # The fake transport sends whatever it is given: only the policy's own check can refuse.
    egain.allowed_hosts = HostAllowList.parse("login.example.com")
    worker = TokenWorker(("ns", "portal"), BODY)
    look(made, worker)
    assert egain.requests == 0
    assert ready(kube) == ("False", "TokenUrlNotAllowed")
    assert kube.statuses[-1]["conditions"][0]["message"] == (
        "host ai.egain.cloud is not in the operator's allowed token hosts "
        "(login.example.com); no request was sent"
    )
    assert ("ns", "portal") not in kube.secrets
    egain.allowed_hosts = HostAllowList.parse("*.egain.cloud")
    look(made, worker)
    assert egain.requests == 1
    assert ready(kube) == ("True", "TokenIssued")


def short_lived(
    lifetime: float, allowance: timedelta = timedelta(seconds=120)
) -> tuple[FakeKube, FakeEgain, Clock, WorkerRegistry, list[tuple[str, str, str]]]:
    """A controller whose eGain issues `lifetime`-second tokens; events with their messages."""
    kube, _, clock = setup()
    egain = FakeEgain(clock, lifetime=lifetime)
    events: list[tuple[str, str, str]] = []
    made = registry(
        kube, egain, clock, recorder(events), RetryPolicy(propagation_allowance=allowance)
    )
    return kube, egain, clock, made, events


def test_short_lifetime_warns_once_and_notes_it_in_ready() -> None:
    kube, egain, clock, made, events = short_lived(60)
    worker = TokenWorker(("ns", "portal"), BODY)
    wake_at = look(made, worker)
    # Refreshed at half the lifetime (less jitter), not at two thirds.
    assert wake_at is not None
    assert START + timedelta(seconds=27) <= wake_at <= START + timedelta(seconds=30)
    assert [(kind, reason) for kind, reason, _ in events] == [
        ("Normal", "TokenIssued"),
        ("Warning", "LifetimeShorterThanAllowance"),
    ]
    warning = events[1][2]
    assert "(60s)" in warning and "(120s)" in warning and "30s before expiry" in warning
    condition = kube.statuses[-1]["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("True", "TokenIssued")
    assert condition["message"].startswith("token valid until 2026-11-23T21:01:00Z; warning: ")
    assert warning in condition["message"]

    for _ in range(3):  # later refreshes: the same situation, no new warning
        clock.now = wake_at
        wake_at = look(made, worker)
        assert wake_at is not None
    assert egain.requests == 4
    assert [reason for _, reason, _ in events].count("LifetimeShorterThanAllowance") == 1

    # A restarted operator reads the short token back from the Secret: still no repeat.
    restarted_made = registry(kube, egain, clock, recorder(events))
    fresh = TokenWorker(("ns", "portal"), BODY)
    clock.now = wake_at
    look(restarted_made, fresh)
    assert egain.requests == 5
    assert [reason for _, reason, _ in events].count("LifetimeShorterThanAllowance") == 1

    # Another lifetime is another situation: said again, once.
    egain.lifetime = 20
    clock.now += timedelta(seconds=30)
    look(restarted_made, fresh)
    assert [reason for _, reason, _ in events].count("LifetimeShorterThanAllowance") == 2
    assert "(20s)" in events[-1][2]

    # Nothing secret in what was said.
    said = " ".join(message for _, _, message in events) + repr(kube.statuses)
    assert "token-" not in said


def test_no_short_lifetime_warning_when_the_lifetime_allows_or_without_allowance() -> None:
    for lifetime, allowance in ((600, timedelta(seconds=120)), (60, timedelta(0))):
        kube, _, _, made, events = short_lived(lifetime, allowance)
        wake_at = look(made, TokenWorker(("ns", "portal"), BODY))
        assert [reason for _, reason, _ in events] == ["TokenIssued"]
        assert kube.statuses[-1]["conditions"][0]["message"] == (
            f"token valid until {(START + timedelta(seconds=lifetime)):%Y-%m-%dT%H:%M:%SZ}"
        )
        # Both keep the old rule: a third of the lifetime before expiry, less jitter.
        assert wake_at is not None
        third = timedelta(seconds=lifetime) / 3
        assert wake_at <= START + timedelta(seconds=lifetime) - third
        assert wake_at >= START + timedelta(seconds=lifetime) - third * 1.1
