"""`make bench`: the operator measured against the physical floor. Prints figures, asserts nothing.

Starts a local cluster, the eGain emulator and the operator as local
processes, runs every row of docs/benchmarks.md at `--tokens` EgainTokens,
prints one table and writes it, with the date, machine, versions and
settings, as JSON (`bench.json` in the working directory). Everything it
starts is stopped at the end, also after a failure, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
from pathlib import Path

from benchmark.record import run
from benchmark.report import headline, render, table
from benchmark.settings import Settings
from testground import controlplane

REPO = Path(__file__).resolve().parents[1]


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings the flags ask for."""
    return Settings(
        tokens=args.tokens,
        trials=args.trials,
        idle_seconds=args.idle_seconds,
        settle_seconds=args.settle_seconds,
        max_concurrent_requests=args.max_concurrent_requests,
        unrelated_kib=args.unrelated_kib,
        storm_tokens=args.storm_tokens,
        storm_lead=args.storm_lead,
        storm_latency=args.storm_latency,
        short_tokens=args.short_tokens,
        short_lifetime=args.short_lifetime,
        short_seconds=args.short_seconds,
        timeout=args.timeout,
        profile=args.profile,
    )


def parser() -> argparse.ArgumentParser:
    """The command line."""
    defaults = Settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--tokens", type=int, default=defaults.tokens, help="EgainTokens in c), d), e), g)")
    add("--trials", type=int, default=defaults.trials, help="trials in a) and b)")
    add("--idle-seconds", type=float, default=defaults.idle_seconds, help="d) and g) window")
    add("--settle-seconds", type=float, default=defaults.settle_seconds,
        help="wait after a restart before its RSS is read")  # fmt: skip
    add("--max-concurrent-requests", type=int, default=defaults.max_concurrent_requests,
        help="the operator's limit, and the floor's")  # fmt: skip
    add("--unrelated-kib", type=int, default=defaults.unrelated_kib, help="g) Secret size")
    add("--storm-tokens", type=int, default=defaults.storm_tokens, help="f) size (≤ --tokens)")
    add("--storm-lead", type=float, default=defaults.storm_lead, help="f) refreshBefore, s")
    add("--storm-latency", type=float, default=defaults.storm_latency,
        help="f) latency of each token answer, s")  # fmt: skip
    add("--short-tokens", type=int, default=defaults.short_tokens, help="h) size (≤ --tokens)")
    add("--short-lifetime", type=int, default=defaults.short_lifetime, help="h) lifetime, s")
    add("--short-seconds", type=float, default=defaults.short_seconds, help="h) window, s")
    add("--timeout", type=float, default=defaults.timeout, help="longest wait of any row, s")
    add("--profile", action="store_true",
        help="sample each c) burst's operator with py-spy (docs/benchmarks.md)")  # fmt: skip
    add("--output", type=Path, default=Path("bench.json"), help="where the JSON goes")
    add("--state-dir", type=Path, default=REPO / ".testground" / "bench")
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so that SIGTERM cleans up as Ctrl-C does


def main() -> None:
    args = parser().parse_args()
    settings = settings_from(args)
    signal.signal(signal.SIGTERM, _interrupt)
    cluster_dir = args.state_dir / "cluster"
    try:
        plane = controlplane.start(cluster_dir)
        result = run(plane, settings, args.state_dir)
    except KeyboardInterrupt:
        print("interrupted: stopping everything", file=sys.stderr)
        sys.exit(130)
    finally:
        controlplane.stop(cluster_dir)
    # The figures first: they are kept even if the table cannot be drawn.
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    lines = table(result["rows"], settings)
    result["table"] = [dataclasses.asdict(line) for line in lines]
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.output}", file=sys.stderr)
    print(headline(result))
    print(render(lines))
    print(f"the rows took {result['rows_seconds']:.0f} s")


if __name__ == "__main__":
    main()
