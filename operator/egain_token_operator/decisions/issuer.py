"""Who issues a token: the flow, the URL, the tenant, the scope prefix, the
credentials.

The fields are the same whether an EgainToken holds them inline or a client
(EgainClient, ClusterEgainClient) holds them for it, and one function reads
them either way: `parse_issuer`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from egain_token_operator.decisions.schema import InvalidSpecError, dns_subdomain, string_field

DEFAULT_ANONYMOUS_TOKEN_URL = (
    "https://api.ai.egain.cloud/core/authmgr/v3/oauth2/v2.0/anonymous/token"
)
DEFAULT_SCOPE_PREFIX = "https://api.ai.egain.cloud/auth/"
GRANT_TYPE = "client_credentials"

_TENANT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ABSOLUTE_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# A scope prefix: https:// and visible ASCII (0x21-0x7E), as the CRDs' rule says
# and as scopes are (`schema.scope_list`): it becomes part of the scopes sent,
# quoted in messages and printed at terminals.
_SCOPE_PREFIX = re.compile(r"https://[!-~]{1,504}")

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


class Flow(StrEnum):
    """The two client-credentials flows eGain offers."""

    CLIENT_APP = "ClientApp"
    ANONYMOUS_CUSTOMER = "AnonymousCustomer"


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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


def with_scope_prefix(prefix: str, scope: str) -> str:
    """The AnonymousCustomer rule: `prefix + scope`, unless `scope` is an absolute URL."""
    return scope if _ABSOLUTE_URL.match(scope) else prefix + scope


def _flow(spec: Mapping[str, Any]) -> Flow:
    try:
        return Flow(spec.get("flow", Flow.CLIENT_APP.value))
    except ValueError:
        raise InvalidSpecError("spec.flow must be ClientApp or AnonymousCustomer") from None


def _credentials(spec: Mapping[str, Any], namespace: str | None) -> CredentialsRef:
    ref = spec.get("credentialsSecretRef")
    if not isinstance(ref, Mapping):
        raise InvalidSpecError("spec.credentialsSecretRef is required")
    name = dns_subdomain(ref.get("name"), "spec.credentialsSecretRef.name")
    id_key = ref.get("clientIdKey") or "client_id"
    secret_key = ref.get("clientSecretKey") or "client_secret"
    if not isinstance(id_key, str) or not isinstance(secret_key, str):
        raise InvalidSpecError("spec.credentialsSecretRef keys must be strings")
    # Interned: thousands of EgainTokens name the same Secret and keys, and
    # each would otherwise keep its own copy of these texts.
    return CredentialsRef(sys.intern(name), sys.intern(id_key), sys.intern(secret_key), namespace)


def parse_issuer(spec: Mapping[str, Any], credentials_namespace: str | None) -> Issuer:
    """The issuer fields of an EgainToken's or a client's `spec`, defaulted and
    checked; the credentials Secret is looked up in `credentials_namespace`
    (None: the EgainToken's own)."""
    flow = _flow(spec)
    grant_type = string_field(spec, "grantType", GRANT_TYPE)
    if grant_type != GRANT_TYPE:
        raise InvalidSpecError(f"spec.grantType must be {GRANT_TYPE}")
    default_url = DEFAULT_ANONYMOUS_TOKEN_URL if flow is Flow.ANONYMOUS_CUSTOMER else None
    token_url = string_field(spec, "tokenUrl") or default_url
    if token_url is None:
        raise InvalidSpecError("spec.tokenUrl is required for the ClientApp flow")
    if not token_url.startswith("https://"):
        raise InvalidSpecError("spec.tokenUrl must start with https://")
    tenant_id = string_field(spec, "tenantId")
    if flow is Flow.ANONYMOUS_CUSTOMER and tenant_id is None:
        raise InvalidSpecError("spec.tenantId is required for the AnonymousCustomer flow")
    if tenant_id is not None and not _TENANT.match(tenant_id):
        raise InvalidSpecError("spec.tenantId must match [A-Za-z0-9_-]{1,64}")
    scope_prefix = string_field(spec, "scopePrefix") or DEFAULT_SCOPE_PREFIX
    if not _SCOPE_PREFIX.fullmatch(scope_prefix):
        raise InvalidSpecError(
            "spec.scopePrefix must be https:// followed by visible ASCII (0x21-0x7E), "
            "at most 512 characters: no whitespace, control or non-ASCII characters"
        )
    return Issuer(
        flow=flow,
        token_url=token_url,
        tenant_id=tenant_id,
        scope_prefix=scope_prefix,
        credentials=_credentials(spec, credentials_namespace),
    )
