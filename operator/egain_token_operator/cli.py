"""`egain-token-operator run [flags]`; `status`, `renew` and `check` are in `ctl`."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Sequence

import kopf

from egain_token_operator import handlers
from egain_token_operator.ctl import main as ctl
from egain_token_operator.settings import Settings, parse_settings

# Loggers that would print every request URL at INFO; ours say what matters.
_QUIET_LOGGERS = ("httpx", "httpcore", "aiohttp.access")


def configure_logging(settings: Settings) -> None:
    """Text or JSON lines on stderr, at the configured level."""
    log_format = kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(log_format=log_format, log_prefix=settings.log_format == "text")
    logging.getLogger().setLevel(settings.log_level.upper())
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


async def run(settings: Settings) -> None:
    """Run the operator until it is told to stop."""
    await kopf.operator(
        registry=handlers.registry,
        memo=kopf.Memo(config=settings),
        clusterwide=settings.clusterwide,
        namespaces=settings.namespaces,
        # Replicas elect their leader with a Lease (see leader.py), not kopf peering,
        # which pauses kopf's own processing but not the workers of this operator.
        standalone=True,
        liveness_endpoint=settings.health_address.url("/healthz"),
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: `run`, or one of the commands of `ctl`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ctl.COMMANDS:
        sys.exit(ctl.main(args))
    settings = parse_settings(args)
    configure_logging(settings)
    logging.getLogger(__name__).info(
        "starting: namespaces=%s allowed token hosts=%s",
        ",".join(settings.namespaces) or "all",
        settings.allowed_token_hosts,
    )
    _tune_garbage_collection()
    asyncio.run(run(settings))


def _tune_garbage_collection() -> None:
    """Keep the collector off what lives as long as the process, and run it less often.

    What the imports made (the API client's thousands of model classes, kopf,
    the settings) is moved out of the collector's sight (`gc.freeze`): it would
    otherwise be traversed again at every full collection. The youngest
    generation is collected after 10,000 net allocations instead of 700: a
    token request, a Secret write and a status patch allocate thousands of
    objects that reference counting frees, and collecting every few hundred
    took 0.49 s of the 6.5 s of CPU a burst of 1,000 new tokens cost (0.06 s
    after; docs/benchmarks.md). Cycles are still collected; at most a few MiB
    of them wait a little longer.
    """
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
