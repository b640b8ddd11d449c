"""What `status egc/NAME | cegc/NAME` shows of an EgainClient or ClusterEgainClient:
its spec (never a credential), Ready, policy and the EgainTokens that use it.

Pure: objects as the API sends them and `now` in, text out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from egain_token_operator.ctl.readout import NONE, recorded_ready
from egain_token_operator.ctl.views import describe_conditions, fields, table
from egain_token_operator.decisions.clients import ClientKind
from egain_token_operator.decisions.issuer import DEFAULT_ANONYMOUS_TOKEN_URL, DEFAULT_SCOPE_PREFIX


def label_selector(selector: Mapping[str, Any]) -> str:
    """A label selector as `kubectl get -l` takes it: `a=b,c in (d,e),f,!g`."""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = ",".join(str(v) for v in expression.get("values") or [])
        terms.append(
            {
                "In": f"{key} in ({values})",
                "NotIn": f"{key} notin ({values})",
                "Exists": str(key),
                "DoesNotExist": f"!{key}",
            }.get(str(operator), f"{key} {operator} ({values})")
        )
    return ",".join(terms)


def allowed_namespaces(kind: ClientKind, namespace: str | None, spec: Mapping[str, Any]) -> str:
    """Which namespaces' EgainTokens may use a client."""
    if kind.namespaced:
        return f"{namespace} only (an EgainClient serves its own namespace)"
    allowed = spec.get("allowedNamespaces") or {}
    names = allowed.get("names") or []
    selector = allowed.get("selector")
    said = [f"names {', '.join(str(n) for n in names)}"] if names else []
    if isinstance(selector, Mapping):
        text = label_selector(selector)
        said.append(f"labels {text}" if text else "every namespace (selector {})")
    return "; or ".join(said) or "none"


def describe_client(
    client: Mapping[str, Any],
    tokens: Sequence[Mapping[str, Any]],
    tokens_namespace: str | None,
    now: datetime,
) -> str:
    """The detailed view of an EgainClient or ClusterEgainClient: its spec (a
    credentials Secret by name and keys only), Ready, policy, and the EgainTokens
    that use it (of `tokens_namespace`, or of every namespace when None)."""
    kind = ClientKind(client["kind"])
    metadata = client["metadata"]
    spec = client.get("spec") or {}
    status = client.get("status") or {}
    ready = recorded_ready(client)
    flow = str(spec.get("flow") or "ClientApp")
    anonymous = flow == "AnonymousCustomer"
    default_url = f"{DEFAULT_ANONYMOUS_TOKEN_URL} (default)" if anonymous else NONE
    credentials = spec.get("credentialsSecretRef") or {}
    where = (
        f"namespace {metadata['namespace']}"
        if kind.namespaced
        else "the operator's cluster resource namespace"
    )
    keys = (
        f"{credentials.get('clientIdKey') or 'client_id'} and "
        f"{credentials.get('clientSecretKey') or 'client_secret'}"
    )
    scopes = spec.get("allowedScopes")
    pairs = [
        ("Name", str(metadata["name"])),
        ("Kind", kind.value),
        *([("Namespace", str(metadata["namespace"]))] if kind.namespaced else []),
        ("Ready", f"{ready.get('status', 'Unknown')} ({ready.get('reason', 'no status yet')})"),
        ("Message", str(ready.get("message", NONE))),
        ("Flow", flow),
        ("Token URL", str(spec.get("tokenUrl") or default_url)),
    ]
    if anonymous:
        pairs += [
            ("Tenant", str(spec.get("tenantId") or NONE)),
            ("Scope prefix", str(spec.get("scopePrefix") or f"{DEFAULT_SCOPE_PREFIX} (default)")),
        ]
    pairs += [
        ("Credentials", f"Secret {credentials.get('name', NONE)} in {where}, keys {keys}"),
        ("Tokens", str(status.get("tokens", NONE))),
    ]
    lines = fields(pairs)
    lines.append("Policy:")
    lines += fields(
        [
            ("Namespaces", allowed_namespaces(kind, metadata.get("namespace"), spec)),
            (
                "Scopes",
                ", ".join(str(s) for s in scopes)
                if isinstance(scopes, list)
                else "any scope the client has",
            ),
        ],
        indent="  ",
    )
    lines += describe_conditions(status, now)
    lines += describe_client_tokens(tokens, tokens_namespace)
    return "\n".join(lines)


def describe_client_tokens(
    tokens: Sequence[Mapping[str, Any]], tokens_namespace: str | None
) -> list[str]:
    """The EgainTokens that use a client, with their Ready state."""
    where = f"namespace {tokens_namespace}" if tokens_namespace else "every namespace"
    heading = f"EgainTokens using it, in {where}:"
    if not tokens:
        return [heading, "  <none>"]
    ordered = sorted(tokens, key=lambda t: (t["metadata"]["namespace"], t["metadata"]["name"]))
    rows = [
        [
            str(t["metadata"]["namespace"]),
            str(t["metadata"]["name"]),
            str(recorded_ready(t).get("status", "Unknown")),
            str(recorded_ready(t).get("reason", NONE)),
        ]
        for t in ordered
    ]
    body = table(("NAMESPACE", "NAME", "READY", "REASON"), rows)
    return [heading, *("  " + line for line in body.splitlines())]
