"""`make bench`: how the operator does with many EgainTokens. Prints figures, asserts nothing.

Starts a control plane, the eGain emulator and the operator, creates N
EgainTokens, and reports: time until all are Ready, token requests, Kubernetes
API requests made by the operator (counted in the audit log) while issuing
and while idle, and the operator's resident memory.
"""

from __future__ import annotations

import argparse
import calendar
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from testground import controlplane
from testground.emulator import EgainEmulator

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "egain-bench"
TENANT = "TMPRODB88619984"
# The operator's API client identifies itself with these user agents.
OPERATOR_AGENTS = ("kopf", "OpenAPI-Generator")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def operator_requests(audit_log: Path, since: float) -> Counter[str]:
    """Operator API requests (verb resource) in the audit log after `since` (epoch)."""
    counts: Counter[str] = Counter()
    for line in audit_log.read_text().splitlines():
        entry = json.loads(line)
        agent = entry.get("userAgent", "")
        stamp = entry.get("requestReceivedTimestamp", "")
        if not any(a in agent for a in OPERATOR_AGENTS) or not stamp:
            continue
        when = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
        if when >= since:
            resource = entry.get("objectRef", {}).get("resource", "?")
            subresource = entry.get("objectRef", {}).get("subresource")
            counts[f"{entry['verb']} {resource}{'/' + subresource if subresource else ''}"] += 1
    return counts


def ready_count(plane: controlplane.ControlPlane) -> int:
    result = plane.kubectl("get", "egt", "-n", NAMESPACE, "-o", "json")
    items = json.loads(result.stdout)["items"]
    return sum(
        any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (i.get("status") or {}).get("conditions", [])
        )
        for i in items
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--state-dir", type=Path, default=REPO / ".testground" / "bench")
    args = parser.parse_args()

    plane = controlplane.start(args.state_dir / "cluster")
    emulator = EgainEmulator(args.state_dir / "emulator")
    emulator.start()
    operator: subprocess.Popen[bytes] | None = None
    try:
        client_secret = secrets.token_urlsafe(32)
        emulator.register_client("bench", client_secret, TENANT, ["knowledge.portalmgr.manage"])
        plane.kubectl(
            "apply", "--server-side", "-f", str(REPO / "crds" / "egaintokens.egain.cloud.yaml")
        )
        plane.kubectl("wait", "--for=condition=Established", "crd/egaintokens.egain.cloud")
        plane.kubectl("create", "namespace", NAMESPACE, check=False)
        credentials = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "egain-client", "namespace": NAMESPACE},
            "stringData": {"client_id": "bench", "client_secret": client_secret},
        }
        plane.kubectl("apply", "-f", "-", input=json.dumps(credentials))
        log = (args.state_dir / "operator.log").open("wb")
        operator = subprocess.Popen(
            [
                sys.executable, "-m", "egain_token_operator", "run",
                "--namespace", NAMESPACE,
                "--allowed-token-hosts", f"localhost:{emulator.port}",
                "--ca-bundle", str(emulator.ca_file),
                "--metrics-address", "127.0.0.1:0", "--health-address", "127.0.0.1:0",
            ],
            env={**plane.env(), "PYTHONPATH": str(REPO / "operator")},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        time.sleep(3)
        idle_rss = rss_mib(operator.pid)
        tokens = [
            {
                "apiVersion": "egain.cloud/v1alpha1",
                "kind": "EgainToken",
                "metadata": {"name": f"token-{i}", "namespace": NAMESPACE},
                "spec": {
                    "tokenUrl": emulator.client_app_token_url(TENANT),
                    "scopes": ["knowledge.portalmgr.manage"],
                    "credentialsSecretRef": {"name": "egain-client"},
                },
            }
            for i in range(args.tokens)
        ]
        started_epoch, started = time.time(), time.monotonic()
        plane.kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": tokens}),
        )
        while ready_count(plane) < args.tokens:
            if time.monotonic() - started > 600:
                raise SystemExit("not all tokens became Ready in 600 s")
            time.sleep(0.5)
        all_ready = time.monotonic() - started
        issuing = operator_requests(plane.audit_log, started_epoch)
        idle_from = time.time()
        time.sleep(args.idle_seconds)
        idle = operator_requests(plane.audit_log, idle_from)
        print(f"tokens: {args.tokens}")
        print(f"all Ready after: {all_ready:.1f} s ({args.tokens / all_ready:.1f} tokens/s)")
        print(f"token requests: {len(emulator.requests('bench'))}")
        print(f"operator API requests while issuing: {sum(issuing.values())} "
              f"({sum(issuing.values()) / args.tokens:.2f} per token)")  # fmt: skip
        for key, count in sorted(issuing.items()):
            print(f"  {key}: {count}")
        print(f"operator API requests in {args.idle_seconds:.0f} s idle: {sum(idle.values())}")
        print(f"operator RSS: {idle_rss:.1f} MiB idle, {rss_mib(operator.pid):.1f} MiB "
              f"with {args.tokens} tokens")  # fmt: skip
    finally:
        if operator is not None:
            os.killpg(operator.pid, signal.SIGTERM)
            operator.wait(timeout=30)
        emulator.stop()
        controlplane.stop(args.state_dir / "cluster")


if __name__ == "__main__":
    main()
