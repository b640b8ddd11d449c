"""The EgainToken spec as a typed, defaulted model.

The CRD schema validates and defaults at admission; this module still applies
every default and check itself, so that objects stored before a CRD upgrade,
or written while the schema was looser, are handled the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

GROUP = "egain.cloud"
VERSION = "v1alpha1"
PLURAL = "egaintokens"
KIND = "EgainToken"

DEFAULT_ANONYMOUS_TOKEN_URL = (
    "https://api.ai.egain.cloud/core/authmgr/v3/oauth2/v2.0/anonymous/token"
)
DEFAULT_SCOPE_PREFIX = "https://api.ai.egain.cloud/auth/"
GRANT_TYPE = "client_credentials"

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_TENANT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class InvalidSpecError(ValueError):
    """The spec cannot be served; the message names the field."""


class Flow(StrEnum):
    """The two client-credentials flows eGain offers."""

    CLIENT_APP = "ClientApp"
    ANONYMOUS_CUSTOMER = "AnonymousCustomer"


class WorkloadKind(StrEnum):
    """Kinds of `rolloutRestartTargets`."""

    DEPLOYMENT = "Deployment"
    STATEFUL_SET = "StatefulSet"
    DAEMON_SET = "DaemonSet"


@dataclass(frozen=True)
class CredentialsRef:
    """Where the client id and secret are: keys of a Secret in the token's namespace."""

    name: str
    client_id_key: str
    client_secret_key: str


@dataclass(frozen=True)
class RolloutTarget:
    """A workload whose pods are restarted after each new token."""

    kind: WorkloadKind
    name: str


@dataclass(frozen=True)
class TokenSpec:
    """`EgainToken.spec`, defaulted."""

    flow: Flow
    token_url: str
    tenant_id: str | None
    scopes: tuple[str, ...]
    scope_prefix: str
    credentials: CredentialsRef
    secret_name: str
    secret_labels: Mapping[str, str]
    secret_annotations: Mapping[str, str]
    refresh_before: timedelta | None
    rollout_targets: tuple[RolloutTarget, ...]


