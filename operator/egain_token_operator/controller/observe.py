"""What one look at one EgainToken sees, read only: `observe`.

`observe` gathers an immutable `checks.Snapshot` of an EgainToken (its
`TokenWorker`): the client it names and its namespace's labels (a
`clientcache.ClientSource`), the credentials and the managed Secret (a
`secretcache.SecretSource`). The operator's `reconcile.Reconciler` plans and
acts on it; the command line's `check` takes the same look and only reports it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from egain_token_operator.decisions.checks import Snapshot, client_refusal
from egain_token_operator.decisions.clients import (
    ClientRef,
    ClientSpec,
    parse_client,
    parse_client_ref,
)
from egain_token_operator.decisions.hosts import HostAllowList
from egain_token_operator.decisions.policy import Memory, Plan
from egain_token_operator.decisions.readback import recorded_failure, stored_token
from egain_token_operator.decisions.reasons import TokenError
from egain_token_operator.decisions.render import (
    REFRESH_REQUESTED_AT_ANNOTATION,
    Owner,
    is_owned_by,
)
from egain_token_operator.decisions.schema import InvalidSpecError
from egain_token_operator.decisions.tokenspec import TokenSpec, parse_spec
from egain_token_operator.egain.credentials import read_credentials
from egain_token_operator.egain.request import TokenRequest, build_request
from egain_token_operator.kube.clientcache import ClientSource
from egain_token_operator.kube.secretcache import SecretSource
from egain_token_operator.kube.watch import Key


@dataclass
class TokenWorker:
    """What is known about one EgainToken, and its task."""

    key: Key
    body: Mapping[str, Any]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    # The last spec that could be served.
    spec: TokenSpec | None = None
    memory: Memory = field(default_factory=Memory)
    # The resourceVersion of the credentials Secret the last look read.
    credentials_version: str | None = None

    @property
    def uid(self) -> str:
        return str(self.body.get("metadata", {}).get("uid", ""))

    @property
    def generation(self) -> int | None:
        generation = self.body.get("metadata", {}).get("generation")
        return generation if isinstance(generation, int) else None

    @property
    def refresh_request(self) -> str | None:
        annotations = self.body.get("metadata", {}).get("annotations") or {}
        value = annotations.get(REFRESH_REQUESTED_AT_ANNOTATION)
        return value if isinstance(value, str) and value else None

    @property
    def owner(self) -> Owner:
        return Owner(self.key[0], self.key[1], self.uid)

    def remember(self, seen: Observation, decided: Plan) -> None:
        """Keep what the next look, and the watch events, are judged against."""
        self.spec = seen.snapshot.spec or self.spec
        self.credentials_version = seen.snapshot.credentials_version or self.credentials_version
        self.memory = decided.memory


@dataclass(frozen=True)
class Observation:
    """One look's snapshot, with what acting on it needs."""

    snapshot: Snapshot
    request: TokenRequest | None = None
    secret: Mapping[str, Any] | None = None


async def observe(
    secrets: SecretSource,
    clients: ClientSource,
    worker: TokenWorker,
    allowed_hosts: HostAllowList,
) -> Observation:
    """Gather what one look needs: the spec, its client, the credentials, the managed Secret.

    Reads only: the command line's `check` takes the same look. A client that
    refuses the EgainToken (`policy.client_refusal`) ends the look before its
    credentials are read, so nothing can be sent for it.
    """
    namespace, name = worker.key
    status = worker.body.get("status") or {}
    base = Snapshot(
        uid=worker.uid,
        generation=worker.generation,
        refresh_request=worker.refresh_request,
        spec=None,
        recorded_failure=recorded_failure(status, worker.refresh_request),
        status_generation=status.get("observedGeneration"),
        namespace=namespace,
        allowed_hosts=allowed_hosts,
    )
    raw = worker.body.get("spec") or {}
    try:
        ref = parse_client_ref(raw)
        base = replace(base, client_ref=ref)
        if ref is not None and not ref.kind.namespaced and not clients.serves_cluster_clients:
            return Observation(replace(base, client_unserved=True))  # policy.client_missing
        client = None if ref is None else await _client(clients, ref, namespace)
        if ref is not None and client is None:
            return Observation(base)  # policy.client_missing
        spec = parse_spec(name, raw, client)
    except InvalidSpecError as exc:
        return Observation(replace(base, spec_error=str(exc)))
    labels = None
    if client is not None and client.needs_namespace_labels:
        labels = await clients.namespace_labels(namespace)
    base = replace(base, spec=spec, client=client, namespace_labels=labels)
    if client_refusal(base) is not None:
        return Observation(base)
    credentials_secret = await secrets.credentials(
        spec.credentials.namespace or namespace, spec.credentials.name
    )
    version = ((credentials_secret or {}).get("metadata") or {}).get("resourceVersion")
    base = replace(base, credentials_version=version)
    try:
        request = build_request(spec, read_credentials(credentials_secret, spec.credentials))
    except TokenError as error:
        return Observation(replace(base, credentials_error=error.message))
    secret, unmanaged = await secrets.target(namespace, spec.secret_name)
    conflict = None
    if (secret is not None and not is_owned_by(secret, worker.owner)) or unmanaged:
        conflict = (
            f"Secret {spec.secret_name} exists and is not owned by this EgainToken; "
            "it is left untouched"
        )
    stored = stored_token(secret) if secret is not None and not conflict else None
    if stored is not None and stored.fingerprint == request.legacy_fingerprint:
        # Stored before the fingerprint left the credentials' values out, for
        # this very request: held under the current fingerprint, so an upgrade
        # requests no token, and rewritten under it at once (the Secret is not
        # current), so the legacy value, a function of the client secret, goes.
        stored = replace(stored, fingerprint=request.fingerprint)
    snapshot = replace(
        base, fingerprint=request.fingerprint, conflict=conflict, stored_token=stored
    )
    return Observation(snapshot, request, secret)


async def _client(clients: ClientSource, ref: ClientRef, namespace: str) -> ClientSpec | None:
    """The client `ref` names for an EgainToken in `namespace`, parsed; None when
    there is none; `InvalidSpecError`, naming the client, when it cannot be used."""
    key = ref.key(namespace)
    found = await clients.client(key)
    if found is None:
        return None
    try:
        return parse_client(ref.kind, found, clients.cluster_namespace)
    except InvalidSpecError as exc:
        raise InvalidSpecError(f"{key}: {exc}") from None
