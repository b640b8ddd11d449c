"""Operator settings: command-line flags, each with an environment variable twin.

A flag given on the command line wins over its environment variable, which
wins over the default. Every value is validated here, once (each by its
`flagtypes` parser), so the rest of the operator works with one typed,
trustworthy `Settings` object.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from egain_token_operator import flagtypes
from egain_token_operator.decisions.hosts import HostAllowList
from egain_token_operator.decisions.schedule import RetryPolicy
from egain_token_operator.flagtypes import Address

ENV_PREFIX = "EGAIN_OPERATOR_"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the operator can be told at start-up."""

    namespaces: tuple[str, ...]
    # Label selector of the EgainTokens served (a shard); "": all of them.
    selector: str
    allowed_token_hosts: HostAllowList
    ca_bundle: Path | None
    default_token_lifetime: float
    max_concurrent_requests: int
    metrics_address: Address
    health_address: Address
    log_format: str
    log_level: str
    http_timeout: float
    refresh_jitter: float
    # Seconds a Secret update may take to reach Pods that mount it; 0: none.
    propagation_allowance: float
    retry_initial_delay: float
    retry_max_delay: float
    permanent_failure_retry_delay: float
    rollout_restarts: bool
    rollout_restart_min_interval: float
    # (namespace, name) of the Lease replicas elect their leader with; None: no election.
    leader_election_lease: tuple[str, str] | None
    # Where ClusterEgainClients' credentials Secrets are; None: the operator's own
    # namespace (`kube.config.load_api_client` tells it).
    cluster_resource_namespace: str | None = None

    @property
    def clusterwide(self) -> bool:
        """True when no namespace is named: the operator serves them all."""
        return not self.namespaces


class ScheduleSettings(Protocol):
    """The settings the schedule is tuned by: `Settings`, or parsed flags that hold them."""

    @property
    def refresh_jitter(self) -> float: ...
    @property
    def retry_initial_delay(self) -> float: ...
    @property
    def retry_max_delay(self) -> float: ...
    @property
    def permanent_failure_retry_delay(self) -> float: ...
    @property
    def propagation_allowance(self) -> float: ...


def retry_policy(settings: ScheduleSettings) -> RetryPolicy:
    """The schedule tunables from the operator settings."""
    return RetryPolicy(
        refresh_jitter=settings.refresh_jitter,
        initial_delay=timedelta(seconds=settings.retry_initial_delay),
        max_delay=timedelta(seconds=settings.retry_max_delay),
        permanent_delay=timedelta(seconds=settings.permanent_failure_retry_delay),
        propagation_allowance=timedelta(seconds=settings.propagation_allowance),
    )


# (flag, environment variable suffix, parser, default, help)
_OPTIONS: tuple[tuple[str, str, Callable[[str], Any], str, str], ...] = (
    (
        "--selector",
        "SELECTOR",
        str.strip,
        "",
        "label selector of the EgainTokens served, e.g. 'shard=a' or 'tier in (gold)'; "
        "releases with disjoint selectors share namespaces without touching each other's "
        "tokens",
    ),
    (
        "--allowed-token-hosts",
        "ALLOWED_TOKEN_HOSTS",
        flagtypes.hosts,
        "*.egain.cloud",
        "comma-separated hosts token URLs may point at ('*.' wildcards, optional ':port')",
    ),
    (
        "--ca-bundle",
        "CA_BUNDLE",
        flagtypes.ca_bundle,
        "",
        "PEM file of CAs trusted for token endpoints, on top of the system trust store",
    ),
    (
        "--default-token-lifetime",
        "DEFAULT_TOKEN_LIFETIME",
        flagtypes.positive(float),
        "3600",
        "seconds a token is taken to live when the response has no expires_in",
    ),
    (
        "--max-concurrent-requests",
        "MAX_CONCURRENT_REQUESTS",
        flagtypes.positive(int),
        "16",
        "token requests in flight at once, across all EgainTokens",
    ),
    (
        "--metrics-address",
        "METRICS_ADDRESS",
        flagtypes.address,
        "0.0.0.0:8080",
        "Prometheus /metrics",
    ),
    (
        "--health-address",
        "HEALTH_ADDRESS",
        flagtypes.address,
        "0.0.0.0:8081",
        "liveness probe /healthz",
    ),
    ("--log-format", "LOG_FORMAT", str, "text", "text or json"),
    ("--log-level", "LOG_LEVEL", str, "info", "debug, info, warning or error"),
    (
        "--http-timeout",
        "HTTP_TIMEOUT",
        flagtypes.positive(float),
        "10",
        "seconds per token request",
    ),
    (
        "--refresh-jitter",
        "REFRESH_JITTER",
        flagtypes.fraction,
        "0.1",
        "up to this fraction of refreshBefore (or of the propagation allowance, when that "
        "wins) is taken off each refresh time at random",
    ),
    (
        "--propagation-allowance",
        "PROPAGATION_ALLOWANCE",
        flagtypes.non_negative,
        "120",
        "seconds a token update may take to reach Pods that mount the Secret (the kubelet "
        "sync loop); each token is refreshed at least this long before it expires, unless "
        "that would come before half its lifetime (0: no allowance)",
    ),
    (
        "--retry-initial-delay",
        "RETRY_INITIAL_DELAY",
        flagtypes.positive(float),
        "1",
        "seconds before the first retry of a transient failure",
    ),
    (
        "--retry-max-delay",
        "RETRY_MAX_DELAY",
        flagtypes.positive(float),
        "300",
        "cap, in seconds, of the exponential backoff of transient failures",
    ),
    (
        "--permanent-failure-retry-delay",
        "PERMANENT_FAILURE_RETRY_DELAY",
        flagtypes.positive(float),
        "600",
        "seconds between retries of permanent failures (a spec or credentials change retries "
        "at once)",
    ),
    (
        "--rollout-restarts",
        "ROLLOUT_RESTARTS",
        flagtypes.boolean,
        "true",
        "whether rolloutRestartTargets are restarted (false when the operator may not patch "
        "workloads)",
    ),
    (
        "--rollout-restart-min-interval",
        "ROLLOUT_RESTART_MIN_INTERVAL",
        flagtypes.positive(float),
        "60",
        "a rollout-restart target is restarted at most once per this many seconds",
    ),
    (
        "--cluster-resource-namespace",
        "CLUSTER_RESOURCE_NAMESPACE",
        flagtypes.namespace,
        "",
        "the namespace of ClusterEgainClients' credentials Secrets; a Secret anywhere else "
        "is never read for them (unset: the operator's own namespace: in a Pod its service "
        "account's, else the kubeconfig context's, else default)",
    ),
    (
        "--leader-election-lease",
        "LEADER_ELECTION_LEASE",
        flagtypes.lease,
        "",
        "NAMESPACE/NAME of a coordination.k8s.io Lease; when set, the replicas sharing it "
        "elect one that acts while the others stand by",
    ),
)

