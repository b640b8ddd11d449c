"""The benchmark's table, from figures made up here: one renderer per row, errors shown.

No cluster: `tests/e2e/test_bench.py` runs the rows themselves.
"""

from __future__ import annotations

from typing import Any

from benchmark.events import KINDS, measure_size
from benchmark.profile import summary
from benchmark.report import Line, render, table
from benchmark.settings import Settings

KINDS_SEEN = {"patch egaintokens/status": 20, "create secrets": 20, "get /api": 3}


def _burst(size: int) -> dict[str, Any]:
    return {
        "tokens": size,
        "all_ready_seconds": 4.0,
        "tokens_per_second": size / 4,
        "events_posted_seconds": 4.5,
        "token_requests": size,
        "peak_concurrent_token_requests": 7,
        "api_requests": 3 * size,
        "api_requests_per_token": 3.0,
        "api_requests_by_kind": KINDS_SEEN,
        "cpu_ms_per_token": 2000 / size,
        "rss_before_mib": 50,
        "rss_after_mib": 70,
        "rss_per_token_kib": 4,
    }


def _restart(looked: float | None) -> dict[str, Any]:
    return {
        "tokens": 2000,
        "looked_at": 2000,
        "healthy_seconds": 1.2,
        "all_looked_at_seconds": looked,
        "status_writes": 0,
        "token_requests": 0,
        "api_requests": 12,
        "api_requests_by_kind": KINDS_SEEN,
        "rss_mib": 80,
        "peak_rss_mib": 90,
    }


def _capacity(shards: int, rate: float) -> dict[str, Any]:
    return {
        "tokens": 1000,
        "shards": shards,
        "lifetime_seconds": 12,
        "window_seconds": 60,
        "demand_per_second": 130,
        "refreshes_per_second": rate,
        "cpu_cores": 0.9,
        "refreshes_seen": 7000,
        "min_left_seconds": 1.0,
        "median_left_seconds": 3.0,
        "refreshed_after_expiry": 0,
    }


def _rows() -> dict[str, Any]:
    return {
        "floor": {
            "trials": 5,
            "p50_ms": 10.0,
            "p95_ms": 15.0,
            "token_post_p50_ms": 3.0,
            "secret_create_p50_ms": 4.0,
            "status_patch_p50_ms": 3.0,
            "throughput_tokens": 2000,
            "throughput_seconds": 5.0,
            "tokens_per_second": 400.0,
            "cpu_ms_per_issue": 1.25,
        },
        "time_to_ready": {
            "trials": 5,
            "p50_ms": 20.0,
            "p95_ms": 45.0,
            "create_p50_ms": 4.0,
            "after_create_p50_ms": 15.0,
        },
        "burst": [_burst(1000), _burst(2000)],
        "steady": {
            "tokens": 2000,
            "idle_seconds": 60,
            "rss_mib": 100,
            "cpu_percent": 1.5,
            "api_requests": 0,
            "api_requests_by_kind": {},
            "token_requests": 0,
        },
        "restart": [_restart(3.0)],
        "storm": [
            {
                "tokens": 1000,
                "token_requests": 1000,
                "peak_concurrent_token_requests": 16,
                "latency_ms": 50,
                "due_window_seconds": 2,
                "refresh_spread_seconds": 3,
                "refresh_p5_p95_seconds": 2.5,
                "all_refreshed_seconds": 4,
                "bound_seconds": 2.0,
            }
        ],
        "unrelated_secrets": {
            "secrets": 2000,
            "restart": _restart(3.3),
            "idle": {"idle_seconds": 60, "cpu_percent": 1.0, "api_requests": 0},
        },
        "events": {"sizes": {"1000": dict.fromkeys(KINDS, 250_000.0)}},
        "token_hour": {
            "tokens": 100,
            "lifetime_seconds": 30,
            "requests_per_token_hour": 180,
            "refreshes_seen": 590,
            "min_remaining_seconds": 8,
            "mean_remaining_seconds": 9.5,
            "fixed_interval_seconds": 22,
            "fixed_interval_requests_per_token_hour": 163.6,
            "api_requests_per_refresh": None,
            "api_requests_by_kind": KINDS_SEEN,
        },
        "spread": [
            {
                "tokens": 1000,
                "namespaces": 100,
                "watched": "cluster-wide",
                "first_looks_seconds": 1,
                "all_ready_seconds": 5,
                "tokens_per_second": 200,
                "cpu_ms_per_token": 2.1,
                "api_requests_by_kind": KINDS_SEEN,
                "rss_mib": 60,
            }
        ],
        "shared": {
            "tokens": 1000,
            "groups": 10,
            "lifetime_seconds": 60,
            "all_ready_seconds": 3,
            "tokens_per_second": 333,
            "burst_token_requests": 10,
            "round_token_requests": 10,
            "round_spread_seconds": 5.5,
        },
        "capacity": [_capacity(1, 100.0), _capacity(2, 150.0)],
        "hostile": {
            "forged": {
                "secrets": 40,
                "secret_kib": 700,
                "rss_before_mib": 100,
                "rss_after_mib": 101,
                "kib_per_secret": 25.6,
                "restart_all_looked_at_seconds": 4.2,
                "restart_peak_rss_mib": 120,
            },
            "hanging": {
                "hanging_tokens": 40,
                "in_flight_when_asked": 14,
                "neighbour_ms": 30.0,
                "neighbour_alone_ms": 20.0,
            },
            "hammering": {
                "window_seconds": 60,
                "forced_refreshes": 12,
                "token_requests": 2,
                "requests_per_minute": 2.0,
                "floor_seconds": 30,
                "floor_allows": 3,
                "budget_allows": 2,
            },
        },
    }


