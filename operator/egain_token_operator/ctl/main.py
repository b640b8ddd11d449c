"""`egain-token-operator status | renew | check`, also the kubectl plugin `kubectl egaintoken`.

For a person, or a script, at a terminal: the cluster is reached through the
kubeconfig as kubectl reaches it (`kube.load_user_api_client`), and every
decision is the operator's own code (`spec`, `credentials`, `hosts`,
`egain`, `policy`, through `reconcile.observe`). Nothing printed ever holds a
token or a client secret: Secrets are shown by their keys, a new token is
recognised by a digest of it, and messages are the operator's own, which are
built never to hold them.

Exit codes (docs/cli.md): 0 all Ready / success; 1 not Ready, a check failed,
or eGain refused a renewal; 2 usage; 3 not found, or the Kubernetes API
failed; 4 a renewal timed out. When `renew` renews many tokens, the worst
ending decides: 1 if any was refused, else 4 if any timed out, else 0.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from egain_token_operator.controller.observe import Observation, TokenWorker, observe
from egain_token_operator.ctl import views
from egain_token_operator.ctl.renewal import Ending, Progress, Renewal
from egain_token_operator.ctl.views import Finding, Outcome
from egain_token_operator.decisions.clientref import (
    client_argument,
    requested_client,
    slashed,
    uses,
)
from egain_token_operator.decisions.policy import Memory, Snapshot, client_refusal, plan
from egain_token_operator.decisions.reasons import TokenError
from egain_token_operator.decisions.render import REFRESH_REQUESTED_AT_ANNOTATION, rfc3339
from egain_token_operator.decisions.spec import ClientKey, ClientRef, declared_secret_name
from egain_token_operator.egain.transport import EgainClient, TokenRequest, flow_of
from egain_token_operator.kube.adapter import Kube
from egain_token_operator.kube.api import Collection, GoneError, KubeError, NotFoundError
from egain_token_operator.kube.clientcache import ReadClients
from egain_token_operator.kube.config import load_user_api_client
from egain_token_operator.kube.secretcache import MANAGED_SELECTOR, ReadSecrets
from egain_token_operator.kube.watch import Key, object_key
from egain_token_operator.settings import add_options, retry_policy

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

# How often `renew NAME` looks at the Secret while it waits.
RENEW_POLL_SECONDS = 0.5
# Annotations `renew` sends at once when it renews many tokens.
RENEW_CONCURRENT_PATCHES = 16
# The other spellings of `status egaintoken/NAME`.
TOKEN_KIND_NAMES = ("egaintoken", "egaintokens", "egt")


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
        description="Inspect, renew and check EgainTokens and the eGain clients they use. "
        "Never prints a token or a client secret. Exit codes: 0 all Ready / success, 1 not "
        "Ready / a check failed / a renewal refused, 2 usage, 3 not found or Kubernetes API "
        "error, 4 a renewal timed out.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser(
        "status",
        parents=[connection],
        help="a table of EgainTokens, or the details of one token or client",
        description="A table of the EgainTokens, or with NAME the details of one: conditions, "
        "the client it uses, the managed Secret's keys and owner (never values), recent "
        "Events. With egainclient/NAME (egc/NAME) or clusteregainclient/NAME (cegc/NAME), "
        "the client: its spec (never a credential), Ready condition, policy and the "
        "EgainTokens that use it (of every namespace for a ClusterEgainClient, unless -n is "
        "given). Exit 0 when everything shown is Ready, 1 otherwise.",
    )
    status.add_argument("name", nargs="?", metavar="NAME | KIND/NAME")
    status.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    renew = commands.add_parser(
        "renew",
        parents=[connection],
        help="force a refresh and wait for the new token, of one EgainToken or many",
        description=f"Set {REFRESH_REQUESTED_AT_ANNOTATION} on the EgainToken NAME, or on every "
        "one selected by --all, -l or --client (in the namespace, or with -A in every one), "
        "and wait until each one's Secret holds a token obtained for that request. Exit 0 "
        "when every one does, 1 when eGain refused one for good, 4 when one timed out "
        "(1 before 4 when both happen).",
    )
    renew.add_argument("name", nargs="?", metavar="NAME")
    renew.add_argument("--all", action="store_true", help="every EgainToken")
    renew.add_argument(
        "-l", "--selector", metavar="SELECTOR", help="the EgainTokens with these labels"
    )
    renew.add_argument(
        "--client",
        metavar="KIND/NAME",
        help="the EgainTokens whose spec.clientRef names this client: egainclient/NAME "
        "(egc, in -n), clusteregainclient/NAME (cegc)",
    )
    renew.add_argument(
        "-A", "--all-namespaces", action="store_true", help="select in every namespace"
    )
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


async def _read_client(kube: Kube, ref: ClientKey) -> dict[str, Any]:
    client = await kube.read_client(ref)
    if client is None:
        where = f" in namespace {ref.namespace}" if ref.namespace else ""
        raise CommandError(f'{ref.kind.value} "{ref.name}" not found{where}', EXIT_NOT_FOUND)
    return client


def _secret_name(token: Mapping[str, Any]) -> str:
    """The managed Secret's name: as the status says, else as the spec says."""
    recorded = (token.get("status") or {}).get("secretName")
    if isinstance(recorded, str) and recorded:
        return recorded
    name = token["metadata"]["name"]
    declared = declared_secret_name(name, token.get("spec") or {})
    if declared is None:
        raise CommandError(f"EgainToken {name}: spec.secretName must be a string", EXIT_NOT_READY)
    return declared


