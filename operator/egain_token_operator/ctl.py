"""`egain-token-operator status | renew | check`, also the kubectl plugin `kubectl egaintoken`.

For a person, or a script, at a terminal: the cluster is reached through the
kubeconfig as kubectl reaches it (`kube.load_user_api_client`), and every
decision is the operator's own code (`spec`, `credentials`, `hosts`,
`egain`, `policy`, through `reconcile.observe`). Nothing printed ever holds a
token or a client secret: Secrets are shown by their keys, a new token is
recognised by a digest of it, and messages are the operator's own, which are
built never to hold them.

Exit codes (docs/cli.md): 0 all Ready / success; 1 not Ready, a check failed,
or eGain refused the renewal; 2 usage; 3 not found, or the Kubernetes API
failed; 4 renew timed out.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from egain_token_operator import views
from egain_token_operator.clientcache import ReadClients
from egain_token_operator.egain import EgainClient, TokenRequest, flow_of
from egain_token_operator.kube import Kube, KubeError, load_user_api_client
from egain_token_operator.policy import Memory, Snapshot, client_refusal, plan
from egain_token_operator.reasons import TokenError
from egain_token_operator.reconcile import TokenWorker, observe
from egain_token_operator.render import (
    EXPIRES_AT_ANNOTATION,
    REFRESH_REQUESTED_AT_ANNOTATION,
    rfc3339,
)
from egain_token_operator.schedule import TRANSIENT_REASONS
from egain_token_operator.secretcache import ReadSecrets
from egain_token_operator.settings import add_options, retry_policy
from egain_token_operator.spec import InvalidSpecError, parse_spec
from egain_token_operator.views import Finding, Outcome

EXIT_OK = 0
EXIT_NOT_READY = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_TIMEOUT = 4

COMMANDS = ("status", "renew", "check")

# The operator settings `check` decides with (flags, with their environment
# variable twins and the operator's defaults): pass the installed operator's
# values to get its answer.
CHECK_SETTINGS = (
    "--allowed-token-hosts",
    "--ca-bundle",
    "--default-token-lifetime",
    "--http-timeout",
    "--refresh-jitter",
    "--propagation-allowance",
    "--retry-initial-delay",
    "--retry-max-delay",
    "--permanent-failure-retry-delay",
    "--cluster-resource-namespace",
)

# Where `check` looks for ClusterEgainClients' credentials without
# --cluster-resource-namespace: the namespace docs/helm.md installs the operator in.
DEFAULT_RELEASE_NAMESPACE = "egain-token-operator"

# How often `renew` looks at the Secret while it waits.
RENEW_POLL_SECONDS = 0.5


class CommandError(Exception):
    """Ends a command with `exit_code`; the message is for stderr."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def build_parser(prog: str, environ: Mapping[str, str]) -> argparse.ArgumentParser:
    """The parser of the three commands."""
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument(
        "--kubeconfig", help="kubeconfig file (default: KUBECONFIG, else ~/.kube/config)"
    )
    connection.add_argument("--context", help="kubeconfig context (default: the current one)")
    connection.add_argument(
        "-n", "--namespace", help="namespace (default: the context's, else default)"
    )
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Inspect, renew and check EgainTokens. Never prints a token or a client "
        "secret. Exit codes: 0 all Ready / success, 1 not Ready / a check failed, 2 usage, "
        "3 not found or Kubernetes API error, 4 renew timed out.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser(
        "status",
        parents=[connection],
        help="a table of EgainTokens, or the details of one",
        description="A table of the EgainTokens, or with NAME the details of one: conditions, "
        "the managed Secret's keys and owner (never values), recent Events. "
        "Exit 0 when every EgainToken shown is Ready, 1 otherwise.",
    )
    status.add_argument("name", nargs="?", metavar="NAME")
    status.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    renew = commands.add_parser(
        "renew",
        parents=[connection],
        help="force a refresh and wait for the new token",
        description=f"Set {REFRESH_REQUESTED_AT_ANNOTATION} on the EgainToken and wait until "
        "its Secret holds a token obtained for that request. Exit 0 when it does, 1 when "
        "eGain refused it for good, 4 on timeout.",
    )
    renew.add_argument("name", metavar="NAME")
    renew.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")
    check = commands.add_parser(
        "check",
        parents=[connection],
        help="what the operator would do, without writing anything",
        description="Check the spec, the credentials, the token host and the managed Secret "
        "as the operator would, and say what it would do now; with --request, also send "
        "one real token request (the token is discarded, never shown or written). Takes "
        "the operator settings below: pass the installed operator's values (docs/cli.md). "
        "Exit 0 when every check passes, 1 otherwise.",
    )
    check.add_argument("name", metavar="NAME")
    check.add_argument(
        "--request",
        action="store_true",
        help="send one real token request to eGain and report its outcome",
    )
    add_options(check, environ, CHECK_SETTINGS)
    return parser


