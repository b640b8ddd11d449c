"""`make bench` still runs: every row, at a tiny size, with figures that make sense.

The figures themselves are not judged (the benchmark asserts nothing about
speed); what is checked is that each row ran to its end and measured what it
says, and that nothing the benchmark started is left running.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.record import ROWS, run
from benchmark.report import render, table
from benchmark.settings import Settings
from testground.controlplane import ControlPlane

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]

TOKENS = 20
SETTINGS = Settings(
    tokens=TOKENS,
    trials=5,
    idle_seconds=2,
    settle_seconds=0.5,
    storm_lead=4,
    short_lifetime=6,
    short_seconds=8,
    spread_namespaces=4,
    spread_listed=2,
    shared_groups=2,
    shared_lifetime=8,
    capacity_lifetime=6,
    capacity_seconds=4,
    forged_secrets=4,
    forged_kib=64,
    hanging_tokens=8,
    hammer_seconds=4,
    hammer_force_every=1,
    timeout=120,
    profile=True,
)


def _processes_naming(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended meanwhile
            continue
        if text in command:
            found.append(command)
    return found


def test_bench_runs_every_row(control_plane: ControlPlane, tmp_path: Path) -> None:
    result = run(control_plane, SETTINGS, tmp_path)
    json.dumps(result)  # what bench.json holds
    rows = result["rows"]
    assert sorted(rows) == sorted(ROWS)
    errors = {name: row for name, row in rows.items() if "error" in row}
    assert not errors
    assert {"nproc", "memory_mib"} <= result["machine"].keys()
    assert {"operator", "python", "kubernetes"} <= result["versions"].keys()
    assert result["settings"]["tokens"] == TOKENS

    floor = rows["floor"]
    assert floor["trials"] == 5
    assert 0 < floor["p50_ms"] <= floor["p95_ms"]
    assert floor["token_post_p50_ms"] > 0 and floor["status_patch_p50_ms"] > 0
    assert floor["throughput_tokens"] == TOKENS and floor["tokens_per_second"] > 0

    ready = rows["time_to_ready"]
    assert ready["trials"] == 5
    assert 0 < ready["p50_ms"] <= ready["p95_ms"] <= ready["max_ms"]
    assert ready["create_p50_ms"] > 0 and 0 < ready["after_create_p50_ms"] < ready["max_ms"]

    (burst,) = rows["burst"]  # 1,000 and TOKENS are one size here
    assert burst["tokens"] == TOKENS
    assert burst["token_requests"] == TOKENS  # one per token, nothing failed
    assert 1 <= burst["peak_concurrent_token_requests"] <= SETTINGS.max_concurrent_requests
    assert burst["api_requests_by_kind"]["patch egaintokens/status"] >= TOKENS
    assert burst["all_ready_seconds"] > 0
    # Every token's TokenIssued Event posted before the burst's figures are taken...
    assert burst["api_requests_by_kind"]["create events"] == TOKENS
    assert burst["events_posted_seconds"] >= burst["all_ready_seconds"]
    assert burst["cpu_ms_per_token"] > 0
    assert floor["cpu_ms_per_issue"] > 0  # its own process's
    profile = burst["profile"]  # py-spy sampled the operator through the burst
    assert Path(profile["file"]).is_file() and profile["samples"] > 0
    assert any("egain_token_operator/" in frame for frame, _ in profile["operator"])

    steady = rows["steady"]
    assert steady["tokens"] == TOKENS
    assert steady["rss_mib"] > 10
    assert steady["cpu_percent"] >= 0
    assert steady["token_requests"] == 0
    assert "create events" not in steady["api_requests_by_kind"]  # ...none left for d)

    (restarted,) = rows["restart"]  # no 5,000 burst here
    for restart in (restarted, rows["unrelated_secrets"]["restart"]):
        assert restart["looked_at"] == restart["tokens"] == TOKENS
        # Both from the operator's start; every token may be looked at
        # before the health endpoint is polled as answering.
        assert restart["all_looked_at_seconds"] > 0 and restart["healthy_seconds"] > 0
        assert restart["token_requests"] == 0  # the tokens were valid
        assert restart["status_writes"] == 0  # and their statuses current
        assert 10 < restart["rss_mib"] <= restart["peak_rss_mib"]
    assert rows["unrelated_secrets"]["secrets"] == TOKENS
    assert rows["unrelated_secrets"]["idle"]["idle_seconds"] >= 2

    (storm,) = rows["storm"]  # 1,000 and TOKENS are one size here
    assert storm["token_requests"] == TOKENS  # one refresh each, all at the storm
    assert 1 <= storm["peak_concurrent_token_requests"] <= SETTINGS.max_concurrent_requests
    assert 0 <= storm["refresh_spread_seconds"] <= storm["all_refreshed_seconds"]

    hour = rows["token_hour"]
    assert hour["refreshes_seen"] > 0 and hour["token_requests"] > 0
    assert 0 < hour["min_remaining_seconds"] < SETTINGS.short_lifetime
    assert hour["fixed_interval_seconds"] == SETTINGS.short_lifetime - hour["min_remaining_seconds"]
    assert hour["requests_per_token_hour"] > 0
    # Its window counts the refreshes' Events, none of the first tokens'.
    kinds = hour["api_requests_by_kind"]
    assert kinds.get("create events", 0) <= kinds["patch egaintokens/status"]

    events = rows["events"]["sizes"]
    assert sorted(events, key=int) == [str(size) for size in SETTINGS.event_sizes]
    assert all(rate > 0 for rates in events.values() for rate in rates.values())

    wide, listed = rows["spread"]
    assert (wide["watched"], wide["namespaces"]) == ("cluster-wide", 4)
    assert (listed["watched"], listed["namespaces"]) == ("listed", 2)
    for spread in (wide, listed):
        assert spread["tokens"] == spread["token_requests"] == TOKENS
        assert spread["all_ready_seconds"] > 0 and spread["cpu_ms_per_token"] > 0

    shared = rows["shared"]
    assert (shared["tokens"], shared["groups"]) == (TOKENS, 2)
    assert shared["burst_token_requests"] == 2  # one per group
    assert shared["round_token_requests"] == 2  # and one per group at the refresh

    one, two = rows["capacity"]
    assert (one["shards"], two["shards"]) == (1, 2)
    for capacity in (one, two):
        assert capacity["tokens"] == TOKENS and capacity["refreshes_per_second"] > 0
        assert capacity["refreshes_seen"] > 0

    hostile = rows["hostile"]
    forged, hanging, hammer = hostile["forged"], hostile["hanging"], hostile["hammering"]
    assert forged["secrets"] == 4 and forged["rss_after_mib"] > 10
    assert forged["restart_peak_rss_mib"] > 10 and forged["restart_all_looked_at_seconds"] > 0
    assert hanging["hanging_tokens"] == 8 and hanging["in_flight_when_asked"] >= 4
    assert hanging["neighbour_alone_ms"] > 0 and hanging["neighbour_ms"] > 0
    assert hammer["forced_refreshes"] >= 4 and hammer["token_requests"] >= 1
    assert (hammer["floor_seconds"], hammer["budget_allows"]) == (30, SETTINGS.hammer_budget)

    lines = table(rows, SETTINGS)
    assert [line for line in lines if line.figure == "error"] == []
    assert {line.row[0] for line in lines} == set("abcdefghijklm")
    assert "all looked at" in render(lines)
    assert _processes_naming(str(tmp_path)) == []  # every operator was stopped
