"""The shared clients (EgainClient, ClusterEgainClient), the references to
them, and who may use one.

An EgainToken names a client in `spec.clientRef`; `parse_client_ref` is the
one reader of such a reference, for the operator and the command line alike.
Whether an EgainToken may use the client it names is `ClientSpec`'s answer:
`allows_namespace`, `scopes_not_allowed` and `sharing_required`; how many
token requests may be made with it, `requests_per_minute`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from egain_token_operator.decisions.issuer import ISSUER_FIELDS, Issuer, parse_issuer
from egain_token_operator.decisions.labelselector import (
    InvalidSelectorError,
    LabelSelector,
    parse_selector,
)
from egain_token_operator.decisions.schema import (
    CLIENT_PLURAL,
    CLUSTER_CLIENT_PLURAL,
    InvalidSpecError,
    dns_subdomain,
    scope_list,
)

# The bounds of `spec.requestsPerMinute` (the CRD says the same).
MIN_REQUESTS_PER_MINUTE = 1
MAX_REQUESTS_PER_MINUTE = 10000


class ClientSharing(StrEnum):
    """A client's `spec.tokenSharing`: whether its EgainTokens may opt out of sharing."""

    OPTIONAL = "Optional"
    REQUIRED = "Required"


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


@dataclass(frozen=True, slots=True)
class ClientRef:
    """`EgainToken.spec.clientRef`."""

    kind: ClientKind
    name: str

    def key(self, token_namespace: str) -> ClientKey:
        """The client it names, for an EgainToken in `token_namespace`: an
        EgainClient is looked up there only."""
        return ClientKey(self.kind, token_namespace if self.kind.namespaced else "", self.name)


@dataclass(frozen=True, slots=True)
class ClientKey:
    """One EgainClient (in `namespace`) or ClusterEgainClient (`namespace` empty)."""

    kind: ClientKind
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f" in namespace {self.namespace}" if self.namespace else ""
        return f"{self.kind.value} {self.name}{where}"


@dataclass(frozen=True, slots=True)
class AllowedNamespaces:
    """`ClusterEgainClient.spec.allowedNamespaces`: names, and/or a label selector."""

    names: frozenset[str]
    selector: LabelSelector | None

    def allows(self, namespace: str, labels: Mapping[str, str] | None) -> bool:
        """True when `namespace` (with `labels`; None: not known) is allowed."""
        if namespace in self.names:
            return True
        return self.selector is not None and labels is not None and self.selector.matches(labels)


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """An EgainClient's or ClusterEgainClient's spec, defaulted."""

    key: ClientKey
    issuer: Issuer
    # None: any scope the client has.
    allowed_scopes: tuple[str, ...] | None
    # None for an EgainClient: only its own namespace, by definition.
    allowed_namespaces: AllowedNamespaces | None
    # The token requests made with it per minute, by this operator process;
    # None: unlimited.
    requests_per_minute: int | None = None
    # `tokenSharing: Required`: an EgainToken with `tokenSharing: Disabled` is refused.
    sharing_required: bool = False

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


def parse_client_ref(spec: Mapping[str, Any], *, lenient: bool = False) -> ClientRef | None:
    """`spec.clientRef`, or None when the EgainToken holds its issuer inline.

    The one reader of a reference to a client. With a `clientRef`, inline
    issuer fields are refused (admission does too; this catches objects stored
    before that rule). A reference that cannot be served raises
    `InvalidSpecError`, or with `lenient` reads as None: for callers that only
    route by it (which tokens a client's change concerns, which client the
    command line shows), valid or not.
    """
    try:
        return _client_ref(spec)
    except InvalidSpecError:
        if lenient:
            return None
        raise


def _client_ref(spec: Mapping[str, Any]) -> ClientRef | None:
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
    return ClientRef(kind, dns_subdomain(ref.get("name"), "spec.clientRef.name"))


def referenced_credentials(
    key: ClientKey, spec: Mapping[str, Any], cluster_namespace: str
) -> tuple[str, str] | None:
    """(namespace, name) of the credentials Secret a client's stored spec names,
    valid or not, so that a fix of that Secret is noticed either way."""
    ref = spec.get("credentialsSecretRef")
    if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str):
        return None
    return key.namespace or cluster_namespace, ref["name"]


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
        allowed_scopes = scope_list(spec["allowedScopes"], "spec.allowedScopes", 256)
    allowed_namespaces = None
    if not kind.namespaced:
        allowed_namespaces = _allowed_namespaces(spec.get("allowedNamespaces"))
    return ClientSpec(
        key=ClientKey(kind, namespace, str(metadata.get("name"))),
        issuer=parse_issuer(spec, namespace or cluster_namespace),
        allowed_scopes=allowed_scopes,
        allowed_namespaces=allowed_namespaces,
        requests_per_minute=_requests_per_minute(spec.get("requestsPerMinute")),
        sharing_required=_sharing(spec.get("tokenSharing")) is ClientSharing.REQUIRED,
    )


def _requests_per_minute(value: Any) -> int | None:
    if value is None:
        return None
    # bool is an int to Python, not to the schema.
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not MIN_REQUESTS_PER_MINUTE <= value <= MAX_REQUESTS_PER_MINUTE
    ):
        raise InvalidSpecError(
            f"spec.requestsPerMinute must be a whole number from {MIN_REQUESTS_PER_MINUTE} "
            f"to {MAX_REQUESTS_PER_MINUTE}"
        )
    return value


def _sharing(value: Any) -> ClientSharing:
    try:
        return ClientSharing(value if value is not None else ClientSharing.OPTIONAL.value)
    except ValueError:
        raise InvalidSpecError("spec.tokenSharing must be Optional or Required") from None


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