async def _connect(args: argparse.Namespace) -> tuple[Kube, str]:
    try:
        api_client, default_namespace = await load_user_api_client(args.kubeconfig, args.context)
    except KubeError as exc:
        raise CommandError(exc.message, EXIT_NOT_FOUND) from None
    except Exception as exc:  # the kubeconfig loader raises many kinds
        raise CommandError(f"cannot load the kubeconfig: {exc}", EXIT_NOT_FOUND) from None
    return Kube(api_client), args.namespace or default_namespace


async def _read_token(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    token = await kube.read_token(namespace, name)
    if token is None:
        raise CommandError(
            f'EgainToken "{name}" not found in namespace {namespace}', EXIT_NOT_FOUND
        )
    return token


def _secret_name(token: Mapping[str, Any]) -> str:
    """The managed Secret's name: as the status says, else as the spec says."""
    recorded = (token.get("status") or {}).get("secretName")
    if isinstance(recorded, str) and recorded:
        return recorded
    name = token["metadata"]["name"]
    try:
        return parse_spec(name, token.get("spec") or {}).secret_name
    except InvalidSpecError as exc:
        raise CommandError(f"EgainToken {name}: {exc}", EXIT_NOT_READY) from None


def _token_digest(secret: Mapping[str, Any] | None) -> str | None:
    """A digest of the token a Secret holds, to notice a new one without showing it."""
    value = ((secret or {}).get("data") or {}).get("access_token")
    return hashlib.sha256(value.encode()).hexdigest() if isinstance(value, str) else None


# --- status -----------------------------------------------------------------


async def status(
    args: argparse.Namespace, out: Callable[[str], None], now: Callable[[], datetime]
) -> int:
    """`status [-n NS | -A] [NAME]`."""
    if args.name is not None and args.all_namespaces:
        raise CommandError("NAME cannot be combined with --all-namespaces", EXIT_USAGE)
    kube, namespace = await _connect(args)
    try:
        if args.name is None:
            tokens = await kube.list_tokens(None if args.all_namespaces else namespace)
            if not tokens:
                where = "any namespace" if args.all_namespaces else f"namespace {namespace}"
                out(f"No EgainTokens found in {where}.")
                return EXIT_OK
            out(views.status_table(tokens, now(), with_namespace=args.all_namespaces))
            return EXIT_OK if all(views.is_ready(token) for token in tokens) else EXIT_NOT_READY
        token = await _read_token(kube, namespace, args.name)
        secret_name = _secret_name(token)
        secret = await kube.read_secret(namespace, secret_name)
        events = await kube.list_events(namespace, token["metadata"]["uid"])
        out(views.describe_token(token, secret_name, secret, events, now()))
        return EXIT_OK if views.is_ready(token) else EXIT_NOT_READY
    finally:
        await kube.close()


# --- renew ------------------------------------------------------------------


def _failure_marker(token: Mapping[str, Any]) -> tuple[Any, ...]:
    status = token.get("status") or {}
    last = status.get("lastFailure") or {}
    return (status.get("consecutiveFailures"), last.get("time"), last.get("reason"))


async def renew(
    args: argparse.Namespace, out: Callable[[str], None], now: Callable[[], datetime]
) -> int:
    """`renew NAME [--timeout S]`."""
    kube, namespace = await _connect(args)
    try:
        token = await _read_token(kube, namespace, args.name)
        secret_name = _secret_name(token)
        before = _token_digest(await kube.read_secret(namespace, secret_name))
        failures_before = _failure_marker(token)
        request = now().isoformat(timespec="microseconds").replace("+00:00", "Z")
        await kube.annotate_token(namespace, args.name, {REFRESH_REQUESTED_AT_ANNOTATION: request})
        out(
            f"refresh requested ({REFRESH_REQUESTED_AT_ANNOTATION}={request}); waiting for "
            f"a new token in Secret {secret_name} (up to {args.timeout:g}s)"
        )
        deadline = time.monotonic() + args.timeout
        said_transient = False
        while True:
            secret = await kube.read_secret(namespace, secret_name)
            annotations = ((secret or {}).get("metadata") or {}).get("annotations") or {}
            answered = annotations.get(REFRESH_REQUESTED_AT_ANNOTATION) == request
            if answered:
                # The operator writes the request's value only beside a token
                # obtained for it; eGain may still have answered with the same one.
                expires = annotations.get(EXPIRES_AT_ANNOTATION)
                new = "new token" if _token_digest(secret) != before else "same token again"
                out(
                    f"{new} in Secret {secret_name}, valid until {expires} "
                    f"({views.time_until(expires, now(), 'expired')})"
                )
                return EXIT_OK
            token = await _read_token(kube, namespace, args.name)
            if _failure_marker(token) != failures_before:
                last = (token.get("status") or {}).get("lastFailure") or {}
                reason, message = last.get("reason"), last.get("message")
                if reason not in TRANSIENT_REASONS:
                    raise CommandError(
                        f"the operator could not renew the token: {reason}: {message}",
                        EXIT_NOT_READY,
                    )
                if not said_transient:
                    out(f"the operator's request failed ({reason}: {message}); it retries")
                    said_transient = True
            if time.monotonic() >= deadline:
                ready = views.recorded_ready(token)
                raise CommandError(
                    f"timed out after {args.timeout:g}s: Secret {secret_name} holds no token "
                    f"for this refresh request yet (Ready={ready.get('status', 'Unknown')} "
                    f"{ready.get('reason', '')}). Is the operator running and serving "
                    f"namespace {namespace}? The request stays; the operator answers it "
                    "when it can.",
                    EXIT_TIMEOUT,
                )
            await asyncio.sleep(RENEW_POLL_SECONDS)
    finally:
        await kube.close()


# --- check ------------------------------------------------------------------


async def check(
    args: argparse.Namespace, out: Callable[[str], None], now: Callable[[], datetime]
) -> int:
    """`check NAME [--request] [operator settings]`."""
    kube, namespace = await _connect(args)
    try:
        token = await _read_token(kube, namespace, args.name)
        clients = ReadClients(kube, args.cluster_resource_namespace or DEFAULT_RELEASE_NAMESPACE)
        seen = await observe(ReadSecrets(kube), clients, TokenWorker((namespace, args.name), token))
    finally:
        await kube.close()
    snapshot = seen.snapshot
    findings: list[Finding] = []
    # The client's verdict: observe stops there, with no credentials read.
    refused = client_refusal(snapshot) if snapshot.spec_error is None else None
    if snapshot.spec is None:
        said = f"spec invalid: {snapshot.spec_error}"
        if refused is not None:  # ClientNotFound: no spec without its client
            said = f"client: {refused[1]} ({refused[0].value})"
        findings.append(Finding(Outcome.FAIL, said))
        out(views.check_report(namespace, args.name, findings))
        return EXIT_NOT_READY
    spec = snapshot.spec
    url = flow_of(spec).url()
    findings.append(Finding(Outcome.OK, f"spec valid: {spec.flow.value}, POST {url}"))
    allowed = args.allowed_token_hosts
    host, host_allowed = urlsplit(url).netloc, allowed.allows(url)
    if host_allowed:
        findings.append(Finding(Outcome.OK, f"token host {host} allowed by {allowed}"))
    else:
        findings.append(
            Finding(
                Outcome.FAIL,
                f"token host {host} is not in the allowed token hosts ({allowed}): "
                "the operator sends nothing (TokenUrlNotAllowed)",
            )
        )
    if refused is not None:
        findings.append(Finding(Outcome.FAIL, f"client: {refused[1]} ({refused[0].value})"))
    elif snapshot.credentials_error is not None:
        findings.append(Finding(Outcome.FAIL, f"credentials: {snapshot.credentials_error}"))
    else:
        ref = spec.credentials
        findings.append(
            Finding(
                Outcome.OK,
                f"credentials found: Secret {ref.describe()}, keys {ref.client_id_key} and "
                f"{ref.client_secret_key}",
            )
        )
    findings += _secret_findings(seen.secret, snapshot, spec.secret_name, now())
    decided = plan(snapshot, Memory(), now(), retry_policy(args))
    if decided.request_token and not host_allowed:
        # The allow-list is checked when the request is about to be sent.
        doing = "refuse to send the token request it is due to send (TokenUrlNotAllowed)"
    elif decided.request_token:
        doing = f"request a token now: {decided.why}"
    else:
        doing = f"not request a token now: {decided.why}"
        if decided.next_refresh_at is not None:
            doing += f"; next request at {rfc3339(decided.next_refresh_at)}"
    findings.append(Finding(Outcome.INFO, f"the operator would {doing}"))
    if args.request:
        findings.append(await _request(args, seen.request, host_allowed))
    out(views.check_report(namespace, args.name, findings))
    failed = any(finding.outcome is Outcome.FAIL for finding in findings)
    return EXIT_NOT_READY if failed else EXIT_OK


def _secret_findings(
    secret: Mapping[str, Any] | None, snapshot: Snapshot, secret_name: str, now: datetime
) -> list[Finding]:
    """The managed Secret: whose it is, and what its token answers."""
    if snapshot.conflict is not None:
        return [Finding(Outcome.FAIL, f"{snapshot.conflict} (SecretConflict)")]
    if snapshot.fingerprint is None:
        return []  # the look stopped before the Secret: the credentials or the client said no
    if secret is None:
        return [
            Finding(Outcome.OK, f"Secret {secret_name} does not exist yet: the operator creates it")
        ]
    found = [Finding(Outcome.OK, f"Secret {secret_name} belongs to this EgainToken")]
    stored = snapshot.stored_token
    if stored is None:
        found.append(Finding(Outcome.INFO, "it holds no token the operator can use"))
    elif stored.fingerprint != snapshot.fingerprint:
        found.append(
            Finding(Outcome.INFO, "its token was obtained for another spec or other credentials")
        )
    elif not stored.is_valid(now):
        found.append(Finding(Outcome.INFO, f"its token expired at {rfc3339(stored.expires_at)}"))
    else:
        found.append(
            Finding(
                Outcome.INFO,
                "its token answers the current spec and credentials, valid until "
                f"{rfc3339(stored.expires_at)}",
            )
        )
    return found


async def _request(
    args: argparse.Namespace, request: TokenRequest | None, host_allowed: bool
) -> Finding:
    """One real token request, reported without the token."""
    if request is None or not host_allowed:
        return Finding(Outcome.FAIL, "token request not sent: the checks above failed")
    client = EgainClient(
        allowed_hosts=args.allowed_token_hosts,
        ca_bundle=args.ca_bundle,
        timeout=args.http_timeout,
        max_concurrent_requests=1,
        default_lifetime=args.default_token_lifetime,
    )
    try:
        response, _ = await client.fetch_token(request)
    except TokenError as error:
        return Finding(Outcome.FAIL, f"token request: {error.reason.value}: {error.message}")
    finally:
        await client.aclose()
    lifetime = "default lifetime" if response.expires_in_defaulted else "lifetime"
    return Finding(
        Outcome.OK,
        f"token request: eGain issued a {response.token_type} token ({lifetime} "
        f"{response.expires_in:g}s, scopes {' '.join(response.scopes)}); it was discarded, "
        "not written",
    )


# --- entry points -----------------------------------------------------------

_RUNNERS = {"status": status, "renew": renew, "check": check}


def main(
    argv: Sequence[str],
    *,
    prog: str = "egain-token-operator",
    out: Callable[[str], None] = print,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Run one command; return its exit code."""
    args = build_parser(prog, os.environ).parse_args(list(argv))
    try:
        return asyncio.run(_RUNNERS[args.command](args, out, now))
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KubeError as exc:
        print(f"error: Kubernetes API: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND


def plugin_main() -> None:
    """Console-script entry point of the kubectl plugin `kubectl-egaintoken`."""
    sys.exit(main(sys.argv[1:], prog="kubectl egaintoken"))
