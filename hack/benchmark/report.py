"""The table of a run's figures: each beside its ratio to the physical floor where one
makes sense, and its target from issue 10. One renderer per row.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from benchmark.events import KINDS
from benchmark.settings import Settings

MB_IN_MIB = 1e6 / 2**20
RSS_TARGET = f"≤ {250 * MB_IN_MIB:.0f} MiB (250 MB)"


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


Row = dict[str, Any]  # one row's figures, as `benchmark.record` keeps them


def table(rows: dict[str, Any], settings: Settings) -> list[Line]:
    """The figures of `rows`, beside the floor and the targets."""
    floor: Row = rows.get("floor", {})
    tps: float | None = floor.get("tokens_per_second")
    limit = settings.max_concurrent_requests
    bursts: dict[int, Row] = {burst["tokens"]: burst for burst in rows.get("burst", [])}
    cpu_floor: float | None = floor.get("cpu_ms_per_issue")
    burst_lines = functools.partial(_burst, tps=tps, cpu_floor=cpu_floor, limit=limit)
    restarts: list[Row] = rows.get("restart", [])
    # g) restarts the operator of the last e) restart, with its tokens: compared with it.
    last_restart: Row = (restarts or [{}])[-1]
    capacities: list[Row] = rows.get("capacity", [])
    one_replica = next((c for c in capacities if "error" not in c), {})
    return [
        *_checked("a) floor", floor, functools.partial(_floor, limit=limit)),
        *_checked(
            "b) time to Ready",
            rows.get("time_to_ready", {}),
            functools.partial(_time_to_ready, floor=floor),
        ),
        *(
            line
            for size, burst in bursts.items()
            for line in _checked(f"c) burst {size}", burst, burst_lines)
        ),
        *_burst_comparison(bursts),
        *_checked("d) steady", rows.get("steady", {}), _steady),
        *_each("e) restart", restarts, _restart),
        *_each("f) storm", rows.get("storm", []), functools.partial(_storm, tps=tps, limit=limit)),
        *_checked(
            "g) unrelated",
            rows.get("unrelated_secrets", {}),
            functools.partial(_unrelated, restart=last_restart),
        ),
        *_checked("i) per event", rows.get("events", {}), _events),
        *_checked("h) token-hour", rows.get("token_hour", {}), _token_hour),
        *_each(
            "j) spread",
            rows.get("spread", []),
            functools.partial(_spread, burst=bursts.get(1000, {})),
        ),
        *_checked("k) shared", rows.get("shared", {}), functools.partial(_shared, tps=tps)),
        *_each("l) capacity", capacities, functools.partial(_capacity, one=one_replica)),
        *_checked("m) hostile", rows.get("hostile", {}), _hostile),
    ]


def _checked(row: str, data: Row, lines: Callable[[Row], list[Line]]) -> list[Line]:
    """`lines(data)`, or the error a row that failed recorded."""
    if "error" in data:
        return [Line(row, "error", str(data["error"]))]
    return lines(data)


def _each(row: str, figures: Iterable[Row], lines: Callable[[Row], list[Line]]) -> list[Line]:
    """`_checked` of each of `figures` (a row run more than once), in order."""
    return [line for data in figures for line in _checked(row, data, lines)]


def _floor(floor: Row, limit: int) -> list[Line]:
    """a) The floor: one issue, its parts, and the throughput of `limit` at a time."""
    return [
        Line(
            "a) floor", "one issue p50 / p95", f"{floor['p50_ms']:.1f} / {floor['p95_ms']:.1f} ms"
        ),
        Line(
            "a) floor",
            "  p50 of POST / create / patch",
            f"{floor['token_post_p50_ms']:.1f} / {floor['secret_create_p50_ms']:.1f} / "
            f"{floor['status_patch_p50_ms']:.1f} ms",
        ),
        Line(
            "a) floor",
            f"throughput, {limit} at a time",
            f"{floor['tokens_per_second']:.0f} tokens/s ({floor['throughput_tokens']} in "
            f"{floor['throughput_seconds']:.1f} s)",
        ),
        Line("a) floor", "  CPU per issue (own process)", f"{floor['cpu_ms_per_issue']:.2f} ms"),
    ]


def _time_to_ready(ttr: Row, floor: Row) -> list[Line]:
    """b) Time to Ready, against one issue of the floor."""
    return [
        Line(
            "b) time to Ready",
            f"p50 / p95 ({ttr['trials']} trials)",
            f"{ttr['p50_ms']:.1f} / {ttr['p95_ms']:.1f} ms",
            f"{_ratio(ttr['p50_ms'], floor.get('p50_ms'))} / "
            f"{_ratio(ttr['p95_ms'], floor.get('p95_ms'))}",
            "p50 ≤ 1.3x floor",
        ),
        Line(
            "b) time to Ready",
            "  p50 after the create request returned",
            f"{ttr['after_create_p50_ms']:.1f} ms (the create: {ttr['create_p50_ms']:.1f} ms)",
            _ratio(ttr["after_create_p50_ms"], floor.get("p50_ms")),
        ),
    ]


def _burst(burst: Row, tps: float | None, cpu_floor: float | None, limit: int) -> list[Line]:
    """c) One burst, against the floor's throughput (`tps`) and CPU per issue (`cpu_floor`)."""
    size = burst["tokens"]
    row = f"c) burst {size}"
    return [
        Line(
            row,
            "all Ready",
            f"{burst['all_ready_seconds']:.1f} s ({burst['tokens_per_second']:.1f} tokens/s)",
            _ratio(tps, burst["tokens_per_second"]),
            "≤ 1.3x floor",
        ),
        # The Events' lane gives way to the writes that make tokens Ready.
        Line(row, "  every Event posted", f"{burst['events_posted_seconds']:.1f} s"),
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
            f"≤ {250 * MB_IN_MIB:.0f} MiB; ≤ 10 KiB per token at 10000",
        ),
        Line(
            row,
            "operator CPU per issued token",
            f"{burst['cpu_ms_per_token']:.2f} ms",
            _ratio(burst["cpu_ms_per_token"], cpu_floor),
            "≤ 1.5x floor",
        ),
        *_profile(row, burst.get("profile")),
    ]


