"""The EgainToken, EgainClient and ClusterEgainClient specs as typed, defaulted models.

The CRD schema validates and defaults at admission; this module still applies
every default and check itself, so that objects stored before a CRD upgrade,
or written while the schema was looser, are handled the same way.

Who issues a token (`Issuer`: the flow, the URL, the tenant, the scope prefix,
the credentials) is parsed by one function, `parse_issuer`, whether the fields
are inline in an EgainToken or held by a client; an EgainToken with a
`clientRef` is served with the `TokenSpec` that combines its own fields with
its client's `Issuer` (`parse_spec(name, spec, client)`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from egain_token_operator.decisions.labelselector import (
    InvalidSelectorError,
    LabelSelector,
    parse_selector,
)

GROUP = "egain.cloud"
VERSION = "v1alpha1"
PLURAL = "egaintokens"
KIND = "EgainToken"
CLIENT_PLURAL = "egainclients"
CLUSTER_CLIENT_PLURAL = "clusteregainclients"

DEFAULT_ANONYMOUS_TOKEN_URL = (
    "https://api.ai.egain.cloud/core/authmgr/v3/oauth2/v2.0/anonymous/token"
)
DEFAULT_SCOPE_PREFIX = "https://api.ai.egain.cloud/auth/"
GRANT_TYPE = "client_credentials"

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_TENANT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ABSOLUTE_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

# The fields of an `Issuer`, as an EgainToken holds them inline: absent when it
# names a client instead.
ISSUER_FIELDS = (
    "flow",
    "grantType",
    "tokenUrl",
    "tenantId",
    "scopePrefix",
    "credentialsSecretRef",
)


class InvalidSpecError(ValueError):
    """The spec cannot be served; the message names the field."""


class Flow(StrEnum):
    """The two client-credentials flows eGain offers."""

    CLIENT_APP = "ClientApp"
    ANONYMOUS_CUSTOMER = "AnonymousCustomer"


class TokenSharing(StrEnum):
    """Whether an EgainToken shares one upstream token with identical requests."""

    SHARED = "Shared"
    DISABLED = "Disabled"


class ClientKind(StrEnum):
    """The kinds an EgainToken's `clientRef` may name."""

    EGAIN_CLIENT = "EgainClient"
    CLUSTER_EGAIN_CLIENT = "ClusterEgainClient"

    @property
    def plural(self) -> str:
        """The resource's plural name."""
        return CLIENT_PLURAL if self is ClientKind.EGAIN_CLIENT else CLUSTER_CLIENT_PLURAL

    @property
    def namespaced(self) -> bool:
        """True for EgainClient; a ClusterEgainClient is cluster-scoped."""
        return self is ClientKind.EGAIN_CLIENT


class WorkloadKind(StrEnum):
    """Kinds of `rolloutRestartTargets`."""

    DEPLOYMENT = "Deployment"
    STATEFUL_SET = "StatefulSet"
    DAEMON_SET = "DaemonSet"


@dataclass(frozen=True)
class CredentialsRef:
    """Where the client id and secret are: two keys of one Secret."""

    name: str
    client_id_key: str
    client_secret_key: str
    # The Secret's namespace; None: the EgainToken's own (inline credentials).
    namespace: str | None = None

    def describe(self) -> str:
        """The Secret's name, with its namespace when it is not the EgainToken's."""
        return self.name if self.namespace is None else f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Issuer:
    """Who issues a token: the fields an inline EgainToken and a client share."""

    flow: Flow
    token_url: str
    tenant_id: str | None
    scope_prefix: str
    credentials: CredentialsRef

    def scope_as_sent(self, scope: str) -> str:
        """`scope` as this flow sends it (`with_scope_prefix` for AnonymousCustomer)."""
        if self.flow is Flow.CLIENT_APP:
            return scope
        return with_scope_prefix(self.scope_prefix, scope)


@dataclass(frozen=True)
class ClientRef:
    """`EgainToken.spec.clientRef`."""

    kind: ClientKind
    name: str

    def key(self, token_namespace: str) -> ClientKey:
        """The client it names, for an EgainToken in `token_namespace`: an
        EgainClient is looked up there only."""
        return ClientKey(self.kind, token_namespace if self.kind.namespaced else "", self.name)


@dataclass(frozen=True)
class ClientKey:
    """One EgainClient (in `namespace`) or ClusterEgainClient (`namespace` empty)."""

    kind: ClientKind
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f" in namespace {self.namespace}" if self.namespace else ""
        return f"{self.kind.value} {self.name}{where}"


@dataclass(frozen=True)
class AllowedNamespaces:
    """`ClusterEgainClient.spec.allowedNamespaces`: names, and/or a label selector."""

    names: frozenset[str]
    selector: LabelSelector | None

    def allows(self, namespace: str, labels: Mapping[str, str] | None) -> bool:
        """True when `namespace` (with `labels`; None: not known) is allowed."""
        if namespace in self.names:
            return True
        return self.selector is not None and labels is not None and self.selector.matches(labels)


