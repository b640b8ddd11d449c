"""The faults of a soak run: eGain's answers, and the cluster and replicas around the operator."""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import os
import random
import signal
import time
from collections import Counter
from typing import Any

from egain_token_operator.controller.reconcile import REQUESTING
from soak.ground import Ground
from soak.plan import EGAIN_FAULTS, NAMESPACE, SCOPES, SILENCED, recovery_bound
from soak.timeline import Timeline
from testground import controlplane
from testground.emulator import FaultKind
from testground.operatorprocess import OperatorProcess, wait_until


class Faults:
    """Injects one fault at a time (several threads may each run one), and records what
    each did: the disturbances on the timeline, the figures here."""

    def __init__(
        self, ground: Ground, timeline: Timeline, rng: random.Random, variant: str
    ) -> None:
        self.ground = ground
        self.timeline = timeline
        self.rng = rng
        self.stress = variant == "stress"
        self.injected: Counter[str] = Counter()  # by kind
        self.unmet: Counter[str] = Counter()  # eGain faults no request met: not injected
        self.errors: list[str] = []  # faults that could not be done
        # One entry per partition or freeze of the leader: what both replicas did.
        self.split_brain: list[dict[str, Any]] = []
        self.failovers: list[float] = []
        self.in_flight_at_kill: list[int] = []

    def fault(self, kind: str) -> None:
        """Inject one fault of `kind`; one that fails is recorded as an error."""
        try:
            (self.egain_fault if kind in EGAIN_FAULTS else self.kube_fault)(kind)
        except Exception as exc:  # a fault that could not be done is a failed run
            self.errors.append(f"{kind}: {type(exc).__name__}: {exc}")

    def egain_fault(self, kind: str) -> None:
        """One eGain fault, for every request (or one client's), for a fixed time.

        The time runs from the first request that meets the fault: one set
        while the operator sends nothing (the API server is down, say) tests
        nothing, and with shared requests a request may be seconds away. One
        that no request met is not injected (`unmet`).
        """
        ground = self.ground
        # Lead lifetimes: 3-15 s, all shorter than the shortest refresh lead.
        hold = 3.0 if self.stress else self.rng.uniform(3.0, 15.0)
        options: dict[str, Any] = {}
        tokens: list[str] | None = None
        note = ""
        match kind:
            case "5xx_burst":
                fault = FaultKind.SERVER_ERROR
                options["status"] = self.rng.choice((500, 502, 503, 504))
            case "hang":
                fault, hold = FaultKind.HANG, ground.http_timeout + 2.0
            case "reset":
                fault = FaultKind.RESET
            case "429_retry_after":
                fault, options["retry_after"] = FaultKind.RATE_LIMITED, 2
            case "429_no_retry_after":
                fault, options["retry_after"] = FaultKind.RATE_LIMITED, None
            case "malformed_body":
                fault = FaultKind.NON_JSON
            case "html_body":
                fault = FaultKind.HTML
            case "long_outage":
                fault = FaultKind.SERVER_ERROR
                if self.stress:
                    # Past every token's lifetime: every token expires, and recovers.
                    hold = max(ground.lifetimes) + 5.0
                else:
                    # One eGain client down past its tokens' refresh lead: they
                    # expire and recover, while the other clients' must not.
                    client = self.rng.choice(list(ground.client_secrets))
                    options["client_id"] = client
                    tokens = [t.name for t in ground.tokens if t.client == client]
                    hold = max(ground.plans[name].lead for name in tokens) + 5.0
                    note = f"one client, {len(tokens)} tokens"
            case _:
                raise ValueError(kind)
        armed = datetime.datetime.now(datetime.UTC)
        ground.emulator.set_fault(fault, count=None, **options)
        try:
            first = self.first_met(fault, armed, options.get("client_id"))
            with self.timeline.disturbance(kind, tokens, note, start=first) as window:
                if first is None:
                    self.unmet[kind] += 1
                    window.note = "no request met it"
                    return
                time.sleep(max(0.0, first + hold - time.time()))
        finally:
            ground.emulator.clear_faults(fault)
        self.injected[kind] += 1

    def first_met(
        self, fault: FaultKind, since: datetime.datetime, client: str | None
    ) -> float | None:
        """When the first request met `fault` (epoch seconds); None if none came within a
        lifetime after the longest Kubernetes fault and the recovery bound (`SILENCED`)."""

        def met() -> float | None:
            for record in self.ground.emulator.requests():
                if (
                    record.fault == fault
                    and record.wall_time >= since
                    and client in (None, record.client_id)
                ):
                    return record.wall_time.timestamp()
            return None

        with contextlib.suppress(AssertionError):
            return wait_until(met, f"a request to meet {fault}", self.unmet_after)
        return None

    @property
    def unmet_after(self) -> float:
        """Seconds an eGain fault waits for a request to meet it."""
        ground = self.ground
        return max(ground.lifetimes) + SILENCED + recovery_bound(ground.http_timeout)

    def kube_fault(self, kind: str) -> None:
        """One fault of the cluster, of a replica, or of one token's objects."""
        ground, disturbance = self.ground, self.timeline.disturbance
        match kind:
            case "apiserver_restart":
                with disturbance(kind):
                    controlplane.restart_component(ground.cluster_dir, "kube-apiserver", down_for=5)
            case "etcd_pause":
                with disturbance(kind), controlplane.paused(ground.cluster_dir, "etcd"):
                    time.sleep(10)
            case "operator_kill_mid_refresh":
                self.kill_leader(kind, mid_refresh=True)
            case "leader_kill":
                self.kill_leader(kind, mid_refresh=False)
            case "leader_partition" | "leader_freeze":
                self.split_leader(kind)
            case "apiserver_slow":
                with disturbance(kind, note="every request 1-3 s late"):
                    ground.api_slow.set()
                    time.sleep(15.0)
                    ground.api_slow.clear()
            case "credentials_rotation":
                client = self.rng.choice(list(ground.client_secrets))
                affected = [t.name for t in ground.tokens if t.client == client]
                with disturbance(kind, affected, note=f"{len(affected)} tokens"):
                    ground.client_secrets[client] = ground.emulator.rotate_secret(client)
                    ground.rotated_at[client] = time.time()
                    ground.write_credentials(client)
            case "secret_deleted":
                token = self.rng.choice(ground.tokens[:-1])
                with disturbance(kind, [token.name]):
                    ground.kubectl("delete", "secret", token.name, "-n", NAMESPACE, "--wait=false")
            case "secret_edited":
                token = self.rng.choice(ground.tokens[:-1])
                edited = base64.b64encode(b"edited-by-hand").decode()
                patch = json.dumps({"data": {"access_token": edited}})
                with disturbance(kind, [token.name]):
                    ground.kubectl("patch", "secret", token.name, "-n", NAMESPACE, "-p", patch)
            case "spec_changed":
                token = self.rng.choice(ground.tokens[:-1])
                token.scopes = SCOPES if token.scopes != SCOPES else SCOPES[:1]
                with disturbance(kind, [token.name]):
                    ground.apply(ground.manifest(token))
            case _:
                raise ValueError(kind)
        self.injected[kind] += 1

    def kill_leader(self, kind: str, *, mid_refresh: bool) -> None:
        """SIGKILL the active replica (during requests, if `mid_refresh`), start it again."""
        ground = self.ground
        leader = wait_until(ground.leader, "a leader", 60)
        if mid_refresh:
            # Every answer comes late: kill only once requests are in flight.
            ground.emulator.set_fault(FaultKind.LATENCY, count=None, delay=2.0)
            wait_until(
                lambda: ground.emulator.concurrency().current > 0,
                "a request in flight",
                max(ground.lifetimes) + 10.0,
            )
        with self.timeline.disturbance(kind) as window:
            ground.record_cpu(leader)
            in_flight = ground.emulator.concurrency().current
            killed_at = time.time()
            leader.kill()
            ground.replicas.remove(leader)
            if mid_refresh:
                # The late answers (2 s) go to a dead process; then answers come on time.
                time.sleep(2.5)
                ground.emulator.clear_faults(FaultKind.LATENCY)
                self.in_flight_at_kill.append(in_flight)
                window.note = f"{in_flight} requests in flight"
            ground.start_replica()
            wait_until(ground.leader, "a replica to take over", 90)
            self.failovers.append(time.time() - killed_at)

    def split_leader(self, kind: str) -> None:
        """Cut the leader off from the API server (`leader_partition`), or freeze it
        (`leader_freeze`, SIGSTOP), until the standby has taken over and 5 s more;
        then heal it (SIGCONT). Records when each replica acted, and the token
        requests the old leader made once the standby held the Lease.

        The disturbance lasts until the standby leads: from then on the tokens
        are served again, whatever the old leader does.
        """
        leader = wait_until(self.ground.leader, "a leader", 60)
        standby = next(r for r in self.ground.replicas if r is not leader)
        assert leader.process is not None
        pid, path = leader.process.pid, self.ground.paths[leader.log_path.name]
        frozen = kind == "leader_freeze"
        stood_by: float | None = None

        def standing_by() -> bool:
            nonlocal stood_by
            if stood_by is None and not leader.leading():
                stood_by = time.time()
            return stood_by is not None

        try:
            with self.timeline.disturbance(kind) as window:
                if frozen:
                    os.killpg(pid, signal.SIGSTOP)
                else:
                    path.cut()
                while not standby.leading():
                    if not frozen:
                        standing_by()
                    if time.time() - window.start > 90:
                        raise AssertionError(f"the standby did not take over in 90 s ({kind})")
                    time.sleep(0.1)
            took_over = time.time()
            if not frozen:
                wait_until(standing_by, "the cut-off leader to stand by", 30)
            time.sleep(5.0)
        finally:
            if frozen:
                os.killpg(pid, signal.SIGCONT)
            else:
                path.heal()
        healed = time.time()
        wait_until(standing_by, "the old leader to stand by", 30)
        assert stood_by is not None
        time.sleep(10.0)  # back as a follower: it must ask for nothing
        found: dict[str, Any] = {"kind": kind, "takeover_s": round(took_over - window.start, 1)}
        if frozen:
            found["led_after_resume_s"] = round(stood_by - healed, 1)
        else:
            found["stood_by_s"] = round(stood_by - window.start, 1)
            found["both_acting_s"] = round(max(0.0, stood_by - took_over), 1)
        found["requests_after_lease_lost"] = requests_sent(leader, took_over)
        self.split_brain.append(found)


def requests_sent(replica: OperatorProcess, since: float) -> int:
    """The token requests `replica` logged as sent at `since` (epoch seconds) or later."""
    sent = 0
    for line in replica.log().splitlines():
        if REQUESTING in line and line.startswith("["):
            at = datetime.datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            sent += at >= since
    return sent