_LOG_FORMATS = ("text", "json")
_LOG_LEVELS = ("debug", "info", "warning", "error")


def _parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="egain-token-operator",
        description="Keeps eGain OAuth2 access tokens fresh in Kubernetes Secrets.",
        epilog="Also: status, renew and check, to inspect and renew EgainTokens "
        "(egain-token-operator status --help; docs/cli.md).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the operator")
    namespaces = environ.get(ENV_PREFIX + "NAMESPACES", "")
    run.add_argument(
        "--namespace",
        dest="namespaces",
        action="append",
        default=None,
        help="serve only this namespace (repeatable; default all namespaces; "
        f"env {ENV_PREFIX}NAMESPACES, comma-separated; now {namespaces or 'unset'})",
    )
    add_options(run, environ)
    return parser


def add_options(
    parser: argparse.ArgumentParser,
    environ: Mapping[str, str],
    flags: Collection[str] | None = None,
) -> None:
    """Add the settings' flags (all, or those named in `flags`) to `parser`.

    Each takes its default from its environment variable twin, else the
    operator's default, and is validated the same way wherever it is used.
    """
    for flag, env, parse, default, help_text in _OPTIONS:
        if flags is not None and flag not in flags:
            continue
        raw = environ.get(ENV_PREFIX + env, default)
        parser.add_argument(
            flag,
            type=parse,
            default=raw,
            help=f"{help_text} (env {ENV_PREFIX}{env}; default {default or 'unset'})",
        )


def parse_settings(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Build `Settings` from `argv` (after the program name) and the environment.

    Invalid values exit with a usage message naming the flag, as argparse does;
    values from the environment are validated the same way as flags.
    """
    env = os.environ if environ is None else environ
    parser = _parser(env)
    args = parser.parse_args(list(argv))
    # argparse applies `type` to string defaults, so environment values are validated too.
    namespaces = args.namespaces or flagtypes.comma_list(env.get(ENV_PREFIX + "NAMESPACES", ""))
    log_format = str(args.log_format).lower()
    log_level = str(args.log_level).lower()
    if log_format not in _LOG_FORMATS:
        parser.error(f"--log-format must be one of {', '.join(_LOG_FORMATS)}")
    if log_level not in _LOG_LEVELS:
        parser.error(f"--log-level must be one of {', '.join(_LOG_LEVELS)}")
    if args.retry_initial_delay > args.retry_max_delay:
        parser.error("--retry-initial-delay must not exceed --retry-max-delay")
    return Settings(
        namespaces=tuple(dict.fromkeys(namespaces)),
        selector=args.selector,
        allowed_token_hosts=args.allowed_token_hosts,
        ca_bundle=args.ca_bundle,
        default_token_lifetime=float(args.default_token_lifetime),
        max_concurrent_requests=int(args.max_concurrent_requests),
        metrics_address=args.metrics_address,
        health_address=args.health_address,
        log_format=log_format,
        log_level=log_level,
        http_timeout=float(args.http_timeout),
        refresh_jitter=float(args.refresh_jitter),
        propagation_allowance=float(args.propagation_allowance),
        retry_initial_delay=float(args.retry_initial_delay),
        retry_max_delay=float(args.retry_max_delay),
        permanent_failure_retry_delay=float(args.permanent_failure_retry_delay),
        rollout_restarts=bool(args.rollout_restarts),
        rollout_restart_min_interval=float(args.rollout_restart_min_interval),
        leader_election_lease=args.leader_election_lease,
        cluster_resource_namespace=args.cluster_resource_namespace or None,
    )
