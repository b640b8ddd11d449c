"""What one look at one EgainToken sees, read only: `observe`.

`observe` gathers an immutable `checks.Snapshot` of an EgainToken (its
`TokenWorker`): the client it names and its namespace's labels (a
`clientcache.ClientSource`), the credentials and the managed Secret (a
`secretcache.SecretSource`). The operator's `reconcile.Reconciler` plans and
acts on it; the command line's `check` takes the same look and only reports it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
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


def _compact(document: Mapping[str, Any]) -> bytes:
    """`document` as compact JSON text."""
    return json.dumps(document, separators=(",", ":")).encode()


class Wake:
    """What wakes a worker: a flag the events set and its look clears, and,
    while the worker sleeps without a task, what starts it again."""

    __slots__ = ("_resume", "_set")

    def __init__(self) -> None:
        self._set = False
        self._resume: Callable[[], None] | None = None

    def set(self) -> None:
        """Wake the worker: now if it sleeps, else at the end of its look."""
        self._set = True
        resume, self._resume = self._resume, None
        if resume is not None:
            resume()

    def clear(self) -> None:
        """Forget an earlier `set`."""
        self._set = False

    def is_set(self) -> bool:
        """Whether `set` was called since the last `clear`."""
        return self._set

    def sleep(self, resume: Callable[[], None] | None) -> None:
        """The worker sleeps without a task until the next `set`, which calls
        `resume` (None: it no longer sleeps)."""
        self._resume = resume


class TokenWorker:
    """What is known about one EgainToken, and its task.

    The EgainToken is kept as last seen, as compact JSON text (a fifth of the
    objects it parses into), its status apart: parsed again by a look, and by
    a watch event for the spec. What every event asks (uid, generation, the
    refresh annotation) is kept as read. Ten thousand tokens each keeping
    their EgainToken parsed came to a fifth of the operator's memory.
    """

    def __init__(self, key: Key, body: Mapping[str, Any]) -> None:
        self.key = key
        self.wake = Wake()
        self.task: asyncio.Task[None] | None = None
        # While it sleeps without a task: what starts it at its wake-up time.
        self.timer: asyncio.TimerHandle | None = None
        # Looks failed in a row (the Kubernetes API, a bug): its backoff.
        self.failures = 0
        # The last spec that could be served.
        self.spec: TokenSpec | None = None
        self.memory = Memory()
        # The resourceVersion of the credentials Secret the last look read.
        self.credentials_version: str | None = None
        self.uid = ""
        self.generation: int | None = None
        self.refresh_request: str | None = None
        self._manifest = b""
        self._status = b""
        self.body = body

    @property
    def body(self) -> Mapping[str, Any]:
        """The EgainToken as last seen, its status included."""
        status = self.status
        return {**self.manifest, "status": status} if status else self.manifest

    @body.setter
    def body(self, body: Mapping[str, Any]) -> None:
        manifest = {k: v for k, v in body.items() if k != "status"}
        self._manifest = _compact(manifest)
        self.status = body.get("status") or {}
        metadata = manifest.get("metadata") or {}
        self.uid = str(metadata.get("uid", ""))
        generation = metadata.get("generation")
        self.generation = generation if isinstance(generation, int) else None
        value = (metadata.get("annotations") or {}).get(REFRESH_REQUESTED_AT_ANNOTATION)
        self.refresh_request = value if isinstance(value, str) and value else None

    @property
    def manifest(self) -> dict[str, Any]:
        """The EgainToken as last seen, without its status."""
        manifest: dict[str, Any] = json.loads(self._manifest)
        return manifest

    @property
    def status(self) -> dict[str, Any]:
        """The EgainToken's status as last seen (the watch's, or the last patch's answer)."""
        status: dict[str, Any] = json.loads(self._status) if self._status else {}
        return status

    @status.setter
    def status(self, status: Mapping[str, Any]) -> None:
        self._status = _compact(status) if status else b""

    @property
    def owner(self) -> Owner:
        return Owner(self.key[0], self.key[1], self.uid)

    def remember(self, seen: Observation, decided: Plan) -> None:
        """Keep what the next look, and the watch events, are judged against."""
        self.spec = seen.snapshot.spec or self.spec
        self.credentials_version = seen.snapshot.credentials_version or self.credentials_version
        self.memory = decided.memory


@dataclass(frozen=True, slots=True)
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
    status = worker.status
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
    raw = worker.manifest.get("spec") or {}
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