# --- status -----------------------------------------------------------------


async def status(
    args: argparse.Namespace, out: Callable[[str], None], now: Callable[[], datetime]
) -> int:
    """`status [-n NS | -A] [NAME | KIND/NAME]`."""
    if args.name is not None and args.all_namespaces:
        raise CommandError("NAME cannot be combined with --all-namespaces", EXIT_USAGE)
    client: ClientRef | None = None
    name = args.name
    if name is not None and "/" in name:
        kind_text, _, rest = name.partition("/")
        if kind_text.lower() in TOKEN_KIND_NAMES:
            name = rest
        else:
            try:
                client = client_argument(name)
            except ValueError as exc:
                raise CommandError(str(exc), EXIT_USAGE) from None
    kube, namespace = await _connect(args)
    try:
        if client is not None:
            return await _client_status(kube, client.key(namespace), args.namespace, out, now())
        if name is None:
            tokens = await kube.list_tokens(None if args.all_namespaces else namespace)
            if not tokens:
                where = "any namespace" if args.all_namespaces else f"namespace {namespace}"
                out(f"No EgainTokens found in {where}.")
                return EXIT_OK
            out(views.status_table(tokens, now(), with_namespace=args.all_namespaces))
            return EXIT_OK if all(views.is_ready(token) for token in tokens) else EXIT_NOT_READY
        token = await _read_token(kube, namespace, name)
        secret_name = _secret_name(token)
        secret = await kube.read_secret(namespace, secret_name)
        events = await kube.list_events(namespace, token["metadata"]["uid"])
        out(views.describe_token(token, secret_name, secret, events, now()))
        return EXIT_OK if views.is_ready(token) else EXIT_NOT_READY
    finally:
        await kube.close()


async def _client_status(
    kube: Kube,
    ref: ClientKey,
    namespace_given: str | None,
    out: Callable[[str], None],
    now: datetime,
) -> int:
    """`status egc/NAME | cegc/NAME`: the client and the EgainTokens that use it, of
    its namespace (EgainClient), of every namespace or of the one `-n` names
    (ClusterEgainClient)."""
    client = await _read_client(kube, ref)
    tokens_namespace = ref.namespace or namespace_given
    tokens = [t for t in await kube.list_tokens(tokens_namespace) if uses(t, ref)]
    out(views.describe_client(client, tokens, tokens_namespace, now))
    ready = views.is_ready(client) and all(views.is_ready(token) for token in tokens)
    return EXIT_OK if ready else EXIT_NOT_READY


# --- renew ------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """What `renew`'s arguments select: one EgainToken by name, or every one a list
    finds (of the namespace, or of every one), by labels or by client."""

    name: str | None = None
    every_namespace: bool = False
    label_selector: str | None = None
    client: ClientRef | None = None


def _selection(args: argparse.Namespace) -> Selection:
    """`renew`'s selection; `CommandError` (usage) unless there is exactly one form."""
    forms = [args.name is not None, args.all, args.selector is not None, args.client is not None]
    if sum(forms) != 1:
        raise CommandError(
            "renew takes exactly one of NAME, --all, -l SELECTOR and --client KIND/NAME",
            EXIT_USAGE,
        )
    if args.name is not None:
        if args.all_namespaces:
            raise CommandError("NAME cannot be combined with --all-namespaces", EXIT_USAGE)
        return Selection(name=args.name)
    if args.client is None:
        return Selection(every_namespace=args.all_namespaces, label_selector=args.selector)
    try:
        client = client_argument(args.client)
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    if client.kind.namespaced and args.all_namespaces:
        raise CommandError(
            "an EgainClient serves its own namespace only: name it with -n, not -A", EXIT_USAGE
        )
    return Selection(every_namespace=args.all_namespaces, client=client)


