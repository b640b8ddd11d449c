"""One run's record: the machine, versions and settings, every row, and the table of figures.

Each figure is printed with its ratio to the physical floor where one makes
sense, and with its target from issue 10.
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
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmark.events import KINDS, per_event
from benchmark.kube import Api
from benchmark.rows import Bench, Running, Settings
from testground.controlplane import ControlPlane
from testground.emulator import EgainEmulator

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"
MB_IN_MIB = 1e6 / 2**20

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
)


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
    bench = Bench(plane, emulator, api, state_dir, settings)
    rows: dict[str, Any] = {}
    started = time.monotonic()

    async def row(name: str, step: Awaitable[Any]) -> Any:
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
        rows["floor"] = await row("a) floor", bench.floor())
        rows["time_to_ready"] = await row("b) time to Ready", bench.time_to_ready())
        # j), k) and l) before the large rows, on a cluster still small.
        rows["spread"] = [
            await row(f"j) spread, {how}", bench.spread(listed))
            for how, listed in (("cluster-wide", False), ("--namespace", True))
        ]
        rows["shared"] = await row("k) shared tokens", bench.shared())
        rows["capacity"] = [
            await row(f"l) capacity, {shards} replica(s)", bench.capacity(shards))
            for shards in (1, 2)
        ]
        rows["burst"], rows["restart"] = [], []
        main: Running | None = None
        for size in settings.burst_sizes:
            result = await row(f"c) burst of {size}", bench.burst(size))
            if isinstance(result, dict):  # an error
                rows["burst"].append({"tokens": size, **result})
                continue
            figures, running = result
            rows["burst"].append(figures)
            if size == settings.tokens:
                main = running
                continue
            if size >= 5000:  # e) at 5,000 too, when the run goes beyond
                result = await row(f"e) restart of {size}", bench.restart(running))
                rows["restart"].append(result if isinstance(result, dict) else result[0])
                running = running if isinstance(result, dict) else result[1]
            await bench.stop(running)
        if main is None:
            rows["steady"] = {"error": f"no burst of {settings.tokens} to go on from"}
            rows["unrelated_secrets"] = rows["steady"]
        else:
            rows["steady"] = await row("d) steady state", bench.idle(main))
            result = await row(f"e) restart of {settings.tokens}", bench.restart(main))
            rows["restart"].append(result if isinstance(result, dict) else result[0])
            if not isinstance(result, dict):
                main = result[1]
                result = await row("g) unrelated Secrets", bench.unrelated_secrets(main))
                rows["unrelated_secrets"] = result if isinstance(result, dict) else result[0]
                if not isinstance(result, dict):
                    main = result[1]
            else:
                rows["unrelated_secrets"] = {"error": "the restart row failed"}
            await bench.stop(main)
        rows["storm"] = [
            await row(f"f) storm of {size}", bench.storm(size)) for size in settings.storm_sizes
        ]
        rows["token_hour"] = await row("h) requests per token-hour", bench.token_hour())
        say(f"[{time.monotonic() - started:6.1f} s] done")
    finally:
        await bench.close()
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


@dataclass(frozen=True)
class Line:
    """One figure of the table."""

    row: str
    figure: str
    value: str
    floor: str = ""  # the ratio to the floor
    target: str = ""


def _ratio(value: float | None, floor: float | None) -> str:
    if value is None or not floor:
        return ""
    return f"{value / floor:.1f}x"


def _kinds(counts: dict[str, int]) -> str:
    # Requests for a path rather than a resource are API discovery: one figure.
    shown = {k: n for k, n in counts.items() if not k.partition(" ")[2].startswith("/")}
    discovery = sum(counts.values()) - sum(shown.values())
    if discovery:
        shown["discovery"] = discovery
    return ", ".join(f"{kind} {count}" for kind, count in shown.items()) or "none"


def table(rows: dict[str, Any], settings: Settings) -> list[Line]:
    """The figures of `rows`, beside the floor and the targets."""
    lines: list[Line] = []
    floor = rows.get("floor", {})
    p50, tps = floor.get("p50_ms"), floor.get("tokens_per_second")
    limit = settings.max_concurrent_requests

    def error(row: str, data: dict[str, Any]) -> bool:
        if "error" in data:
            lines.append(Line(row, "error", str(data["error"])))
        return "error" in data

    if not error("a) floor", floor):
        lines += [
            Line("a) floor", "one issue p50 / p95", f"{p50:.1f} / {floor['p95_ms']:.1f} ms"),
            Line(
                "a) floor",
                "  p50 of POST / create / patch",
                f"{floor['token_post_p50_ms']:.1f} / {floor['secret_create_p50_ms']:.1f} / "
                f"{floor['status_patch_p50_ms']:.1f} ms",
            ),
            Line(
                "a) floor",
                f"throughput, {limit} at a time",
                f"{tps:.0f} tokens/s ({floor['throughput_tokens']} in "
                f"{floor['throughput_seconds']:.1f} s)",
            ),
        ]
    ttr = rows.get("time_to_ready", {})
    if not error("b) time to Ready", ttr):
        lines.append(
            Line(
                "b) time to Ready",
                f"p50 / p95 ({ttr['trials']} trials)",
                f"{ttr['p50_ms']:.1f} / {ttr['p95_ms']:.1f} ms",
                f"{_ratio(ttr['p50_ms'], p50)} / {_ratio(ttr['p95_ms'], floor.get('p95_ms'))}",
                "p50 ≤ 2x floor",
            )
        )
    bursts = {burst["tokens"]: burst for burst in rows.get("burst", [])}
    for size, burst in bursts.items():
        row = f"c) burst {size}"
        if error(row, burst):
            continue
        target = "≤ 60 s; ≤ 1.3x floor" if size == 5000 else "≤ 2x floor"
        lines += [
            Line(
                row,
                "all Ready",
                f"{burst['all_ready_seconds']:.1f} s ({burst['tokens_per_second']:.1f} tokens/s)",
                _ratio(tps, burst["tokens_per_second"]),
                target,
            ),
            Line(row, "token requests", str(burst["token_requests"]), "", f"{size}"),
            Line(
                row,
                "API requests",
                f"{burst['api_requests']} ({burst['api_requests_per_token']:.2f} per token)",
                "",
                "≤ 3 per token",
            ),
            Line(row, "  by kind", _kinds(burst["api_requests_by_kind"])),
            Line(
                row,
                "peak concurrent token requests",
                str(burst["peak_concurrent_token_requests"]),
                "",
                f"≤ {limit}",
            ),
            Line(
                row,
                "RSS before / after",
                f"{burst['rss_before_mib']:.0f} / {burst['rss_after_mib']:.0f} MiB "
                f"({burst['rss_per_token_kib']:.0f} KiB per token)",
                "",
                f"≤ {250 * MB_IN_MIB:.0f} MiB" if size == 5000 else "",
            ),
            Line(row, "operator CPU per issued token", f"{burst['cpu_ms_per_token']:.2f} ms"),
        ]
    small, large = bursts.get(1000, {}), bursts.get(max(bursts, default=0), {})
    if large is not small and "cpu_ms_per_token" in small and "cpu_ms_per_token" in large:
        lines.append(
            Line(
                f"c) {large['tokens']} vs 1000",
                "CPU per issued token",
                f"{large['cpu_ms_per_token'] / small['cpu_ms_per_token']:.2f}x",
                "",
                "≤ 1.25x",
            )
        )
    rss_target = f"≤ {250 * MB_IN_MIB:.0f} MiB (250 MB)"
    steady = rows.get("steady", {})
    if not error("d) steady", steady):
        row = f"d) steady {steady['tokens']}"
        lines += [
            Line(row, "RSS", f"{steady['rss_mib']:.0f} MiB", "", rss_target),
            Line(
                row,
                f"CPU over {steady['idle_seconds']:.0f} s idle",
                f"{steady['cpu_percent']:.1f} % of a core",
                "",
                "≤ 5 %",
            ),
            Line(
                row,
                "API requests while idle",
                f"{steady['api_requests']} ({_kinds(steady['api_requests_by_kind'])})",
                "",
                "0",
            ),
            Line(row, "token requests while idle", str(steady["token_requests"]), "", "0"),
        ]
    for restart in rows.get("restart", []):
        if not error("e) restart", restart):
            lines += _restart_lines(f"e) restart {restart['tokens']}", restart)
    # g) restarts the operator of the last e) restart, with its tokens: compared with it.
    last_restart: dict[str, Any] = (rows.get("restart") or [{}])[-1]
    for storm in rows.get("storm", []):
        if error("f) storm", storm):
            continue
        row = f"f) storm {storm['tokens']}"
        lines += [
            Line(
                row,
                "peak concurrent token requests",
                f"{storm['peak_concurrent_token_requests']} (limit {limit})",
                "",
                f"≤ {limit}",
            ),
            Line(
                row,
                "spread of refresh instants",
                f"{storm['refresh_spread_seconds']:.1f} s (p5-p95 "
                f"{storm['refresh_p5_p95_seconds']:.1f} s; due within "
                f"{storm['due_window_seconds']:.1f} s)",
            ),
            Line(
                row,
                f"all refreshed ({storm['latency_ms']:.0f} ms latency)",
                f"{storm['all_refreshed_seconds']:.1f} s (bound {storm['bound_seconds']:.1f} s, "
                f"{_ratio(storm['all_refreshed_seconds'], storm['bound_seconds'])} of it)",
                _ratio(storm["all_refreshed_seconds"], storm["tokens"] / tps) if tps else "",
                "≤ 2x bound",
            ),
            Line(row, "token requests", str(storm["token_requests"]), "", str(storm["tokens"])),
        ]
    unrelated = rows.get("unrelated_secrets", {})
    if not error("g) unrelated", unrelated):
        row = f"g) +{unrelated['secrets']} Secrets"
        again, idle = unrelated["restart"], unrelated["idle"]
        lines += _restart_lines(row, again)
        if "rss_mib" in last_restart:
            lines.append(
                Line(
                    row,
                    "RSS vs e)",
                    f"{again['rss_mib'] - last_restart['rss_mib']:+.0f} MiB",
                    "",
                    f"≤ +{20 * MB_IN_MIB:.0f} MiB (20 MB)",
                )
            )
        if again.get("all_looked_at_seconds") and last_restart.get("all_looked_at_seconds"):
            longer = again["all_looked_at_seconds"] / last_restart["all_looked_at_seconds"] - 1
            lines.append(Line(row, "restart vs e)", f"{longer * 100:+.0f} %", "", "≤ +10 %"))
        lines += [
            Line(
                row,
                f"CPU over {idle['idle_seconds']:.0f} s idle",
                f"{idle['cpu_percent']:.1f} % of a core",
                "",
                "≤ 5 %",
            ),
            Line(row, "API requests while idle", str(idle["api_requests"]), "", "0"),
        ]
    events = rows.get("events", {})
    if not error("i) per event", events):
        lines.append(Line("i) per event", "events/s of", " / ".join(KINDS)))
        for size, rates in events["sizes"].items():
            lines.append(
                Line(
                    f"i) events {size}",
                    "events per second",
                    " / ".join(f"{rates[kind] / 1000:.0f}k" for kind in KINDS),
                    "",
                    "flat from 1k to 10k",
                )
            )
    hour = rows.get("token_hour", {})
    if not error("h) token-hour", hour):
        row = f"h) {hour['tokens']} x {hour['lifetime_seconds']} s"
        per_refresh = hour["api_requests_per_refresh"]
        lines += [
            Line(
                row,
                "token requests per token-hour",
                f"{hour['requests_per_token_hour']:.0f} (fixed interval "
                f"{hour['fixed_interval_seconds']:.0f} s: "
                f"{hour['fixed_interval_requests_per_token_hour']:.0f})",
                f"{_ratio(hour['requests_per_token_hour'], hour['fixed_interval_requests_per_token_hour'])} fixed",  # noqa: E501
            ),
            Line(
                row,
                "least validity left at refresh",
                f"{hour['min_remaining_seconds']:.0f} s (mean "
                f"{hour['mean_remaining_seconds'] or 0:.1f} s, {hour['refreshes_seen']} refreshes)",
            ),
            Line(
                row,
                "API requests per refresh",
                "n/a" if per_refresh is None else f"{per_refresh:.2f}",
                "",
                "≤ 3",
            ),
            Line(row, "  by kind", _kinds(hour["api_requests_by_kind"])),
        ]
    lines += _spread_lines(rows.get("spread", []), small)
    lines += _shared_lines(rows.get("shared", {}), tps)
    lines += _capacity_lines(rows.get("capacity", []))
    return lines


def _spread_lines(spreads: list[dict[str, Any]], burst: dict[str, Any]) -> list[Line]:
    lines = []
    for spread in spreads:
        if "error" in spread:
            lines.append(Line("j) spread", "error", str(spread["error"])))
            continue
        row = f"j) {spread['tokens']} in {spread['namespaces']} ns"
        lines += [
            Line(
                row,
                f"all Ready, {spread['watched']}",
                f"{spread['all_ready_seconds']:.1f} s ({spread['tokens_per_second']:.1f} tokens/s)",
                f"{_ratio(spread['all_ready_seconds'], burst.get('all_ready_seconds'))} c)",
                "≤ 1.1x c) 1000",
            ),
            Line(
                row,
                "operator CPU per issued token",
                f"{spread['cpu_ms_per_token']:.2f} ms",
                f"{_ratio(spread['cpu_ms_per_token'], burst.get('cpu_ms_per_token'))} c)",
            ),
            Line(
                row,
                "first lists done / RSS",
                f"{spread['first_looks_seconds']:.1f} s / {spread['rss_mib']:.0f} MiB",
            ),
            Line(row, "  API requests", _kinds(spread["api_requests_by_kind"])),
        ]
    return lines


def _shared_lines(shared: dict[str, Any], tps: float | None) -> list[Line]:
    if "error" in shared:
        return [Line("k) shared", "error", str(shared["error"]))]
    if not shared:
        return []
    row = f"k) {shared['tokens']} in {shared['groups']} groups"
    groups = str(shared["groups"])
    return [
        Line(
            row,
            "all Ready",
            f"{shared['all_ready_seconds']:.1f} s ({shared['tokens_per_second']:.1f} tokens/s)",
            _ratio(tps, shared["tokens_per_second"]),
        ),
        Line(row, "token requests, burst", str(shared["burst_token_requests"]), "", groups),
        Line(
            row,
            f"token requests, a refresh round ({shared['lifetime_seconds']} s tokens)",
            f"{shared['round_token_requests']} (all taken over within "
            f"{shared['round_spread_seconds']:.1f} s)",
            "",
            groups,
        ),
    ]


def _capacity_lines(capacities: list[dict[str, Any]]) -> list[Line]:
    lines = []
    one: dict[str, Any] = {}
    for capacity in capacities:
        if "error" in capacity:
            lines.append(Line("l) capacity", "error", str(capacity["error"])))
            continue
        shards = capacity["shards"]
        one = one or capacity
        row = f"l) {capacity['tokens']} x {capacity['lifetime_seconds']} s, {shards} repl."
        lines += [
            Line(
                row,
                f"refreshes/s over {capacity['window_seconds']:.0f} s",
                f"{capacity['refreshes_per_second']:.1f} (due: "
                f"{capacity['demand_per_second']:.1f}; {capacity['cpu_cores']:.2f} cores)",
                f"{_ratio(capacity['refreshes_per_second'], one['refreshes_per_second'])} 1 repl."
                if shards > 1
                else "",
            ),
            Line(
                row,
                "validity left at refresh",
                f"least {capacity['min_left_seconds']:.1f} s, median "
                f"{capacity['median_left_seconds'] or 0:.1f} s; "
                f"{capacity['refreshed_after_expiry']} of {capacity['refreshes_seen']} "
                "after expiry",
            ),
        ]
    return lines


def _restart_lines(row: str, data: dict[str, Any]) -> list[Line]:
    looked = data["all_looked_at_seconds"]
    return [
        Line(row, "token requests", str(data["token_requests"]), "", "0"),
        Line(row, "status writes", str(data["status_writes"]), "", "0"),
        Line(
            row,
            "all looked at",
            f"{looked:.1f} s ({data['looked_at']} EgainTokens; healthy after "
            f"{data['healthy_seconds']:.1f} s)"
            if looked is not None
            else f"not said within the timeout ({data['tokens']} EgainTokens)",
            "",
            "≤ 30 s",
        ),
        Line(
            row,
            "API requests",
            f"{data['api_requests']} ({_kinds(data['api_requests_by_kind'])})",
        ),
        Line(
            row,
            "RSS after settling / peak",
            f"{data['rss_mib']:.0f} / {data['peak_rss_mib']:.0f} MiB",
        ),
    ]


def headline(description: dict[str, Any]) -> str:
    """When, where and what was measured, in two lines."""
    machine, versions = description["machine"], description["versions"]
    return (
        f"{description['date']}  {machine['nproc']} CPUs ({machine['cpu']}), "
        f"{machine['memory_mib']} MiB, load {machine['load_average_at_start'][0]:.2f}\n"
        f"operator {versions['operator']}, Python {versions['python']}, "
        f"Kubernetes {versions['kubernetes']}, kopf {versions['kopf']}"
    )


def render(lines: list[Line]) -> str:
    """The table as text, one figure a line."""
    header = Line("row", "figure", "value", "x floor", "target")
    columns = list(zip(*(dataclasses.astuple(line) for line in [header, *lines]), strict=True))
    widths = [max(len(cell) for cell in column) for column in columns[:2]]
    value_width = min(max(len(cell) for cell in columns[2]), 48)
    out = []
    for line in [header, *lines]:
        cells = dataclasses.astuple(line)
        out.append(
            f"{cells[0]:<{widths[0]}}  {cells[1]:<{widths[1]}}  {cells[2]:<{value_width}}  "
            f"{cells[3]:<9}  {cells[4]}".rstrip()
        )
    return "\n".join(out)
