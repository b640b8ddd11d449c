"""The samplers of a soak run: every managed Secret once a second, each replica's resources."""

from __future__ import annotations

import base64
import contextlib
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from soak.ground import Ground
from soak.plan import MANAGED, NAMESPACE, OLDER
from testground import procfs
from testground.emulator import RequestRecord


@dataclass
class Observed:
    """What the samplers saw."""

    samples: int = 0
    failed_reads: int = 0
    # (at, token, what) for every sample that held no valid token
    bad: list[tuple[float, str, str]] = field(default_factory=list)
    # (at, number of tokens without a valid one) for every successful read
    ticks: list[tuple[float, int]] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    token_requests: int = 0
    # Per `--resource-every`: each live replica's RSS, file descriptors and sockets.
    resources: list[dict[str, Any]] = field(default_factory=list)


class Sampler:
    """Reads the managed Secrets and the replicas' resources until `stop` is set."""

    def __init__(self, ground: Ground, started: float, resource_every: float) -> None:
        self.ground = ground
        self.started = started
        self.resource_every = resource_every
        self.observed = Observed()
        self.stop = threading.Event()
        self.newest: dict[str, float] = {}  # token → the latest expiry its Secret held

    def sample(self) -> None:
        """Read every managed Secret once a second until told to stop; collect token requests."""
        plane = self.ground.cluster
        context = ssl.create_default_context(cafile=str(plane.ca_file))
        pki_dir = plane.state_dir / "pki"
        context.load_cert_chain(str(pki_dir / "admin.crt"), str(pki_dir / "admin.key"))
        url = f"{plane.server}/api/v1/namespaces/{NAMESPACE}/secrets"
        names = [token.name for token in self.ground.tokens]
        observed = self.observed
        last_request = 0.0
        with httpx.Client(verify=context, timeout=2.0) as http:
            while not self.stop.is_set():
                tick = time.time()
                last_request = self.collect_requests(last_request)
                try:
                    response = http.get(url, params={"labelSelector": MANAGED})
                    response.raise_for_status()
                    items = response.json()["items"]
                except (httpx.HTTPError, ValueError):
                    observed.failed_reads += 1
                    items = None
                if items is not None:
                    at = time.time()
                    held = {
                        item["metadata"]["labels"].get("egain.cloud/token"): item.get("data") or {}
                        for item in items
                    }
                    bad = 0
                    for name in names:
                        observed.samples += 1
                        what = self.judge(name, held.get(name), at)
                        if what is not None:
                            bad += 1
                            observed.bad.append((at, name, what))
                    observed.ticks.append((at, bad))
                self.stop.wait(max(0.0, 1.0 - (time.time() - tick)))
        self.collect_requests(last_request)

    def watch_resources(self) -> None:
        """Every `resource_every` seconds: each live replica's RSS, open files and sockets."""
        while not self.stop.wait(self.resource_every):
            at = round(time.time() - self.started, 1)
            for replica in list(self.ground.replicas):
                assert replica.process is not None
                with contextlib.suppress(OSError):  # killed meanwhile
                    self.observed.resources.append(
                        {
                            "at": at,
                            "replica": replica.log_path.name,
                            **resources(replica.process.pid),
                        }
                    )

    def judge(self, name: str, data: dict[str, str] | None, at: float) -> str | None:
        """None when `data` holds a valid token for `name` at `at`; else what is wrong."""
        if data is None:
            return "missing"
        token = base64.b64decode(data.get("access_token", "")).decode(errors="replace")
        info = self.ground.emulator.token_info(token)
        if info is None:
            return "not a token eGain issued"
        expires = info.expires_at.timestamp()
        if expires < self.newest.get(name, 0.0):
            return OLDER
        self.newest[name] = expires
        if at >= expires:
            return "expired"
        return None

    def collect_requests(self, after: float) -> float:
        """Count the token requests eGain saw after monotonic time `after`; the last one's."""
        records: list[RequestRecord] = [
            r for r in self.ground.emulator.requests() if r.monotonic > after
        ]
        for record in records:
            self.observed.token_requests += 1
            outcome = "issued" if record.token_issued else (record.fault or record.error or "other")
            self.observed.requests[str(outcome)] += 1
        return max((r.monotonic for r in records), default=after)


def resources(pid: int) -> dict[str, int]:
    """Process `pid`'s resident memory (KiB), open file descriptors and sockets among them."""
    fds, sockets = procfs.open_files(pid)
    return {"rss_kib": procfs.status_kib(pid, "VmRSS"), "fds": fds, "sockets": sockets}