def _request_value(now: datetime) -> str:
    """A new value for the refresh annotation: the time, to the microsecond."""
    return now.isoformat(timespec="microseconds").replace("+00:00", "Z")


async def renew(
    args: argparse.Namespace, out: Callable[[str], None], now: Callable[[], datetime]
) -> int:
    """`renew NAME | --all | -l SELECTOR | --client KIND/NAME [-n NS | -A] [--timeout S]`."""
    selection = _selection(args)
    kube, namespace = await _connect(args)
    try:
        if selection.name is not None:
            return await _renew_one(kube, namespace, selection.name, args.timeout, out, now)
        return await _renew_many(kube, namespace, selection, args.timeout, out, now)
    finally:
        await kube.close()


async def _renew_one(
    kube: Kube,
    namespace: str,
    name: str,
    wait_seconds: float,
    out: Callable[[str], None],
    now: Callable[[], datetime],
) -> int:
    """One EgainToken: its Secret and itself read every `RENEW_POLL_SECONDS`, which
    needs nothing but `get` on both."""
    token = await _read_token(kube, namespace, name)
    secret_name = _secret_name(token)
    renewal = Renewal(_request_value(now()))
    renewal.add(token, secret_name, await kube.read_secret(namespace, secret_name))
    await kube.annotate_token(namespace, name, {REFRESH_REQUESTED_AT_ANNOTATION: renewal.request})
    out(
        f"refresh requested ({REFRESH_REQUESTED_AT_ANNOTATION}={renewal.request}); waiting for "
        f"a new token in Secret {secret_name} (up to {wait_seconds:g}s)"
    )
    deadline = time.monotonic() + wait_seconds
    while True:
        secret = await kube.read_secret(namespace, secret_name)
        progress = renewal.saw_secret(secret, now()) if secret is not None else []
        if not progress:
            progress = renewal.saw_token(await _read_token(kube, namespace, name))
        for step in progress:
            if step.ending is Ending.FAILED:
                raise CommandError(step.text, EXIT_NOT_READY)
            out(step.text)
            if step.ending is Ending.RENEWED:
                return EXIT_OK
        if time.monotonic() >= deadline:
            raise CommandError(
                f"timed out after {wait_seconds:g}s: {renewal.unanswered((namespace, name))}. "
                f"Is the operator running and serving namespace {namespace}? The request "
                "stays; the operator answers it when it can.",
                EXIT_TIMEOUT,
            )
        await asyncio.sleep(RENEW_POLL_SECONDS)


