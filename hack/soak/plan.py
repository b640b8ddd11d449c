"""What a soak run is made of: its namespace, clients, tokens, fault kinds and bounds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "soak"
TENANT = "TMPRODB88619984"
SCOPES = ("knowledge.portalmgr.manage", "knowledge.portalmgr.read")
# Seconds; one eGain client per lifetime. `lead`: long enough that a refresh
# lead (a third) covers the short faults; `stress`: shorter than most faults.
LIFETIMES = {"lead": range(60, 121, 12), "stress": range(5, 11)}
CONSUMER_TOKEN = "file-consumer"
LEASE = f"{NAMESPACE}/egain-token-operator"
MANAGED = "app.kubernetes.io/managed-by=egain-token-operator"
# The documented cap on the wait between retries once a token has expired
# (docs/api.md, "When a failed request is retried").
EXPIRED_RETRY_CAP = 20.0
# The kubelet's pod sync period here, and what a changed Secret may take to
# reach a Pod's file with it: the period and its jitter (up to half of it),
# the kubelet's Secret watch and write, and the consumer's 1 s reading.
SYNC_FREQUENCY = "1s"
FILE_PROPAGATION = 5.0
# Seconds of a replica's life before its memory is judged for growth.
WARM_UP = 300.0
# Seconds the run stays quiet after the recovery bound that follows its last
# fault: a stretch no disturbance excuses, so that the stress variant, whose
# faults overlap and excuse nearly everything before it, is judged at all.
JUDGED_TAIL = 30.0
# The longest a Kubernetes fault may keep the operator from asking eGain for
# anything: the API server's restart (about 25 s) or a fail-over (about 15 s).
# An eGain fault set meanwhile (the stress variant runs both at once) waits for
# it, the recovery bound after it and a lifetime before it counts as unmet.
SILENCED = 30.0
# What a sample is when its Secret holds a token that expires before one it
# held earlier: written by a replica that acted on a stale view. Never excused.
OLDER = "a token older than one it held before"
EGAIN_FAULTS = frozenset(
    {
        "5xx_burst", "hang", "reset", "429_retry_after", "429_no_retry_after",
        "malformed_body", "html_body", "long_outage",
    }
)  # fmt: skip
KUBE_FAULTS = frozenset(
    {
        "apiserver_restart", "etcd_pause", "operator_kill_mid_refresh", "leader_kill",
        "leader_partition", "leader_freeze", "apiserver_slow",
        "credentials_rotation", "secret_deleted", "secret_edited", "spec_changed",
    }
)  # fmt: skip
# With the lead lifetimes: the faults that outlast a lead come once per 10
# minutes of the run; the others, about one every LEAD_FAULT_EVERY seconds.
ONCE_PER_10_MIN = ("long_outage", "apiserver_restart")
LEAD_FAULT_EVERY = 30.0
# Kinds that act on the tokens they name themselves: a sample of one of them
# is excused whatever the lead.
TAMPERING = frozenset({"credentials_rotation", "secret_deleted", "secret_edited", "spec_changed"})


@dataclass
class TokenPlan:
    """One EgainToken of the run: its eGain client, flow, lifetime and scopes."""

    name: str
    flow: str
    lifetime: int
    client: str  # the eGain client id
    scopes: tuple[str, ...]
    shared: bool = False  # through an EgainClient (`clientRef`), not inline

    @property
    def lead(self) -> float:
        """How long before expiry the token is refreshed (before jitter): a third of its
        lifetime; half for the one a Pod mounts (its `refreshBefore`)."""
        return self.lifetime / (2 if self.name == CONSUMER_TOKEN else 3)


def recovery_bound(http_timeout: float) -> float:
    """Seconds after a disturbance within which every token it touched must be valid
    again: the cap on retries of an expired token, plus one request."""
    return EXPIRED_RETRY_CAP + http_timeout


def shared_client_name(client: str, flow: str) -> str:
    """The EgainClient of eGain client `client` in `flow`."""
    return f"{client}-{flow.lower()}"
