"""Helpers for end-to-end tests: the cluster through kubectl, manifests, the operator process."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from egain_token_operator.controller.restarts import COALESCE_WINDOW
from egain_token_operator.decisions.timestamps import parse_rfc3339
from testground.controlplane import ControlPlane
from testground.emulator import EgainEmulator, RequestRecord
from testground.operatorprocess import OperatorProcess as OperatorProcess
from testground.operatorprocess import wait_until as wait_until
from testground.supervision import free_port as free_port

REPO = Path(__file__).resolve().parents[2]
# Every CRD of the API (EgainToken, EgainClient, ClusterEgainClient).
CRDS = REPO / "crds"


class Hidden:
    """A secret value: compares with strings and other `Hidden`, never shows in test output.

    Deliberately not a `str`: pytest diffs strings character by character on a
    failed assertion, which would print the value.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The value itself, for code that needs it (never for messages)."""
        return self._value

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Hidden):
            return self._value == other._value
        return isinstance(other, str) and self._value == other

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "<hidden>"

    __str__ = __repr__


@dataclass(frozen=True)
class Backoff:
    """The retry schedule of transient failures as docs/api.md states it (*When
    a failed request is retried*), for the settings a test passes."""

    initial: float = 1.0  # --retry-initial-delay
    maximum: float = 300.0  # --retry-max-delay
    expired_cap: float = 20.0  # once no valid token remains
    validity_fraction: float = 0.25  # of the remaining validity, while one remains
    floor: float = 0.5  # no retry sooner than this after a failure
    retry_after: float = 0.0  # the endpoint's Retry-After, honoured above all (up to `maximum`)

    def shortest_wait(self, failures: int, remaining: float) -> float:
        """The shortest wait after the `failures`-th failure, `remaining` seconds
        of validity left: each wait is in the upper half of its step."""
        step = min(self.initial * 2.0 ** (failures - 1), self.maximum)
        if remaining <= 0:
            wait = min(step, self.expired_cap) / 2
        else:
            wait = min(step / 2, remaining * self.validity_fraction)
        return max(self.floor, wait, min(self.retry_after, self.maximum))

    def most_requests(self, first: float, expiry: float, until: float) -> tuple[int, int]:
        """The most requests the schedule allows from the first retry at `first`
        (seconds) until `until`, before and after `expiry`: each failing at once
        and each wait the shortest (later requests can only wait longer)."""
        before = after = 0
        at = first
        while at < until:
            if at < expiry:
                before += 1
            else:
                after += 1
            at += self.shortest_wait(before + after, expiry - at)
        return before, after

    def check_failing_requests(self, times: Sequence[float], what: str) -> None:
        """Fail unless requests answered at `times` (seconds, ascending), each
        failing with no valid token held, are no more than the schedule allows
        over their span: backed off, not a hot loop."""
        span = times[-1] - times[0]
        # The first is at 0 and no token is valid: every request counts as after expiry.
        _, most = self.most_requests(0.0, 0.0, span + 1e-6)
        assert len(times) <= most, (
            f"{what}: {len(times)} requests in {span:.1f} s, the backoff allows {most}"
        )


def tried(
    emulator: EgainEmulator, client_id: str, times: int
) -> Callable[[], list[RequestRecord] | None]:
    """For `wait_until`: the token requests of a client, once there are `times` of them."""

    def requests() -> list[RequestRecord] | None:
        found = emulator.requests(client_id)
        return found if len(found) >= times else None

    return requests


class Cluster:
    """kubectl against the local control plane, with JSON in and out."""

    def __init__(self, control_plane: ControlPlane) -> None:
        self.control_plane = control_plane

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.control_plane.kubectl(*args, input=input, check=check)

    def apply(
        self, *manifests: Mapping[str, Any], check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifests)})
        return self.kubectl("apply", "-f", "-", input=body, check=check)

    def get(self, resource: str, name: str, namespace: str) -> dict[str, Any] | None:
        result = self.kubectl("get", resource, name, "-n", namespace, "-o", "json", check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr:
                return None
            raise AssertionError(f"kubectl get {resource} {name}: {result.stderr}")
        found: dict[str, Any] = json.loads(result.stdout)
        return found

    def delete(self, resource: str, name: str, namespace: str) -> None:
        self.kubectl(
            "delete", resource, name, "-n", namespace, "--wait=false", "--ignore-not-found"
        )

    def token(self, namespace: str, name: str) -> dict[str, Any]:
        token = self.get("egaintoken", name, namespace)
        assert token is not None, f"EgainToken {namespace}/{name} not found"
        return token

    def ready(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Ready condition of an EgainToken, or None."""
        conditions = (self.token(namespace, name).get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c.get("type") == "Ready"), None)

    def wait_ready(
        self,
        namespace: str,
        name: str,
        status: str = "True",
        reason: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Wait until the Ready condition has `status` (and `reason`); return the EgainToken."""

        def check() -> dict[str, Any] | None:
            token = self.token(namespace, name)
            conditions = (token.get("status") or {}).get("conditions") or []
            ready: dict[str, Any] = next((c for c in conditions if c.get("type") == "Ready"), {})
            matches = ready.get("status") == status and reason in (None, ready.get("reason"))
            return token if matches else None

        return wait_until(check, f"{namespace}/{name} Ready={status} {reason or ''}", timeout)

    def secret_data(self, namespace: str, name: str) -> dict[str, Hidden] | None:
        """A Secret's data, decoded, with values that never print."""
        secret = self.get("secret", name, namespace)
        if secret is None:
            return None
        return {
            k: Hidden(base64.b64decode(v).decode()) for k, v in (secret.get("data") or {}).items()
        }

    def restarted_at(self, namespace: str, deployment: str) -> str | None:
        """The `egain.cloud/restarted-at` pod-template annotation of a Deployment."""
        found = self.get("deployment", deployment, namespace) or {}
        template = found.get("spec", {}).get("template", {})
        annotations = template.get("metadata", {}).get("annotations") or {}
        value = annotations.get("egain.cloud/restarted-at")
        return value if isinstance(value, str) else None

    def wait_past_min_interval(self, namespace: str, deployment: str, interval: float) -> str:
        """Wait until a restart of a Deployment held back by the minimum interval
        (`interval` seconds) since its last restart would have been written;
        return that last restart's `egain.cloud/restarted-at`.

        The operator counts the interval from the annotation (whole seconds), as
        this does; a coalescing window on top leaves time for the write.
        """
        restarted = self.restarted_at(namespace, deployment)
        assert restarted is not None, f"Deployment {namespace}/{deployment} was never restarted"
        due = parse_rfc3339(restarted) + timedelta(seconds=interval) + COALESCE_WINDOW
        wait_until(
            lambda: datetime.now(UTC) >= due,
            f"the minimum interval since the restart at {restarted} to pass",
            interval + COALESCE_WINDOW.total_seconds() + 30,
        )
        return restarted

    def events(self, namespace: str) -> list[dict[str, Any]]:
        result = self.kubectl("get", "events", "-n", namespace, "-o", "json")
        items: list[dict[str, Any]] = json.loads(result.stdout)["items"]
        return items

    def wait_events(
        self,
        namespace: str,
        reason: str,
        type_: str | None = None,
        count: int = 1,
        timeout: float = 30.0,
    ) -> list[dict[str, Any]]:
        """Wait until at least `count` Events with `reason` (and `type_`) are in
        `namespace`; return them. The operator posts a look's Events after its
        writes, so a status or a Secret can be seen before the Event that tells it.
        """

        def found() -> list[dict[str, Any]] | None:
            said = [
                e
                for e in self.events(namespace)
                if e["reason"] == reason and type_ in (None, e["type"])
            ]
            return said if len(said) >= count else None

        return wait_until(found, f"{count} {type_ or ''} {reason} Event(s) in {namespace}", timeout)


def credentials_secret(
    namespace: str, name: str, client_id: str, client_secret: str
) -> dict[str, Any]:
    """The Secret holding a client's credentials."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "stringData": {"client_id": client_id, "client_secret": client_secret},
    }


def egain_token(namespace: str, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """An EgainToken manifest."""
    return {
        "apiVersion": "egain.cloud/v1alpha1",
        "kind": "EgainToken",
        "metadata": {"name": name, "namespace": namespace},
        "spec": dict(spec),
    }


def egain_client(namespace: str, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """An EgainClient manifest."""
    return {
        "apiVersion": "egain.cloud/v1alpha1",
        "kind": "EgainClient",
        "metadata": {"name": name, "namespace": namespace},
        "spec": dict(spec),
    }


def cluster_egain_client(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """A ClusterEgainClient manifest."""
    return {
        "apiVersion": "egain.cloud/v1alpha1",
        "kind": "ClusterEgainClient",
        "metadata": {"name": name},
        "spec": dict(spec),
    }


def deployment(namespace: str, name: str) -> dict[str, Any]:
    """A Deployment whose Pods never start: their image is never pulled."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": name,
                            "image": f"registry.invalid/{name}:1",
                            "imagePullPolicy": "Never",
                        }
                    ]
                },
            },
        },
    }