def _profile(row: str, profile: Row | None) -> list[Line]:
    """c) With `--profile`: the top entries of the burst's samples (`benchmark.profile`)."""
    if not profile:
        return []
    lines = [Line(row, "profile", f"{profile['samples']} busy samples: {profile['file']}")]
    for title, key in (("on the stack", "operator"), ("spent in", "leaves")):
        lines += [Line(row, f"  {title}", f"{share:.0%} {frame}") for frame, share in profile[key]]
    return lines


def _burst_comparison(bursts: dict[int, Row]) -> list[Line]:
    """c) CPU per issued token of the largest burst against the burst of 1,000."""
    small, large = bursts.get(1000, {}), bursts.get(max(bursts, default=0), {})
    if large is small or "cpu_ms_per_token" not in small or "cpu_ms_per_token" not in large:
        return []
    return [
        Line(
            f"c) {large['tokens']} vs 1000",
            "CPU per issued token",
            f"{large['cpu_ms_per_token'] / small['cpu_ms_per_token']:.2f}x",
            "",
            "≤ 1.25x",
        )
    ]


def _steady(steady: Row) -> list[Line]:
    """d) The steady state."""
    row = f"d) steady {steady['tokens']}"
    return [
        Line(row, "RSS", f"{steady['rss_mib']:.0f} MiB", "", RSS_TARGET),
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


def _restart(restart: Row) -> list[Line]:
    """e) One restart."""
    return _restart_lines(f"e) restart {restart['tokens']}", restart)


def _storm(storm: Row, tps: float | None, limit: int) -> list[Line]:
    """f) One storm, against its bound and the floor's throughput (`tps`)."""
    row = f"f) storm {storm['tokens']}"
    return [
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


def _unrelated(unrelated: Row, restart: Row) -> list[Line]:
    """g) The restart and idle window with unrelated Secrets, against e)'s `restart`."""
    row = f"g) +{unrelated['secrets']} Secrets"
    again, idle = unrelated["restart"], unrelated["idle"]
    lines = _restart_lines(row, again)
    if "rss_mib" in restart:
        lines.append(
            Line(
                row,
                "RSS vs e)",
                f"{again['rss_mib'] - restart['rss_mib']:+.0f} MiB",
                "",
                f"≤ +{20 * MB_IN_MIB:.0f} MiB (20 MB)",
            )
        )
    if again.get("all_looked_at_seconds") and restart.get("all_looked_at_seconds"):
        longer = again["all_looked_at_seconds"] / restart["all_looked_at_seconds"] - 1
        lines.append(Line(row, "restart vs e)", f"{longer * 100:+.0f} %", "", "≤ +10 %"))
    return [
        *lines,
        Line(
            row,
            f"CPU over {idle['idle_seconds']:.0f} s idle",
            f"{idle['cpu_percent']:.1f} % of a core",
            "",
            "≤ 5 %",
        ),
        Line(row, "API requests while idle", str(idle["api_requests"]), "", "0"),
    ]


def _events(events: Row) -> list[Line]:
    """i) Events per second of each kind, at each fleet size."""
    return [
        Line("i) per event", "events/s of", " / ".join(KINDS)),
        *(
            Line(
                f"i) events {size}",
                "events per second",
                " / ".join(f"{rates[kind] / 1000:.0f}k" for kind in KINDS),
                "",
                "flat from 1k to 10k",
            )
            for size, rates in events["sizes"].items()
        ),
    ]


def _token_hour(hour: Row) -> list[Line]:
    """h) Requests per token-hour, against a fixed-interval refresher."""
    row = f"h) {hour['tokens']} x {hour['lifetime_seconds']} s"
    per_refresh = hour["api_requests_per_refresh"]
    fixed = hour["fixed_interval_requests_per_token_hour"]
    return [
        Line(
            row,
            "token requests per token-hour",
            f"{hour['requests_per_token_hour']:.0f} (fixed interval "
            f"{hour['fixed_interval_seconds']:.0f} s: {fixed:.0f})",
            f"{_ratio(hour['requests_per_token_hour'], fixed)} fixed",
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


def _spread(spread: Row, burst: Row) -> list[Line]:
    """j) One spread burst, against the burst of 1,000 (`burst`)."""
    row = f"j) {spread['tokens']} in {spread['namespaces']} ns"
    return [
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


def _shared(shared: Row, tps: float | None) -> list[Line]:
    """k) Shared tokens, against the floor's throughput (`tps`)."""
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


def _capacity(capacity: Row, one: Row) -> list[Line]:
    """l) The capacity of `capacity['shards']` replicas, against `one`'s."""
    shards = capacity["shards"]
    row = f"l) {capacity['tokens']} x {capacity['lifetime_seconds']} s, {shards} repl."
    return [
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


def _hostile(hostile: Row) -> list[Line]:
    """m) Hostile tenants: forged Secrets, hanging requests, a hammering token."""
    if not hostile:
        return []
    forged, hanging, hammer = hostile["forged"], hostile["hanging"], hostile["hammering"]
    looked = forged["restart_all_looked_at_seconds"]
    return [
        Line(
            "m) hostile",
            f"RSS per forged Secret ({forged['secrets']} x {forged['secret_kib']} KiB)",
            f"{forged['kib_per_secret']:.1f} KiB ({forged['rss_before_mib']:.0f} -> "
            f"{forged['rss_after_mib']:.0f} MiB)",
            "",
            "its metadata, not its data",
        ),
        Line(
            "m) hostile",
            "  restart among them: peak RSS, all looked at",
            f"{forged['restart_peak_rss_mib']:.0f} MiB, "
            + (f"{looked:.1f} s" if looked is not None else "not said within the timeout"),
        ),
        Line(
            "m) hostile",
            f"neighbour's time to Ready, {hanging['hanging_tokens']} requests hanging",
            f"{hanging['neighbour_ms']:.0f} ms ({hanging['in_flight_when_asked']} in flight)",
            _ratio(hanging["neighbour_ms"], hanging["neighbour_alone_ms"]) + " alone",
            "≤ 1 s",
        ),
        Line(
            "m) hostile",
            f"hammering token: requests in {hammer['window_seconds']:.0f} s",
            f"{hammer['token_requests']} ({hammer['requests_per_minute']:.1f}/min; "
            f"{hammer['forced_refreshes']} forced)",
            "",
            f"≤ {min(hammer['floor_allows'], hammer['budget_allows'])} (floor "
            f"{hammer['floor_seconds']:.0f} s: {hammer['floor_allows']}; budget: "
            f"{hammer['budget_allows']})",
        ),
    ]


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
