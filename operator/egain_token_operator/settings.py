"""Operator settings: command-line flags, each with an environment variable twin.

A flag given on the command line wins over its environment variable, which
wins over the default. Every value is validated here, once, so the rest of the
operator works with one typed, trustworthy `Settings` object.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from egain_token_operator.decisions.hosts import HostAllowList
from egain_token_operator.decisions.schedule import RetryPolicy

ENV_PREFIX = "EGAIN_OPERATOR_"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class Address:
    """A `HOST:PORT` listening address; an IPv6 host is held without its brackets."""

    host: str
    port: int

    def __str__(self) -> str:
        # Brackets keep an IPv6 host apart from the port, as URLs need them.
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def url(self, path: str) -> str:
        """The `http://` URL of `path` served on this address."""
        return f"http://{self}{path}"


@dataclass(frozen=True)
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


def _address(value: str) -> Address:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        # "::1:8080" could be the port 8080 of ::1 or the address ::1:8080 alone.
        raise argparse.ArgumentTypeError(
            f"an IPv6 address goes in brackets, as in [::1]:8080; got {value!r}"
        )
    if not host or "[" in host or "]" in host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return Address(host, int(port))


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}") from None
        if number <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
        return number

    return parse


def _non_negative(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0.0 <= number < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {value!r}")
    return number


def _fraction(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0.0 <= number < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {value!r}")
    return number


def _ca_bundle(value: str) -> Path | None:
    if not value:
        return None
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"CA bundle {value!r} is not a readable file")
    return path


def _hosts(value: str) -> HostAllowList:
    try:
        return HostAllowList.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")
    return lowered == "true"


def _lease(value: str) -> tuple[str, str] | None:
    if not value:
        return None
    namespace, sep, name = value.partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise argparse.ArgumentTypeError(f"expected NAMESPACE/NAME, got {value!r}")
    return namespace, name


def _namespace(value: str) -> str:
    value = value.strip()
    if value and not _DNS_LABEL.match(value):
        raise argparse.ArgumentTypeError(f"expected a namespace name, got {value!r}")
    return value


def _comma_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


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
        _hosts,
        "*.egain.cloud",
        "comma-separated hosts token URLs may point at ('*.' wildcards, optional ':port')",
    ),
    (
        "--ca-bundle",
        "CA_BUNDLE",
        _ca_bundle,
        "",
        "PEM file of CAs trusted for token endpoints, on top of the system trust store",
    ),
    (
        "--default-token-lifetime",
        "DEFAULT_TOKEN_LIFETIME",
        _positive(float),
        "3600",
        "seconds a token is taken to live when the response has no expires_in",
    ),
    (
        "--max-concurrent-requests",
        "MAX_CONCURRENT_REQUESTS",
        _positive(int),
        "16",
        "token requests in flight at once, across all EgainTokens",
    ),
    ("--metrics-address", "METRICS_ADDRESS", _address, "0.0.0.0:8080", "Prometheus /metrics"),
    ("--health-address", "HEALTH_ADDRESS", _address, "0.0.0.0:8081", "liveness probe /healthz"),
    ("--log-format", "LOG_FORMAT", str, "text", "text or json"),
    ("--log-level", "LOG_LEVEL", str, "info", "debug, info, warning or error"),
    ("--http-timeout", "HTTP_TIMEOUT", _positive(float), "10", "seconds per token request"),
    (
        "--refresh-jitter",
        "REFRESH_JITTER",
        _fraction,
        "0.1",
        "up to this fraction of refreshBefore (or of the propagation allowance, when that "
        "wins) is taken off each refresh time at random",
    ),
    (
        "--propagation-allowance",
        "PROPAGATION_ALLOWANCE",
        _non_negative,
        "120",
        "seconds a token update may take to reach Pods that mount the Secret (the kubelet "
        "sync loop); each token is refreshed at least this long before it expires, unless "
        "that would come before half its lifetime (0: no allowance)",
    ),
    (
        "--retry-initial-delay",
        "RETRY_INITIAL_DELAY",
        _positive(float),
        "1",
        "seconds before the first retry of a transient failure",
    ),
    (
        "--retry-max-delay",
        "RETRY_MAX_DELAY",
        _positive(float),
        "300",
        "cap, in seconds, of the exponential backoff of transient failures",
    ),
    (
        "--permanent-failure-retry-delay",
        "PERMANENT_FAILURE_RETRY_DELAY",
        _positive(float),
        "600",
        "seconds between retries of permanent failures (a spec or credentials change retries "
        "at once)",
    ),
    (
        "--rollout-restarts",
        "ROLLOUT_RESTARTS",
        _boolean,
        "true",
        "whether rolloutRestartTargets are restarted (false when the operator may not patch "
        "workloads)",
    ),
    (
        "--rollout-restart-min-interval",
        "ROLLOUT_RESTART_MIN_INTERVAL",
        _positive(float),
        "60",
        "a rollout-restart target is restarted at most once per this many seconds",
    ),
    (
        "--cluster-resource-namespace",
        "CLUSTER_RESOURCE_NAMESPACE",
        _namespace,
        "",
        "the namespace of ClusterEgainClients' credentials Secrets; a Secret anywhere else "
        "is never read for them (unset: the operator's own namespace: in a Pod its service "
        "account's, else the kubeconfig context's, else default)",
    ),
    (
        "--leader-election-lease",
        "LEADER_ELECTION_LEASE",
        _lease,
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
    namespaces = args.namespaces or _comma_list(env.get(ENV_PREFIX + "NAMESPACES", ""))
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