@dataclass(frozen=True)
class ClientSpec:
    """An EgainClient's or ClusterEgainClient's spec, defaulted."""

    key: ClientKey
    issuer: Issuer
    # None: any scope the client has.
    allowed_scopes: tuple[str, ...] | None
    # None for an EgainClient: only its own namespace, by definition.
    allowed_namespaces: AllowedNamespaces | None

    @property
    def needs_namespace_labels(self) -> bool:
        """True when whether a namespace is allowed may depend on its labels."""
        return self.allowed_namespaces is not None and self.allowed_namespaces.selector is not None

    def allows_namespace(self, namespace: str, labels: Mapping[str, str] | None) -> bool:
        """True when EgainTokens in `namespace` (with `labels`) may use the client."""
        if self.allowed_namespaces is None:
            return self.key.kind.namespaced and namespace == self.key.namespace
        return self.allowed_namespaces.allows(namespace, labels)

    def scopes_not_allowed(self, scopes: tuple[str, ...]) -> tuple[str, ...]:
        """The `scopes` outside `allowedScopes`, compared as the flow sends them."""
        if self.allowed_scopes is None:
            return ()
        allowed = {self.issuer.scope_as_sent(scope) for scope in self.allowed_scopes}
        return tuple(s for s in scopes if self.issuer.scope_as_sent(s) not in allowed)


@dataclass(frozen=True)
class RolloutTarget:
    """A workload whose pods are restarted after each new token."""

    kind: WorkloadKind
    name: str


@dataclass(frozen=True)
class TokenSpec:
    """`EgainToken.spec`, defaulted; with a `clientRef`, combined with its client's `Issuer`."""

    issuer: Issuer
    scopes: tuple[str, ...]
    secret_name: str
    secret_labels: Mapping[str, str]
    secret_annotations: Mapping[str, str]
    refresh_before: timedelta | None
    rollout_targets: tuple[RolloutTarget, ...]
    # The client the issuer is taken from; None: inline.
    client: ClientRef | None = None
    token_sharing: TokenSharing = TokenSharing.SHARED

    @property
    def flow(self) -> Flow:
        """The issuer's flow."""
        return self.issuer.flow

    @property
    def token_url(self) -> str:
        """The issuer's token URL."""
        return self.issuer.token_url

    @property
    def tenant_id(self) -> str | None:
        """The issuer's tenant (AnonymousCustomer)."""
        return self.issuer.tenant_id

    @property
    def scope_prefix(self) -> str:
        """The issuer's scope prefix (AnonymousCustomer)."""
        return self.issuer.scope_prefix

    @property
    def credentials(self) -> CredentialsRef:
        """Where the issuer's client id and secret are."""
        return self.issuer.credentials


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


def with_scope_prefix(prefix: str, scope: str) -> str:
    """The AnonymousCustomer rule: `prefix + scope`, unless `scope` is an absolute URL."""
    return scope if _ABSOLUTE_URL.match(scope) else prefix + scope


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


def _scope_list(scopes: Any, field: str, maximum: int) -> tuple[str, ...]:
    if not isinstance(scopes, list) or not 1 <= len(scopes) <= maximum:
        raise InvalidSpecError(f"{field} must list 1 to {maximum} scopes")
    if not all(isinstance(s, str) and s and not any(c.isspace() for c in s) for s in scopes):
        raise InvalidSpecError(f"{field} items must be non-empty and contain no whitespace")
    return tuple(scopes)


def _credentials(spec: Mapping[str, Any], namespace: str | None) -> CredentialsRef:
    ref = spec.get("credentialsSecretRef")
    if not isinstance(ref, Mapping):
        raise InvalidSpecError("spec.credentialsSecretRef is required")
    name = _dns_subdomain(ref.get("name"), "spec.credentialsSecretRef.name")
    id_key = ref.get("clientIdKey") or "client_id"
    secret_key = ref.get("clientSecretKey") or "client_secret"
    if not isinstance(id_key, str) or not isinstance(secret_key, str):
        raise InvalidSpecError("spec.credentialsSecretRef keys must be strings")
    return CredentialsRef(name, id_key, secret_key, namespace)


