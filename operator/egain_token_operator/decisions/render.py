"""The written Secret and the EgainToken status, as plain dictionaries.

Pure: given a token, a spec and the owner, the Secret is always rendered the
same way; given the outcome of a look, so is the status. The Kubernetes
adapter sends them; `readback.py` reads them back.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from egain_token_operator.decisions.clients import ClientRef
from egain_token_operator.decisions.issuer import CredentialsRef
from egain_token_operator.decisions.outputs import Outputs, rendered_keys, token_values
from egain_token_operator.decisions.readiness import Condition, kstatus_conditions
from egain_token_operator.decisions.reasons import ClientReason
from egain_token_operator.decisions.schedule import Failure, StoredToken
from egain_token_operator.decisions.schema import GROUP, KIND, VERSION
from egain_token_operator.decisions.timestamps import rfc3339
from egain_token_operator.decisions.tokenspec import TokenSpec

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "egain-token-operator"
TOKEN_LABEL = "egain.cloud/token"
ISSUED_AT_ANNOTATION = "egain.cloud/issued-at"
EXPIRES_AT_ANNOTATION = "egain.cloud/expires-at"
FINGERPRINT_ANNOTATION = "egain.cloud/request-fingerprint"
REFRESH_REQUESTED_AT_ANNOTATION = "egain.cloud/refresh-requested-at"
RESTARTED_AT_ANNOTATION = "egain.cloud/restarted-at"


@dataclass(frozen=True, slots=True)
class Owner:
    """The EgainToken a Secret belongs to."""

    namespace: str
    name: str
    uid: str


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def secret_data(token: StoredToken, outputs: Outputs) -> dict[str, str]:
    """The Secret's `data`, base64-encoded: the fixed keys, then the extra keys
    `outputs` asks for (`outputs.rendered_keys`), rendered for this token."""
    values = token_values(token)
    fixed = {
        "access_token": values["accessToken"],
        "token_type": values["tokenType"],
        "authorization": values["authorization"],
        "expires_at": values["expiresAt"],
        "scope": values["scope"],
    }
    return {key: _b64(value) for key, value in {**fixed, **rendered_keys(token, outputs)}.items()}


def owner_reference(owner: Owner) -> dict[str, Any]:
    """The controller reference that makes deleting the EgainToken delete the Secret."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
    }


def secret_labels(spec: TokenSpec, owner: Owner) -> dict[str, str]:
    """`secretTemplate.labels` plus the operator's own, which win."""
    return {**spec.secret_labels, MANAGED_BY_LABEL: MANAGED_BY, TOKEN_LABEL: owner.name}


def secret_annotations(spec: TokenSpec, token: StoredToken) -> dict[str, str]:
    """`secretTemplate.annotations` plus the operator's own, which win."""
    annotations = {
        **spec.secret_annotations,
        ISSUED_AT_ANNOTATION: rfc3339(token.issued_at),
        EXPIRES_AT_ANNOTATION: rfc3339(token.expires_at),
        FINGERPRINT_ANNOTATION: token.fingerprint,
    }
    if token.refresh_request is not None:
        annotations[REFRESH_REQUESTED_AT_ANNOTATION] = token.refresh_request
    return annotations


