"""The EgainToken spec as a typed, defaulted model: `parse_spec`.

An EgainToken holds its issuer inline, or names a client (`clientRef`) and is
served with the `TokenSpec` that combines its own fields with that client's
`Issuer` (`parse_spec(name, spec, client)`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

from egain_token_operator.decisions.clients import ClientRef, ClientSpec, parse_client_ref
from egain_token_operator.decisions.issuer import CredentialsRef, Flow, Issuer, parse_issuer
from egain_token_operator.decisions.outputs import Outputs, parse_outputs
from egain_token_operator.decisions.schema import (
    InvalidSpecError,
    dns_subdomain,
    parse_duration,
    scope_list,
    string_field,
    string_map,
)


class TokenSharing(StrEnum):
    """Whether an EgainToken shares one upstream token with identical requests."""

    SHARED = "Shared"
    DISABLED = "Disabled"


class WorkloadKind(StrEnum):
    """Kinds of `rolloutRestartTargets`."""

    DEPLOYMENT = "Deployment"
    STATEFUL_SET = "StatefulSet"
    DAEMON_SET = "DaemonSet"


@dataclass(frozen=True, slots=True)
class RolloutTarget:
    """A workload whose pods are restarted after each new token."""

    kind: WorkloadKind
    name: str


@dataclass(frozen=True, slots=True)
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
    # The Secret's extra keys (`secretTemplate.data`, `outputFormats`); never
    # part of the request: changing them rewrites the Secret, not the token.
    outputs: Outputs = field(default_factory=Outputs)

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
        targets.append(RolloutTarget(kind, dns_subdomain(item.get("name"), f"{field}.name")))
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
    refresh_before_text = string_field(spec, "refreshBefore")
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
        scopes=scope_list(spec.get("scopes"), "spec.scopes", 64),
        secret_name=dns_subdomain(secret_name, "spec.secretName"),
        secret_labels=string_map(template.get("labels"), "spec.secretTemplate.labels"),
        secret_annotations=string_map(
            template.get("annotations"), "spec.secretTemplate.annotations"
        ),
        refresh_before=refresh_before,
        rollout_targets=_rollout_targets(spec),
        token_sharing=_token_sharing(spec),
        client=ref,
        outputs=parse_outputs(spec),
    )