def parse_duration(text: str) -> timedelta:
    """Parse durations like `90s`, `10m` and `1h30m`.

    Not `durationpy.from_str`: it takes Go durations, so it also accepts what the
    CRD's pattern `^([0-9]+h)?([0-9]+m)?([0-9]+s)?$` rejects (`1.5h`, `-1h`,
    `10ms`, `30m1h`), and an object stored before the schema would then be
    served where the API server refuses it.
    """
    match = _DURATION.match(text)
    if not text or match is None:
        raise ValueError(f"{text!r} is not a duration like 90s, 10m or 1h30m")
    hours, minutes, seconds = (int(group or 0) for group in match.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def _string(spec: Mapping[str, Any], field: str, default: str | None = None) -> str | None:
    value = spec.get(field, default)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidSpecError(f"spec.{field} must be a string")
    return value


def _string_map(value: Any, field: str) -> Mapping[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidSpecError(f"{field} must map strings to strings")
    return dict(value)


def _dns_subdomain(value: str | None, field: str) -> str:
    if not value or len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
        raise InvalidSpecError(f"{field} must be a DNS-1123 subdomain")
    return value


def _flow(spec: Mapping[str, Any]) -> Flow:
    try:
        return Flow(spec.get("flow", Flow.CLIENT_APP.value))
    except ValueError:
        raise InvalidSpecError("spec.flow must be ClientApp or AnonymousCustomer") from None


def _scopes(spec: Mapping[str, Any]) -> tuple[str, ...]:
    scopes = spec.get("scopes")
    if not isinstance(scopes, list) or not 1 <= len(scopes) <= 64:
        raise InvalidSpecError("spec.scopes must list 1 to 64 scopes")
    if not all(isinstance(s, str) and s and not any(c.isspace() for c in s) for s in scopes):
        raise InvalidSpecError("spec.scopes items must be non-empty and contain no whitespace")
    return tuple(scopes)


def _credentials(spec: Mapping[str, Any]) -> CredentialsRef:
    ref = spec.get("credentialsSecretRef")
    if not isinstance(ref, Mapping):
        raise InvalidSpecError("spec.credentialsSecretRef is required")
    name = _dns_subdomain(ref.get("name"), "spec.credentialsSecretRef.name")
    id_key = ref.get("clientIdKey") or "client_id"
    secret_key = ref.get("clientSecretKey") or "client_secret"
    if not isinstance(id_key, str) or not isinstance(secret_key, str):
        raise InvalidSpecError("spec.credentialsSecretRef keys must be strings")
    return CredentialsRef(name, id_key, secret_key)


def _rollout_targets(spec: Mapping[str, Any]) -> tuple[RolloutTarget, ...]:
    targets = []
    for index, item in enumerate(spec.get("rolloutRestartTargets") or []):
        field = f"spec.rolloutRestartTargets[{index}]"
        if not isinstance(item, Mapping):
            raise InvalidSpecError(f"{field} must be an object")
        try:
            kind = WorkloadKind(str(item.get("kind")))
        except ValueError:
            raise InvalidSpecError(
                f"{field}.kind must be Deployment, StatefulSet or DaemonSet"
            ) from None
        targets.append(RolloutTarget(kind, _dns_subdomain(item.get("name"), f"{field}.name")))
    return tuple(dict.fromkeys(targets))


def _secret_name(name: str, spec: Mapping[str, Any]) -> Any:
    # The one place that says `secretName` defaults to the EgainToken's name.
    return spec.get("secretName") or name


def declared_secret_name(name: str, spec: Mapping[str, Any]) -> str | None:
    """The name of the Secret an EgainToken writes, from its spec as stored, valid or
    not (None when `secretName` is not a string): the command line looks for it
    even while the spec cannot be served, or names a client not resolved yet."""
    secret_name = _secret_name(name, spec)
    return secret_name if isinstance(secret_name, str) else None


def referenced_secrets(name: str, spec: Mapping[str, Any]) -> set[str]:
    """The names of the Secrets an EgainToken reads or writes, from its spec as stored.

    Taken from the raw spec, valid or not, so that a fix of either Secret is
    noticed even while the spec cannot be served.
    """
    names: set[str] = set()
    ref = spec.get("credentialsSecretRef")
    if isinstance(ref, Mapping) and isinstance(ref.get("name"), str):
        names.add(ref["name"])
    secret_name = _secret_name(name, spec)
    if isinstance(secret_name, str):
        names.add(secret_name)
    return names


def parse_spec(name: str, spec: Mapping[str, Any]) -> TokenSpec:
    """Turn an EgainToken's `spec` into a `TokenSpec`, or raise `InvalidSpecError`."""
    flow = _flow(spec)
    grant_type = _string(spec, "grantType", GRANT_TYPE)
    if grant_type != GRANT_TYPE:
        raise InvalidSpecError(f"spec.grantType must be {GRANT_TYPE}")
    default_url = DEFAULT_ANONYMOUS_TOKEN_URL if flow is Flow.ANONYMOUS_CUSTOMER else None
    token_url = _string(spec, "tokenUrl") or default_url
    if token_url is None:
        raise InvalidSpecError("spec.tokenUrl is required for the ClientApp flow")
    if not token_url.startswith("https://"):
        raise InvalidSpecError("spec.tokenUrl must start with https://")
    tenant_id = _string(spec, "tenantId")
    if flow is Flow.ANONYMOUS_CUSTOMER and tenant_id is None:
        raise InvalidSpecError("spec.tenantId is required for the AnonymousCustomer flow")
    if tenant_id is not None and not _TENANT.match(tenant_id):
        raise InvalidSpecError("spec.tenantId must match [A-Za-z0-9_-]{1,64}")
    refresh_before_text = _string(spec, "refreshBefore")
    try:
        refresh_before = parse_duration(refresh_before_text) if refresh_before_text else None
    except ValueError as exc:
        raise InvalidSpecError(f"spec.refreshBefore: {exc}") from None
    secret_name = _secret_name(name, spec)
    if not isinstance(secret_name, str):
        raise InvalidSpecError("spec.secretName must be a string")
    template = spec.get("secretTemplate") or {}
    if not isinstance(template, Mapping):
        raise InvalidSpecError("spec.secretTemplate must be an object")
    return TokenSpec(
        flow=flow,
        token_url=token_url,
        tenant_id=tenant_id,
        scopes=_scopes(spec),
        scope_prefix=_string(spec, "scopePrefix") or DEFAULT_SCOPE_PREFIX,
        credentials=_credentials(spec),
        secret_name=_dns_subdomain(secret_name, "spec.secretName"),
        secret_labels=_string_map(template.get("labels"), "spec.secretTemplate.labels"),
        secret_annotations=_string_map(
            template.get("annotations"), "spec.secretTemplate.annotations"
        ),
        refresh_before=refresh_before,
        rollout_targets=_rollout_targets(spec),
    )
