"""`check NAME [--request] [operator settings]`: what the operator would do with one
EgainToken, without writing anything.

It takes the operator's own look (`controller/observe.observe`, every source read from
the API now) and its own decision (`policy.plan`), and reports one finding a
line; with `--request` it also sends one real token request, whose token is
discarded, never shown or written. Exit 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from egain_token_operator.controller.observe import Observation, TokenWorker, observe
from egain_token_operator.ctl.command import EXIT_NOT_READY, EXIT_OK, connect, read_token
from egain_token_operator.ctl.reports import Finding, Outcome, check_report
from egain_token_operator.decisions.checks import Snapshot, client_refusal, token_host_not_allowed
from egain_token_operator.decisions.clientref import requested_client, slashed
from egain_token_operator.decisions.policy import Memory, plan
from egain_token_operator.decisions.reasons import TokenError
from egain_token_operator.decisions.timestamps import rfc3339
from egain_token_operator.egain.request import TokenRequest, flow_of
from egain_token_operator.egain.transport import EgainClient
from egain_token_operator.kube.api import KubeApi
from egain_token_operator.kube.clientcache import ReadClients
from egain_token_operator.kube.secretcache import ReadSecrets
from egain_token_operator.settings import retry_policy

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


async def check(
    args: argparse.Namespace, out: Callable[[str], None], now: Callable[[], datetime]
) -> int:
    """`check NAME [--request] [operator settings]`."""
    kube, namespace = await connect(args)
    try:
        token = await read_token(kube, namespace, args.name)
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
        out(check_report(namespace, args.name, findings))
        return EXIT_NOT_READY
    spec = snapshot.spec
    url = flow_of(spec).url()
    findings.append(Finding(Outcome.OK, f"spec valid: {spec.flow.value}, POST {url}"))
    # The operator's own verdict, as its policy reaches it at every look.
    host_refused = token_host_not_allowed(snapshot)
    if host_refused is None:
        host = urlsplit(url).netloc
        findings.append(
            Finding(Outcome.OK, f"token host {host} allowed by {snapshot.allowed_hosts}")
        )
    else:
        findings.append(Finding(Outcome.FAIL, f"token {host_refused[1]} ({host_refused[0].value})"))
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
    if decided.request_token:
        doing = f"request a token now: {decided.why}"
    else:
        doing = f"not request a token now: {decided.why}"
        if decided.next_refresh_at is not None:
            doing += f"; next request at {rfc3339(decided.next_refresh_at)}"
    findings.append(Finding(Outcome.INFO, f"the operator would {doing}"))
    if args.request:
        findings.append(await _request(args, namespace, seen.request, host_refused is None))
    out(check_report(namespace, args.name, findings))
    failed = any(finding.outcome is Outcome.FAIL for finding in findings)
    return EXIT_NOT_READY if failed else EXIT_OK


async def _look(kube: KubeApi, args: argparse.Namespace, worker: TokenWorker) -> Observation:
    """The operator's own look at the token (`controller/observe.observe`), every source read
    from the API now rather than from the operator's caches."""
    clients = ReadClients(kube, args.cluster_resource_namespace or DEFAULT_RELEASE_NAMESPACE)
    return await observe(ReadSecrets(kube), clients, worker, args.allowed_token_hosts)


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
    args: argparse.Namespace, namespace: str, request: TokenRequest | None, host_allowed: bool
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
        response, _ = await client.fetch_token(request, namespace=namespace)
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