def _token_sharing(spec: Mapping[str, Any]) -> TokenSharing:
    try:
        return TokenSharing(spec.get("tokenSharing", TokenSharing.SHARED.value))
    except ValueError:
        raise InvalidSpecError("spec.tokenSharing must be Shared or Disabled") from None


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
    """The names of the Secrets an EgainToken reads or writes in its own namespace,
    from its spec as stored (a client's credentials Secret is the client's).

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


def referenced_client(spec: Mapping[str, Any]) -> ClientRef | None:
    """The client an EgainToken's stored spec names, if it names one well enough
    to be looked up (what `parse_client_ref` would refuse aside)."""
    try:
        return parse_client_ref(spec)
    except InvalidSpecError:
        return None


def referenced_credentials(
    key: ClientKey, spec: Mapping[str, Any], cluster_namespace: str
) -> tuple[str, str] | None:
    """(namespace, name) of the credentials Secret a client's stored spec names,
    valid or not, so that a fix of that Secret is noticed either way."""
    ref = spec.get("credentialsSecretRef")
    if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str):
        return None
    return key.namespace or cluster_namespace, ref["name"]


def parse_client_ref(spec: Mapping[str, Any]) -> ClientRef | None:
    """`spec.clientRef`, or None when the EgainToken holds its issuer inline.

    With a `clientRef`, inline issuer fields are refused (admission does too;
    this catches objects stored before that rule).
    """
    ref = spec.get("clientRef")
    if ref is None:
        return None
    if not isinstance(ref, Mapping):
        raise InvalidSpecError("spec.clientRef must be an object")
    try:
        kind = ClientKind(ref.get("kind") or ClientKind.EGAIN_CLIENT.value)
    except ValueError:
        raise InvalidSpecError(
            "spec.clientRef.kind must be EgainClient or ClusterEgainClient"
        ) from None
    inline = [field for field in ISSUER_FIELDS if spec.get(field) is not None]
    if inline:
        raise InvalidSpecError(f"spec.{inline[0]} must not be set together with spec.clientRef")
    return ClientRef(kind, _dns_subdomain(ref.get("name"), "spec.clientRef.name"))


def parse_issuer(spec: Mapping[str, Any], credentials_namespace: str | None) -> Issuer:
    """The issuer fields of an EgainToken's or a client's `spec`, defaulted and
    checked; the credentials Secret is looked up in `credentials_namespace`
    (None: the EgainToken's own)."""
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
    return Issuer(
        flow=flow,
        token_url=token_url,
        tenant_id=tenant_id,
        scope_prefix=_string(spec, "scopePrefix") or DEFAULT_SCOPE_PREFIX,
        credentials=_credentials(spec, credentials_namespace),
    )


def parse_client(kind: ClientKind, body: Mapping[str, Any], cluster_namespace: str) -> ClientSpec:
    """An EgainClient or ClusterEgainClient as the API sent it → `ClientSpec`, or
    `InvalidSpecError`. A ClusterEgainClient's credentials Secret is in
    `cluster_namespace` (the operator's cluster resource namespace), never elsewhere."""
    metadata = body.get("metadata") or {}
    namespace = str(metadata.get("namespace") or "") if kind.namespaced else ""
    spec = body.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise InvalidSpecError("spec must be an object")
    allowed_scopes = None
    if spec.get("allowedScopes") is not None:
        allowed_scopes = _scope_list(spec["allowedScopes"], "spec.allowedScopes", 256)
    allowed_namespaces = None
    if not kind.namespaced:
        allowed_namespaces = _allowed_namespaces(spec.get("allowedNamespaces"))
    return ClientSpec(
        key=ClientKey(kind, namespace, str(metadata.get("name"))),
        issuer=parse_issuer(spec, namespace or cluster_namespace),
        allowed_scopes=allowed_scopes,
        allowed_namespaces=allowed_namespaces,
    )


def _allowed_namespaces(value: Any) -> AllowedNamespaces:
    if not isinstance(value, Mapping):
        raise InvalidSpecError("spec.allowedNamespaces is required for a ClusterEgainClient")
    names = value.get("names") or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InvalidSpecError("spec.allowedNamespaces.names must list namespace names")
    selector = None
    if value.get("selector") is not None:
        try:
            selector = parse_selector(value["selector"])
        except InvalidSelectorError as exc:
            raise InvalidSpecError(f"spec.allowedNamespaces.selector: {exc}") from None
    return AllowedNamespaces(frozenset(names), selector)


def parse_spec(name: str, spec: Mapping[str, Any], client: ClientSpec | None = None) -> TokenSpec:
    """Turn an EgainToken's `spec` into a `TokenSpec`, or raise `InvalidSpecError`.

    An EgainToken with a `clientRef` takes its issuer from `client`, the
    client it names (resolved by the caller; `ValueError` without it).
    """
    ref = parse_client_ref(spec)
    if ref is None:
        issuer = parse_issuer(spec, None)
    elif client is None or client.key.kind is not ref.kind or client.key.name != ref.name:
        raise ValueError(f"EgainToken {name} is served with the client it names, {ref.name}")
    else:
        issuer = client.issuer
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
        issuer=issuer,
        scopes=_scope_list(spec.get("scopes"), "spec.scopes", 64),
        secret_name=_dns_subdomain(secret_name, "spec.secretName"),
        secret_labels=_string_map(template.get("labels"), "spec.secretTemplate.labels"),
        secret_annotations=_string_map(
            template.get("annotations"), "spec.secretTemplate.annotations"
        ),
        refresh_before=refresh_before,
        rollout_targets=_rollout_targets(spec),
        token_sharing=_token_sharing(spec),
        client=ref,
    )