async def _renew_many(
    kube: Kube,
    namespace: str,
    selection: Selection,
    wait_seconds: float,
    out: Callable[[str], None],
    now: Callable[[], datetime],
) -> int:
    """Every EgainToken `selection` lists: one list of the tokens and one of the
    managed Secrets, an annotation on each token, then one watch of each list
    until every token's renewal has ended or `wait_seconds` passed."""
    scope = None if selection.every_namespace else namespace
    tokens_listed = Collection("egaintokens", scope, selection.label_selector)
    secrets_listed = Collection("secrets", scope, MANAGED_SELECTOR)
    client = selection.client.key(namespace) if selection.client else None
    if client is not None:
        await _read_client(kube, client)
    tokens, tokens_version = await kube.list_objects(tokens_listed)
    if client is not None:
        tokens = [token for token in tokens if uses(token, client)]
    described = views.selection_text(scope, selection.label_selector, client)
    if not tokens:
        out(f"No {described}.")
        return EXIT_OK
    secrets, secrets_version = await kube.list_objects(secrets_listed)
    before = {object_key(secret): secret for secret in secrets}
    renewal = Renewal(_request_value(now()))
    news: list[Progress] = []
    for token in tokens:
        key = object_key(token)
        try:
            secret_name = _secret_name(token)
        except CommandError as exc:
            news.append(renewal.fail(key, str(exc)))
            continue
        renewal.add(token, secret_name, before.get((key[0], secret_name)))
    news += await _annotate_all(kube, renewal)
    out(
        f"refresh requested ({REFRESH_REQUESTED_AT_ANNOTATION}={renewal.request}) on "
        f"{len(tokens)} {described}; waiting for their new tokens "
        f"(up to {wait_seconds:g}s)"
    )
    for step in news:
        out(f"{step.key[0]}/{step.key[1]}: {step.text}")
    changes: asyncio.Queue[tuple[str, str, dict[str, Any]] | KubeError] = asyncio.Queue()
    followers = [
        asyncio.create_task(_follow(kube, tokens_listed, tokens_version, changes)),
        asyncio.create_task(_follow(kube, secrets_listed, secrets_version, changes)),
    ]
    deadline = time.monotonic() + wait_seconds
    try:
        while renewal.waiting and (left := deadline - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(left):  # not wait_for: see workers.py
                    change = await changes.get()
            except TimeoutError:
                break
            if isinstance(change, KubeError):
                raise change
            resource, kind, body = change
            if resource == "secrets":
                news = renewal.saw_secret(body, now()) if kind != "DELETED" else []
            elif kind == "DELETED":
                news = renewal.deleted(object_key(body))
            else:
                news = renewal.saw_token(body)
            for step in news:
                out(f"{step.key[0]}/{step.key[1]}: {step.text}")
    finally:
        for follower in followers:
            follower.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
    timed_out = renewal.waiting
    for key in timed_out:
        out(f"{key[0]}/{key[1]}: timed out: {renewal.unanswered(key)}")
    out(views.renewal_summary(renewal.endings, len(timed_out)))
    failed = list(renewal.endings.values()).count(Ending.FAILED)
    if failed:
        raise CommandError(f"{failed} EgainToken(s) could not be renewed", EXIT_NOT_READY)
    if timed_out:
        namespaces = ", ".join(sorted({key[0] for key in timed_out}))
        raise CommandError(
            f"timed out after {wait_seconds:g}s: {len(timed_out)} EgainToken(s) not renewed "
            f"yet. Is the operator running and serving namespace(s) {namespaces}? The "
            "requests stay; the operator answers them when it can.",
            EXIT_TIMEOUT,
        )
    return EXIT_OK


async def _annotate_all(kube: Kube, renewal: Renewal) -> list[Progress]:
    """Set the request's annotation on every waiting token, a few at a time."""
    slots = asyncio.Semaphore(RENEW_CONCURRENT_PATCHES)

    async def annotate(key: Key) -> list[Progress]:
        async with slots:
            try:
                await kube.annotate_token(*key, {REFRESH_REQUESTED_AT_ANNOTATION: renewal.request})
            except NotFoundError:
                return renewal.deleted(key)
            return []

    done = await asyncio.gather(*(annotate(key) for key in renewal.waiting))
    return [step for steps in done for step in steps]


async def _follow(
    kube: Kube,
    collection: Collection,
    resource_version: str,
    changes: asyncio.Queue[tuple[str, str, dict[str, Any]] | KubeError],
) -> None:
    """Hand every change to `collection` after `resource_version` to `changes`,
    going on when the API server ends the watch and listing again when the
    version is too old; a failure is handed over, and ends it."""
    try:
        while True:
            try:
                async for kind, body in kube.watch_objects(collection, resource_version):
                    version = (body.get("metadata") or {}).get("resourceVersion")
                    resource_version = str(version or resource_version)
                    if kind != "BOOKMARK":
                        changes.put_nowait((collection.resource, kind, body))
            except GoneError:
                items, resource_version = await kube.list_objects(collection)
                for item in items:
                    changes.put_nowait((collection.resource, "MODIFIED", item))
    except KubeError as exc:
        changes.put_nowait(exc)


# --- check ------------------------------------------------------------------


async def check(
    args: argparse.Namespace, out: Callable[[str], None], now: Callable[[], datetime]
) -> int:
    """`check NAME [--request] [operator settings]`."""
    kube, namespace = await _connect(args)
    try:
        token = await _read_token(kube, namespace, args.name)
        seen = await _look(kube, args, TokenWorker((namespace, args.name), token))
    finally:
        await kube.close()
    snapshot = seen.snapshot
    findings = [_client_finding(token)]
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


async def _look(kube: Kube, args: argparse.Namespace, worker: TokenWorker) -> Observation:
    """The operator's own look at the token (`reconcile.observe`), every source read
    from the API now rather than from the operator's caches."""
    clients = ReadClients(kube, args.cluster_resource_namespace or DEFAULT_RELEASE_NAMESPACE)
    return await observe(ReadSecrets(kube), clients, worker)


def _client_finding(token: Mapping[str, Any]) -> Finding:
    """The client the token names: inline, or an EgainClient or ClusterEgainClient."""
    client = requested_client(token)
    if client is None:
        return Finding(Outcome.INFO, "client: inline (spec.credentialsSecretRef)")
    return Finding(Outcome.INFO, f"client: {slashed(client)} (spec.clientRef)")


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