def _lines(rows: dict[str, Any], row: str) -> dict[str, Line]:
    return {line.figure: line for line in table(rows, Settings()) if line.row == row}


def test_every_row_has_its_lines_and_none_is_an_error() -> None:
    lines = table(_rows(), Settings())
    assert {line.row[0] for line in lines} == set("abcdefghijklm")
    assert [line for line in lines if line.figure == "error"] == []
    assert render(lines).splitlines()[0].split() == [
        "row",
        "figure",
        "value",
        "x",
        "floor",
        "target",
    ]


def test_figures_are_set_beside_the_floor_and_the_rows_they_are_compared_with() -> None:
    rows = _rows()
    ttr = _lines(rows, "b) time to Ready")
    assert ttr["p50 / p95 (5 trials)"].floor == "2.0x / 3.0x"
    after_create = ttr["  p50 after the create request returned"]
    assert (after_create.value, after_create.floor) == ("15.0 ms (the create: 4.0 ms)", "1.5x")
    assert _lines(rows, "c) 2000 vs 1000")["CPU per issued token"].value == "0.50x"
    cpu = _lines(rows, "c) burst 1000")["operator CPU per issued token"]
    assert (cpu.value, cpu.floor, cpu.target) == ("2.00 ms", "1.6x", "≤ 1.5x floor")
    assert _lines(rows, "c) burst 2000")["all Ready"].floor == "0.8x"
    assert _lines(rows, "c) burst 2000")["  every Event posted"].value == "4.5 s"
    assert _lines(rows, "g) +2000 Secrets")["restart vs e)"].value == "+10 %"
    two = _lines(rows, "l) 1000 x 12 s, 2 repl.")["refreshes/s over 60 s"]
    assert two.floor == "1.5x 1 repl."
    assert _lines(rows, "h) 100 x 30 s")["API requests per refresh"].value == "n/a"
    hostile = _lines(rows, "m) hostile")
    assert hostile["neighbour's time to Ready, 40 requests hanging"].floor == "1.5x alone"
    hammer = hostile["hammering token: requests in 60 s"]
    assert hammer.target == "≤ 2 (floor 30 s: 3; budget: 2)"


def test_the_per_event_row_times_every_kind() -> None:
    rates = measure_size(50)
    assert sorted(rates) == sorted(KINDS)
    assert all(rate > 0 for rate in rates.values())


def test_a_failed_row_shows_its_error_and_the_others_still_render() -> None:
    rows = _rows()
    rows["floor"] = {"error": "HTTP 500: refused"}
    rows["burst"][1] = {"tokens": 2000, "error": "2000 EgainTokens Ready: not after 900 s"}
    rows["capacity"][0] = {"error": "gone"}
    rows["shared"] = {}  # a row not run renders nothing
    lines = table(rows, Settings())
    errors = [(line.row, line.value) for line in lines if line.figure == "error"]
    assert errors == [
        ("a) floor", "HTTP 500: refused"),
        ("c) burst 2000", "2000 EgainTokens Ready: not after 900 s"),
        ("l) capacity", "gone"),
    ]
    assert _lines(rows, "b) time to Ready")["p50 / p95 (5 trials)"].floor == " / "
    assert not [line for line in lines if line.row.startswith("k)")]


def test_a_profile_shows_the_operators_steps_and_where_the_samples_ended() -> None:
    raw = [
        "_run (asyncio/events.py);fetch_token (egain_token_operator/egain/transport.py);"
        "do_handshake (ssl.py) 6",
        "_run (asyncio/events.py);fetch_token (egain_token_operator/egain/transport.py);"
        "loads (json/__init__.py) 1",
        "_run (asyncio/events.py);create_secret (egain_token_operator/kube/adapter.py);"
        "loads (json/__init__.py) 3",
        "not a stack line",
    ]
    profile = summary(raw)
    assert profile["samples"] == 10
    assert profile["operator"] == [
        ("fetch_token (egain_token_operator/egain/transport.py)", 0.7),
        ("create_secret (egain_token_operator/kube/adapter.py)", 0.3),
    ]
    assert profile["leaves"] == [("do_handshake (ssl.py)", 0.6), ("loads (json/__init__.py)", 0.4)]
    rows = _rows()
    rows["burst"][0]["profile"] = {**profile, "file": "profile.txt"}
    lines = [line.value for line in table(rows, Settings()) if line.row == "c) burst 1000"]
    assert "10 busy samples: profile.txt" in lines
    assert "70% fetch_token (egain_token_operator/egain/transport.py)" in lines
    assert "60% do_handshake (ssl.py)" in lines
