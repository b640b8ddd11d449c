"""`python -m soak` (with `hack` on PYTHONPATH): one soak run; exits 1 when it failed."""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import soak
from soak.ground import Ground
from soak.plan import LIFETIMES, REPO
from soak.report import print_report
from soak.run import run


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak `argv` asks for, print and write its report; 1 when it failed."""
    assert soak.__doc__ is not None
    parser = argparse.ArgumentParser(prog="soak", description=soak.__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of faults")
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument(
        "--lifetimes",
        choices=sorted(LIFETIMES),
        default="lead",
        help="lead: 60-120 s tokens, judged through short faults; stress: 5-10 s",
    )
    parser.add_argument("--http-timeout", type=float, default=3.0)
    parser.add_argument(
        "--resource-every", type=float, default=60.0, help="seconds between resource samples"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", type=Path, default=Path("soak.json"), help="where to write")
    parser.add_argument("--state-dir", type=Path, default=REPO / ".testground" / "soak")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    rng = random.Random(args.seed)
    ground = Ground(args.state_dir, args.lifetimes, args.http_timeout, rng)
    try:
        ground.start(args.tokens)
        print(f"{len(ground.tokens)} tokens Ready; faults for {args.duration:.0f} s:", flush=True)
        report = run(ground, args, rng)
    finally:
        ground.stop()
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
