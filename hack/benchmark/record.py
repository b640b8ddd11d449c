"""One run's record: the date, machine, versions and settings, and every row's figures.

The rows run in one order (`measure`), on one ground; a row that fails
records its error and the others still run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from benchmark.events import per_event
from benchmark.ground import Ground, Running
from benchmark.kube import Api
from benchmark.rows import hostile, issue, refresh, standing
from benchmark.settings import Settings
from testground.controlplane import ControlPlane
from testground.emulator import EgainEmulator

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"

ROWS = (
    "floor",
    "time_to_ready",
    "burst",
    "steady",
    "restart",
    "storm",
    "unrelated_secrets",
    "token_hour",
    "events",
    "spread",
    "shared",
    "capacity",
    "hostile",
)

T = TypeVar("T")
Failed = dict[str, Any]  # {"error": why}, what a row that failed records


def run(plane: ControlPlane, settings: Settings, state_dir: Path) -> dict[str, Any]:
    """Every row on `plane`, with an emulator of its own; the record of the run
    (description and rows; `bench.json` adds the table)."""
    plane.kubectl("apply", "--server-side", "-f", str(CRDS))
    plane.kubectl("wait", "--for=condition=Established", "-f", str(CRDS))
    description = describe(plane, settings)
    state_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with EgainEmulator(state_dir / "emulator") as emulator:
        rows = asyncio.run(measure(plane, emulator, settings, state_dir))
    description["rows_seconds"] = time.monotonic() - started
    # The machine is shared: how busy it was is part of the figures.
    description["machine"]["load_average_at_end"] = os.getloadavg()
    return {**description, "rows": rows}


async def measure(
    plane: ControlPlane,
    emulator: EgainEmulator,
    settings: Settings,
    state_dir: Path,
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> dict[str, Any]:
    """Run every row; a row that times out or is refused by the API server records
    its error, and the others still run."""
    api = Api(plane)
    ground = Ground(plane, emulator, api, state_dir, settings)
    rows: dict[str, Any] = {}
    started = time.monotonic()

    async def row(name: str, step: Awaitable[T]) -> T | Failed:
        say(f"[{time.monotonic() - started:6.1f} s] {name} ...")
        try:
            return await step
        except (TimeoutError, RuntimeError) as exc:
            say(f"{name}: {exc}")
            return {"error": str(exc)}

    try:
        # Synthetic, in this process: before the rows that load the machine.
        say(f"[{time.monotonic() - started:6.1f} s] i) per-event work ...")
        rows["events"] = per_event(settings.event_sizes)
        rows["floor"] = await row("a) floor", issue.floor(ground))
        rows["time_to_ready"] = await row("b) time to Ready", issue.time_to_ready(ground))
        # j), k), l) and m) before the large rows, on a cluster still small.
        rows["spread"] = [
            await row(f"j) spread, {how}", issue.spread(ground, listed))
            for how, listed in (("cluster-wide", False), ("--namespace", True))
        ]
        rows["shared"] = await row("k) shared tokens", issue.shared(ground))
        rows["capacity"] = [
            await row(f"l) capacity, {shards} replica(s)", refresh.capacity(ground, shards))
            for shards in (1, 2)
        ]
        rows["hostile"] = await row("m) hostile tenants", hostile.hostile(ground))
        rows["burst"], rows["restart"] = [], []
        main: Running | None = None
        for size in settings.burst_sizes:
            result = await row(f"c) burst of {size}", issue.burst(ground, size))
            if isinstance(result, dict):  # an error
                rows["burst"].append({"tokens": size, **result})
                continue
            figures, running = result
            rows["burst"].append(figures)
            if size == settings.tokens:
                main = running
                continue
            if size >= 5000:  # e) at 5,000 too, when the run goes beyond
                result = await row(f"e) restart of {size}", standing.restart(ground, running))
                rows["restart"].append(result if isinstance(result, dict) else result[0])
                running = running if isinstance(result, dict) else result[1]
            await ground.stop(running)
        if main is None:
            rows["steady"] = {"error": f"no burst of {settings.tokens} to go on from"}
            rows["unrelated_secrets"] = rows["steady"]
        else:
            rows["steady"] = await row("d) steady state", standing.idle(ground, main))
            result = await row(f"e) restart of {settings.tokens}", standing.restart(ground, main))
            rows["restart"].append(result if isinstance(result, dict) else result[0])
            if not isinstance(result, dict):
                main = result[1]
                result = await row("g) unrelated Secrets", standing.unrelated_secrets(ground, main))
                rows["unrelated_secrets"] = result if isinstance(result, dict) else result[0]
                if not isinstance(result, dict):
                    main = result[1]
            else:
                rows["unrelated_secrets"] = {"error": "the restart row failed"}
            await ground.stop(main)
        # The storm's tokens must be issued before they expire: it allows for
        # the pace the first burst issued at.
        issue_rate = next((b["tokens_per_second"] for b in rows["burst"] if "error" not in b), None)
        rows["storm"] = [
            await row(f"f) storm of {size}", refresh.storm(ground, size, issue_rate))
            for size in settings.storm_sizes
        ]
        rows["token_hour"] = await row("h) requests per token-hour", refresh.token_hour(ground))
        say(f"[{time.monotonic() - started:6.1f} s] done")
    finally:
        await ground.close()
        await api.aclose()
    return rows


def describe(plane: ControlPlane, settings: Settings) -> dict[str, Any]:
    """Date, machine, versions and settings of a run."""
    meminfo = Path("/proc/meminfo").read_text().split()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    server = json.loads(plane.kubectl("version", "--output=json").stdout)["serverVersion"]
    commit = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "nproc": os.cpu_count(),
            "memory_mib": int(meminfo[meminfo.index("MemTotal:") + 1]) // 1024,
            "cpu": cpu,
            "load_average_at_start": os.getloadavg(),
        },
        "versions": {
            "operator": f"{metadata.version('egain-token-operator')} ({commit})",
            "python": platform.python_version(),
            "kubernetes": server["gitVersion"],
            "kopf": metadata.version("kopf"),
            "kubernetes_client": metadata.version("kubernetes"),
        },
        "settings": dataclasses.asdict(settings),
    }