def render_secret(
    token: StoredToken, spec: TokenSpec, owner: Owner, existing: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The managed Secret holding `token`.

    Built over `existing` when given, so labels and annotations that others
    added (and that the operator does not own) survive, and the update is
    conditional on the `resourceVersion` that was read.
    """
    metadata: dict[str, Any] = dict((existing or {}).get("metadata") or {})
    metadata = {
        key: metadata[key]
        for key in ("resourceVersion", "labels", "annotations")
        if key in metadata
    }
    metadata["name"] = spec.secret_name
    metadata["namespace"] = owner.namespace
    metadata["labels"] = {**(metadata.get("labels") or {}), **secret_labels(spec, owner)}
    metadata["annotations"] = {
        **_without_operator_annotations(metadata.get("annotations") or {}),
        **secret_annotations(spec, token),
    }
    metadata["ownerReferences"] = [owner_reference(owner)]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata,
        "data": secret_data(token, spec.outputs),
    }


def _without_operator_annotations(annotations: Mapping[str, str]) -> dict[str, str]:
    # A stale refresh-request annotation must not outlive a token that did not answer it.
    return {k: v for k, v in annotations.items() if k != REFRESH_REQUESTED_AT_ANNOTATION}


def is_owned_by(secret: Mapping[str, Any], owner: Owner) -> bool:
    """True when `secret` has `owner` as its controller."""
    references = (secret.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == owner.uid and ref.get("controller") is True for ref in references)


def secret_is_current(
    secret: Mapping[str, Any], token: StoredToken, spec: TokenSpec, owner: Owner
) -> bool:
    """True when `secret` already says exactly what `render_secret` would write."""
    metadata = secret.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    wanted_annotations = secret_annotations(spec, token)
    stale_request = (
        REFRESH_REQUESTED_AT_ANNOTATION in annotations
        and REFRESH_REQUESTED_AT_ANNOTATION not in wanted_annotations
    )
    return (
        secret.get("type") == "Opaque"
        and secret.get("data") == secret_data(token, spec.outputs)
        and all(labels.get(k) == v for k, v in secret_labels(spec, owner).items())
        and all(annotations.get(k) == v for k, v in wanted_annotations.items())
        and not stale_request
        and is_owned_by(secret, owner)
    )


def condition_entries(
    status: str,
    reason: str,
    message: str,
    generation: int | None,
    previous_conditions: list[Mapping[str, Any]],
    now: datetime,
) -> list[dict[str, Any]]:
    """The conditions as written in a status (an EgainToken's or a client's):
    Ready, then the kstatus conditions that hold beside it
    (`readiness.kstatus_conditions`). Each keeps its `lastTransitionTime` from
    the one of its type in `previous_conditions` while its status does not change."""
    held = {c.get("type"): c for c in previous_conditions}
    wanted = [("Ready", status, reason, message)] + [
        (c.type, "True", c.reason, c.message) for c in kstatus_conditions(status, reason, message)
    ]
    entries = []
    for kind, holds, why, says in wanted:
        previous = held.get(kind) or {}
        transition = (
            previous.get("lastTransitionTime") if previous.get("status") == holds else None
        ) or rfc3339(now)
        entries.append(
            {
                "type": kind,
                "status": holds,
                "reason": why,
                "message": says,
                "lastTransitionTime": transition,
                "observedGeneration": generation,
            }
        )
    return entries


def merge_patched(held: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """`held` after a JSON merge patch (RFC 7386) of `patch`, as the API server
    applies it: objects merge, `None` removes a field, anything else replaces."""
    merged = dict(held)
    for field, value in patch.items():
        if value is None:
            merged.pop(field, None)
        elif isinstance(value, Mapping):
            before = merged.get(field)
            merged[field] = merge_patched(before if isinstance(before, Mapping) else {}, value)
        else:
            merged[field] = value
    return merged


def _transitions_kept(conditions: Any, held: Any) -> Any:
    """`conditions` with each one's `lastTransitionTime` taken from the held
    condition of its type when that one has the same status: the time of a
    transition that did not happen does not count."""
    if not isinstance(conditions, list) or not isinstance(held, list):
        return conditions
    before = {c.get("type"): c for c in held if isinstance(c, Mapping)}
    kept = []
    for condition in conditions:
        previous = before.get(condition.get("type")) if isinstance(condition, Mapping) else None
        if previous is not None and previous.get("status") == condition.get("status"):
            condition = {**condition, "lastTransitionTime": previous.get("lastTransitionTime")}
            if condition["lastTransitionTime"] is None:
                del condition["lastTransitionTime"]
        kept.append(condition)
    return kept


def status_is_current(held: Mapping[str, Any], patch: Mapping[str, Any]) -> bool:
    """True when merge-patching the status `held` (as the API server holds it)
    with `patch` would change nothing that counts, so the patch need not be sent.

    The `lastTransitionTime` of a condition whose status stays does not count;
    everything else does, including fields the patch removes.
    """
    after = merge_patched(held, patch)
    if "conditions" in after:
        after["conditions"] = _transitions_kept(after["conditions"], held.get("conditions"))
    return after == dict(held)


def render_client_status(
    *,
    generation: int | None,
    credentials: CredentialsRef | None,
    credentials_error: str | None,
    spec_error: str | None,
    tokens: int,
    previous_conditions: list[Mapping[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    """An EgainClient's or ClusterEgainClient's whole `status`: Ready when its
    spec can be served and its credentials Secret holds both keys; `tokens`,
    the EgainTokens that name it. Messages name Secrets and keys, never values."""
    if spec_error is not None or credentials is None:
        condition = ("False", ClientReason.INVALID_SPEC, spec_error or "spec cannot be served")
    elif credentials_error is not None:
        condition = ("False", ClientReason.CREDENTIALS_NOT_FOUND, credentials_error)
    else:
        found = (
            f"Secret {credentials.describe()} holds keys {credentials.client_id_key} "
            f"and {credentials.client_secret_key}"
        )
        condition = ("True", ClientReason.CREDENTIALS_FOUND, found)
    status, reason, message = condition
    return {
        "observedGeneration": generation,
        "conditions": condition_entries(
            status, reason.value, message, generation, previous_conditions, now
        ),
        "tokens": tokens,
    }


def render_status(
    *,
    generation: int | None,
    condition: Condition,
    previous_conditions: list[Mapping[str, Any]],
    secret_name: str,
    token: StoredToken | None,
    next_refresh_at: datetime | None,
    failure: Failure | None,
    now: datetime,
    client: ClientRef | None = None,
) -> dict[str, Any]:
    """The whole `status`, for a merge patch (`None` removes a field).

    `lastTransitionTime` is kept while the condition's status does not change.
    `client` is the EgainClient or ClusterEgainClient the EgainToken names.
    """
    return {
        "observedGeneration": generation,
        "conditions": condition_entries(
            condition.status,
            condition.reason.value,
            condition.message,
            generation,
            previous_conditions,
            now,
        ),
        "client": {"kind": client.kind.value, "name": client.name} if client else None,
        "secretName": secret_name,
        "tokenType": token.token_type if token else None,
        "scopes": list(token.scopes) if token else None,
        "issuedAt": rfc3339(token.issued_at) if token else None,
        "expiresAt": rfc3339(token.expires_at) if token else None,
        "nextRefreshAt": rfc3339(next_refresh_at) if next_refresh_at else None,
        "consecutiveFailures": failure.count if failure else 0,
        "lastFailure": (
            {
                "time": rfc3339(failure.at),
                "reason": failure.reason.value,
                "message": failure.message,
                "credentialsVersion": failure.credentials_version,
            }
            if failure
            else None
        ),
    }
