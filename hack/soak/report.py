"""The report of a soak run: what the cluster, the logs and eGain say at the end, the
verdict's figures over the timeline, and the printed summary."""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import statistics
from collections import Counter
from typing import Any

from soak import verdict
from soak.faults import Faults
from soak.ground import Ground
from soak.plan import CONSUMER_TOKEN, FILE_PROPAGATION, MANAGED, NAMESPACE, WARM_UP, recovery_bound
from soak.sampling import Observed
from soak.timeline import Timeline
from testground import incluster


def build(
    args: argparse.Namespace,
    ground: Ground,
    timeline: Timeline,
    observed: Observed,
    faults: Faults,
    ran: float,
) -> dict[str, Any]:
    """Every figure of the run, and `failures`: the rules it broke (none: it passed)."""
    bound = recovery_bound(args.http_timeout)
    started, windows = timeline.started, timeline.windows
    excuses = {token.name: verdict.excuse(args.lifetimes, token.lead) for token in ground.tokens}
    issued = ground.emulator.issued_tokens()
    file_samples = incluster.samples(ground.kubectl("logs", "consumer", "-n", NAMESPACE))
    api = verdict.api_violations(observed.bad, excuses, windows, bound, started)
    file = verdict.file_violations(
        file_samples,
        {token.fingerprint: token.expires_at.timestamp() for token in issued},
        excuses[CONSUMER_TOKEN],
        windows,
        bound,
        started,
    )
    recoveries = verdict.recoveries(windows, observed.ticks, started)
    times = [r["recovery_s"] for r in recoveries]
    token_hours = len(ground.tokens) * ran / 3600
    found: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "load_average": os.getloadavg()},
        "duration_s": args.duration,
        "ran_s": round(ran, 1),
        "tokens": len(ground.tokens),
        "lifetimes": args.lifetimes,
        "lifetimes_s": [min(ground.lifetimes), max(ground.lifetimes)],
        "flows": dict(Counter(t.flow for t in ground.tokens)),
        "operator_args": ground.operator_args(),
        "bound_s": {"api": bound, "file": bound + FILE_PROPAGATION},
        "samples": {
            "api": observed.samples,
            "file": len(file_samples),
            "failed_reads": observed.failed_reads,
            "without_valid_token": len(observed.bad),
        },
        "violations": len(api) + len(file),
        "judged_fraction": round(
            verdict.judged_fraction(observed.ticks, excuses, windows, bound), 3
        ),
        "min_judged_fraction": verdict.MIN_JUDGED[args.lifetimes],
        "violation_samples": {"api": api[:20], "file": file[:20]},
        "violations_by_10s": dict(sorted(Counter(v["at"] // 10 * 10 for v in api).items())),
        "violations_by_what": dict(Counter(v["what"] for v in api + file)),
        "token_requests": observed.token_requests,
        "tokens_issued_per_s": round(observed.requests["issued"] / ran, 1),
        "cpu_s": ground.cpu_seconds,
        "token_requests_by_outcome": dict(observed.requests),
        "requests_per_token_hour": round(observed.token_requests / token_hours, 1),
        "faults": dict(sorted(faults.injected.items())),
        "faults_unmet": dict(faults.unmet),
        "fault_errors": faults.errors,
        "split_brain": faults.split_brain,
        "recovery_s": {
            "p50": round(statistics.median(times), 1) if times else 0.0,
            "max": max(times, default=0.0),
            "each": recoveries,
        },
        "failovers_s": [round(f, 1) for f in faults.failovers],
        "in_flight_at_kill": faults.in_flight_at_kill,
        "lost": len(lost_tokens := lost(ground)),
        "lost_tokens": lost_tokens,
        "api_errors": api_errors(ground),
        "watchdog": verdict.watchdog(
            [token.issued_at.timestamp() for token in issued],
            windows,
            started,
            float(max(ground.lifetimes)),
        ),
        "leaks": leaks(ground),
        "resources": verdict.growth(observed.resources, WARM_UP),
        "resource_samples": observed.resources,
    }
    found["failures"] = verdict.failures(found)
    return found


def lost(ground: Ground) -> list[dict[str, str]]:
    """Tokens whose Secret is missing or holds a token not for its spec and credentials.

    (An expired one is a violation, counted by the sampler.)
    """
    items = json.loads(
        ground.kubectl("get", "secrets", "-n", NAMESPACE, "-l", MANAGED, "-o", "json")
    )["items"]
    held = {i["metadata"]["labels"].get("egain.cloud/token"): i.get("data") or {} for i in items}
    found = []
    for token in ground.tokens:
        data = held.get(token.name)
        why = None
        if data is None:
            why = "Secret missing"
        else:
            value = base64.b64decode(data.get("access_token", "")).decode(errors="replace")
            info = ground.emulator.token_info(value)
            if info is None:
                why = "not a token eGain issued"
            elif info.client_id != token.client:
                why = "a token of another client"
            elif info.issued_at.timestamp() < ground.rotated_at.get(token.client, 0.0):
                why = "a token of the old credentials"
            elif {s.rsplit("/", 1)[-1] for s in info.scope.split()} != set(token.scopes):
                why = "a token of an old spec"
        if why is not None:
            found.append({"token": token.name, "why": why})
    return found


def api_errors(ground: Ground) -> dict[str, int]:
    """Kubernetes API failures in the operator's logs, by what reported them."""
    counts: Counter[str] = Counter()
    for replica in ground.all_replicas:
        for line in replica.log().splitlines():
            if "Kubernetes API call failed" in line:
                counts["token worker"] += 1
            elif "Lease " in line and ("WARNING" in line or "ERROR" in line):
                counts["leader election"] += 1
            elif ("[WARNING" in line or "[ERROR" in line) and "kopf" in line:
                counts["kopf"] += 1
    return dict(counts)


def leaks(ground: Ground) -> int:
    """Client secrets and tokens found in the replicas' logs, the Events and the statuses."""
    texts = [replica.log() for replica in ground.all_replicas]
    texts.append(ground.kubectl("get", "events", "-n", NAMESPACE, "-o", "json"))
    texts.append(ground.kubectl("get", "egaintokens", "-n", NAMESPACE, "-o", "json"))
    return len(ground.emulator.secrets_in("\n".join(texts)))


def print_report(report: dict[str, Any]) -> None:
    """Print the figures; the last line is the summary."""
    samples, recovery, bound = report["samples"], report["recovery_s"], report["bound_s"]
    lines = [
        f"tokens: {report['tokens']} {report['flows']}, lifetimes {report['lifetimes_s']} s",
        f"ran: {report['ran_s']} s",
        f"samples: {samples}",
        f"recovery bound: {bound['api']} s (API), {bound['file']} s (file)",
        f"token requests: {report['token_requests']}, "
        f"{report['requests_per_token_hour']} per token-hour",
        f"token requests by outcome: {report['token_requests_by_outcome']}",
        f"tokens issued per second: {report['tokens_issued_per_s']}",
        f"CPU seconds: {report['cpu_s']}",
        f"violations by 10 s of the run: {report['violations_by_10s']}",
        f"violations by what: {report['violations_by_what']}",
        f"faults: {report['faults']}",
        *(f"fault not injected: {error}" for error in report["fault_errors"]),
        f"recovery after each disturbance: p50 {recovery['p50']} s, max {recovery['max']} s",
        f"fail-overs: {report['failovers_s']} s",
        *(f"split leader: {found}" for found in report["split_brain"]),
        f"eGain faults no request met: {report['faults_unmet']}",
        *(f"resources of {name}: {found}" for name, found in report["resources"].items()),
        f"requests in flight at the kill: {report['in_flight_at_kill']}",
        f"API errors seen by the operator: {report['api_errors']}",
        f"watchdog: {report['watchdog']}",
        f"lost tokens: {report['lost_tokens']}",
        f"leaks: {report['leaks']}",
        *(
            f"violation ({kind}): {violation}"
            for kind, found in report["violation_samples"].items()
            for violation in found
        ),
        f"judged at least: {100 * report['min_judged_fraction']:.0f} %",
        *(f"FAILED: {reason}" for reason in report["failures"]),
        f"violations: {report['violations']}, lost: {report['lost']}, "
        f"recovery max: {recovery['max']} s, judged: {100 * report['judged_fraction']:.1f} %",
    ]
    print("\n".join(lines))
