"""One worker per EgainToken: look, decide, fetch, write, sleep until the next look.

Data flows one way: watch events only update what is known and wake the
worker; the worker reads the spec, the credentials and the managed Secret,
asks `policy.decide` what to do, fetches a token if told to, writes the
Secret and the status through `kube.Kube`, then sleeps until the decision's
wake-up time or the next relevant event, whichever comes first.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from egain_token_operator import metrics
from egain_token_operator.egain import (
    ClientCredentials,
    EgainClient,
    TokenRequest,
    TokenResponse,
    build_request,
)
from egain_token_operator.kube import ConflictError, Kube, KubeError, NotFoundError
from egain_token_operator.policy import (
    Decision,
    Failure,
    RetryPolicy,
    StoredToken,
    decide,
    is_ready,
    propagation_shortfall,
    propagation_warning_is_new,
    refresh_at,
    retry_delay,
    stable_fraction,
)
from egain_token_operator.reasons import LIFETIME_SHORTER_THAN_ALLOWANCE, Reason, TokenError
from egain_token_operator.render import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    REFRESH_REQUESTED_AT_ANNOTATION,
    TOKEN_LABEL,
    Owner,
    is_owned_by,
    parse_rfc3339,
    ready_condition,
    render_secret,
    render_status,
    rfc3339,
    secret_is_current,
    stored_token,
)
from egain_token_operator.restarts import RolloutRestarter
from egain_token_operator.spec import InvalidSpecError, TokenSpec, parse_spec, referenced_secrets

logger = logging.getLogger(__name__)

Key = tuple[str, str]
EventPoster = Callable[[Mapping[str, Any], str, str, str], None]

# Failures found without asking eGain; re-checked at every look, since a look
# costs nothing at eGain. They still record a failure for the status.
_LOCAL_REASONS = frozenset(
    {
        Reason.INVALID_SPEC,
        Reason.CREDENTIALS_NOT_FOUND,
        Reason.SECRET_CONFLICT,
        Reason.TOKEN_URL_NOT_ALLOWED,
    }
)
_CHECKED_ABOVE = _LOCAL_REASONS - {Reason.TOKEN_URL_NOT_ALLOWED}
# Backoff after a failed look (the API server down, RBAC missing, a bug).
_API_RETRY_INITIAL = 2.0
_API_RETRY_MAX = 60.0


@dataclass
class TokenWorker:
    """What is known about one EgainToken, and its task."""

    key: Key
    body: Mapping[str, Any]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    spec: TokenSpec | None = None
    token: StoredToken | None = None
    failure: Failure | None = None
    credentials_digest: str | None = None
    status_sent: dict[str, Any] | None = None
    restored_failure: bool = False

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


def _credentials_digest(secret: Mapping[str, Any] | None) -> str:
    # Only to notice changes of the credentials in memory; never stored.
    data = (secret or {}).get("data") or {}
    return hashlib.sha256(repr(sorted(data.items())).encode()).hexdigest()


def _credentials(secret: Mapping[str, Any] | None, spec: TokenSpec) -> ClientCredentials:
    ref = spec.credentials
    if secret is None:
        raise TokenError(f"Secret {ref.name} not found", reason=Reason.CREDENTIALS_NOT_FOUND)
    data = secret.get("data") or {}
    values = []
    for key in (ref.client_id_key, ref.client_secret_key):
        try:
            value = base64.b64decode(data.get(key) or "", validate=True).decode().strip()
        except (binascii.Error, UnicodeDecodeError):
            value = ""
        if not value:
            raise TokenError(
                f"Secret {ref.name} has no non-empty key {key}",
                reason=Reason.CREDENTIALS_NOT_FOUND,
            )
        values.append(value)
    return ClientCredentials(values[0], values[1])


def _changed_since(secret: Mapping[str, Any] | None, instant: datetime) -> bool:
    """Whether `secret` was created or written in a later second than `instant`.

    The API server stamps every write in `metadata.managedFields[].time`; this is
    how a restarted operator learns that credentials changed while it was down.
    A write in the same second is taken as older: credentials are usually
    applied together with the EgainToken whose first request fails at once.
    """
    metadata = (secret or {}).get("metadata") or {}
    stamps = [metadata.get("creationTimestamp")]
    stamps += [entry.get("time") for entry in metadata.get("managedFields") or []]
    return any(
        isinstance(stamp, str) and parse_rfc3339(stamp) > _whole_seconds(instant)
        for stamp in stamps
    )


def _whole_seconds(instant: datetime) -> datetime:
    # Times are written with whole seconds; keeping them so in memory makes a
    # token read back from its Secret equal to the one that was written.
    return instant.replace(microsecond=0)


class Controller:
    """Keeps every observed EgainToken's Secret holding a fresh token."""

    def __init__(
        self,
        *,
        kube: Kube,
        egain: EgainClient,
        policy: RetryPolicy,
        restarter: RolloutRestarter,
        post_event: EventPoster,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        active: bool = True,
    ) -> None:
        self._kube = kube
        self._egain = egain
        self._policy = policy
        self._restarter = restarter
        self._post_event = post_event
        self._clock = clock
        self._workers: dict[Key, TokenWorker] = {}
        # Secrets that matter to workers: (namespace, Secret name) -> worker keys.
        self._secret_watchers: dict[Key, set[Key]] = {}
        # Whether workers run; a replica standing by only keeps track of EgainTokens.
        self._active = active

    # --- watch events -------------------------------------------------------

    def observe_token(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """Take an EgainToken watch event (kopf's `on.event`)."""
        metadata = body.get("metadata", {})
        key = (str(metadata.get("namespace")), str(metadata.get("name")))
        worker = self._workers.get(key)
        if event_type == "DELETED" or metadata.get("deletionTimestamp"):
            self._forget(key)
            return
        if worker is not None and worker.uid != metadata.get("uid"):
            self._forget(key)
            worker = None
        if worker is None:
            worker = TokenWorker(key, body)
            self._workers[key] = worker
            self._index(worker)
            if self._active:
                self._start(worker)
            return
        previous = (worker.generation, worker.refresh_request)
        worker.body = body
        self._index(worker)
        if (worker.generation, worker.refresh_request) != previous:
            worker.wake.set()

    def observe_secret(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """Take a Secret watch event: wake the workers whose inputs or output changed."""
        metadata = body.get("metadata", {})
        secret_key = (str(metadata.get("namespace")), str(metadata.get("name")))
        for key in self._secret_watchers.get(secret_key, set()):
            worker = self._workers.get(key)
            if worker is None or worker.spec is None:
                continue
            if event_type != "DELETED" and self._unchanged_for(worker, secret_key[1], body):
                continue
            worker.wake.set()

    def _unchanged_for(self, worker: TokenWorker, name: str, secret: Mapping[str, Any]) -> bool:
        """True when `secret` is what the worker last saw or wrote, so no look is needed."""
        assert worker.spec is not None
        if name == worker.spec.credentials.name:
            return _credentials_digest(secret) == worker.credentials_digest
        labels = secret.get("metadata", {}).get("labels") or {}
        ours = (
            labels.get(MANAGED_BY_LABEL) == MANAGED_BY and labels.get(TOKEN_LABEL) == worker.key[1]
        )
        return (
            ours
            and worker.token is not None
            and secret_is_current(secret, worker.token, worker.spec, worker.owner)
        )

    def _index(self, worker: TokenWorker) -> None:
        for watchers in self._secret_watchers.values():
            watchers.discard(worker.key)
        for name in referenced_secrets(worker.key[1], worker.body.get("spec") or {}):
            self._secret_watchers.setdefault((worker.key[0], name), set()).add(worker.key)

    def _forget(self, key: Key) -> None:
        worker = self._workers.pop(key, None)
        if worker is None:
            return
        for watchers in self._secret_watchers.values():
            watchers.discard(key)
        if worker.task is not None:
            worker.task.cancel()
        metrics.forget(*key)

    def _start(self, worker: TokenWorker) -> None:
        worker.task = asyncio.get_running_loop().create_task(
            self._run(worker), name=f"egaintoken {worker.key[0]}/{worker.key[1]}"
        )

    async def _cancel_all(self) -> None:
        tasks = [w.task for w in self._workers.values() if w.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def activate(self) -> None:
        """Start acting (this replica became the leader): a worker for every EgainToken.

        Each starts afresh, as after a restart, from what the cluster holds: the
        token in its Secret and the backoff in its status.
        """
        self._active = True
        for key, worker in list(self._workers.items()):
            self._workers[key] = fresh = TokenWorker(key, worker.body)
            self._index(fresh)
            self._start(fresh)

    async def deactivate(self) -> None:
        """Stop acting (this replica stands by): end every worker, keep the EgainTokens."""
        self._active = False
        await self._cancel_all()
        for key, worker in self._workers.items():
            worker.task = None
            metrics.forget(*key)

    async def stop(self) -> None:
        """Cancel every worker and wait for them to end."""
        await self._cancel_all()
        self._workers.clear()
        self._secret_watchers.clear()

    # --- the worker loop ----------------------------------------------------

    async def _run(self, worker: TokenWorker) -> None:
        api_failures = 0
        while True:
            worker.wake.clear()
            try:
                wake_at = await self.reconcile(worker)
                api_failures = 0
            except Exception as exc:
                # A worker must outlive any failure, or its token would silently
                # stop being refreshed: log, back off, look again.
                api_failures += 1
                delay = min(_API_RETRY_INITIAL * 2 ** (api_failures - 1), _API_RETRY_MAX)
                logger.warning(
                    "EgainToken %s/%s: %s; retrying in %.0fs",
                    *worker.key,
                    f"Kubernetes API call failed ({exc})"
                    if isinstance(exc, KubeError)
                    else f"unexpected {type(exc).__name__}",
                    delay,
                    exc_info=not isinstance(exc, KubeError),
                )
                wake_at = self._clock() + timedelta(seconds=delay)
            timeout = None if wake_at is None else (wake_at - self._clock()).total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    worker.wake.wait(), max(timeout, 0.0) if timeout else timeout
                )

    async def reconcile(self, worker: TokenWorker) -> datetime | None:
        """One look at `worker`'s EgainToken. Returns when to look again (None: on events only)."""
        now = self._clock()
        namespace, name = worker.key
        fingerprint: str | None = None
        spec_error: str | None = None
        decision = Decision(False, None, "")
        self._restore_failure(worker)
        try:
            try:
                spec = parse_spec(name, worker.body.get("spec") or {})
            except InvalidSpecError as exc:
                spec_error = str(exc)
                raise TokenError(spec_error, reason=Reason.INVALID_SPEC) from None
            worker.spec = spec
            self._index(worker)
            credentials_secret = await self._kube.read_secret(namespace, spec.credentials.name)
            worker.credentials_digest = _credentials_digest(credentials_secret)
            restored = worker.failure
            if (
                restored is not None
                and restored.fingerprint is None
                and _changed_since(credentials_secret, restored.at)
            ):
                worker.failure = None  # the credentials changed since: the cause may be gone
            credentials = _credentials(credentials_secret, spec)
            request = build_request(spec, credentials)
            fingerprint = request.fingerprint
            secret = await self._kube.read_secret(namespace, spec.secret_name)
            if secret is not None and not is_owned_by(secret, worker.owner):
                raise TokenError(
                    f"Secret {spec.secret_name} exists and is not owned by this EgainToken; "
                    "it is left untouched",
                    reason=Reason.SECRET_CONFLICT,
                )
            if worker.token is None and secret is not None:
                worker.token = stored_token(secret)
            failure = worker.failure
            if failure is not None and failure.reason in _CHECKED_ABOVE:
                worker.failure = failure = None  # every check above passed: its cause is gone
            decision = decide(
                now=now,
                fingerprint=fingerprint,
                refresh_request=worker.refresh_request,
                token=worker.token,
                refresh_time=self._refresh_time(worker),
                # Local failures are re-checked at every look, so they hold nothing back.
                failure=None if failure is None or failure.reason in _LOCAL_REASONS else failure,
            )
            if decision.request_token:
                await self._request_token(worker, spec, request, now)
            await self._write_secret(worker, spec, secret)
        except TokenError as failure:
            self._record_failure(worker, failure.reason, failure.message, None, fingerprint, now)
        return await self._publish(worker, fingerprint, spec_error, decision, now)

    def _refresh_time(self, worker: TokenWorker) -> datetime | None:
        if worker.token is None or worker.spec is None:
            return None
        jitter = stable_fraction(worker.uid, rfc3339(worker.token.issued_at))
        return refresh_at(worker.token, worker.spec.refresh_before, self._policy, jitter)

    def _restore_failure(self, worker: TokenWorker) -> None:
        """After a restart, keep honouring the backoff recorded in the status."""
        if worker.restored_failure:
            return
        worker.restored_failure = True
        status = worker.body.get("status") or {}
        last = status.get("lastFailure") or {}
        try:
            reason = Reason(str(last.get("reason")))
            at = parse_rfc3339(last["time"])
            retry_at = parse_rfc3339(status["nextRefreshAt"])
        except (KeyError, TypeError, ValueError):
            return
        if reason in _LOCAL_REASONS or status.get("observedGeneration") != worker.generation:
            return
        worker.failure = Failure(
            count=int(status.get("consecutiveFailures") or 1),
            reason=reason,
            message=str(last.get("message", "")),
            at=at,
            retry_at=retry_at,
            fingerprint=None,
            refresh_request=worker.refresh_request,
        )

    async def _request_token(
        self,
        worker: TokenWorker,
        spec: TokenSpec,
        request: TokenRequest,
        now: datetime,
    ) -> None:
        namespace, name = worker.key
        fingerprint = request.fingerprint
        try:
            response, requested_at = await self._egain.fetch_token(request)
        except TokenError as error:
            if error.reason not in _LOCAL_REASONS:  # nothing was sent
                metrics.REFRESHES.labels(namespace, name, "failure", error.reason.value).inc()
            self._record_failure(
                worker, error.reason, error.message, error.retry_after, fingerprint, self._clock()
            )
            return
        metrics.REFRESHES.labels(namespace, name, "success", Reason.TOKEN_ISSUED.value).inc()
        if response.expires_in_defaulted:
            self._note_default_lifetime(worker, response)
        recovered = worker.failure is not None
        worker.failure = None
        previous = worker.token
        worker.token = StoredToken(
            access_token=response.access_token,
            token_type=response.token_type,
            scopes=response.scopes,
            issued_at=_whole_seconds(requested_at),
            expires_at=_whole_seconds(response.expires_at(requested_at)),
            fingerprint=fingerprint,
            refresh_request=worker.refresh_request,
        )
        message = f"token valid until {rfc3339(worker.token.expires_at)}"
        if recovered:
            message += " (recovered)"
        logger.info("EgainToken %s/%s: new token issued, %s", namespace, name, message)
        self._post_event(worker.body, "Normal", Reason.TOKEN_ISSUED.value, message)
        shortfall = propagation_shortfall(worker.token, spec.refresh_before, self._policy)
        if shortfall is not None and propagation_warning_is_new(
            previous, worker.token, spec.refresh_before, self._policy
        ):
            # Once when it starts or changes, not at every refresh.
            warning = shortfall.describe()
            logger.warning("EgainToken %s/%s: %s", namespace, name, warning)
            self._post_event(worker.body, "Warning", LIFETIME_SHORTER_THAN_ALLOWANCE, warning)
        if spec.rollout_targets:
            self._restarter.request(namespace, spec.rollout_targets, now)

    def _note_default_lifetime(self, worker: TokenWorker, response: TokenResponse) -> None:
        # Said once per token lifetime change, not at every refresh.
        if worker.token is None or worker.token.expires_at - worker.token.issued_at != timedelta(
            seconds=response.expires_in
        ):
            logger.info(
                "EgainToken %s/%s: the token response has no expires_in; "
                "taking the default lifetime of %.0fs",
                *worker.key,
                response.expires_in,
            )

    def _record_failure(
        self,
        worker: TokenWorker,
        reason: Reason,
        message: str,
        retry_after: float | None,
        fingerprint: str | None,
        now: datetime,
    ) -> None:
        previous = worker.failure
        count = previous.count + 1 if previous is not None else 1
        remaining = None
        if worker.token is not None and worker.token.is_valid(now):
            remaining = worker.token.expires_at - now
        delay = retry_delay(
            failures=count,
            reason=reason,
            retry_after=retry_after,
            remaining_validity=remaining,
            policy=self._policy,
            jitter=stable_fraction(worker.uid, str(count), rfc3339(now)),
        )
        worker.failure = Failure(
            count=count,
            reason=reason,
            message=message,
            at=now,
            retry_at=now + delay,
            fingerprint=fingerprint,
            refresh_request=worker.refresh_request,
        )
        if previous is None or previous.reason != reason or previous.message != message:
            logger.warning(
                "EgainToken %s/%s: %s: %s (retry in %.0fs)",
                *worker.key,
                reason.value,
                message,
                delay.total_seconds(),
            )
            self._post_event(worker.body, "Warning", reason.value, message)

    async def _write_secret(
        self, worker: TokenWorker, spec: TokenSpec, secret: Mapping[str, Any] | None
    ) -> None:
        """Write the managed Secret unless it already holds the current token."""
        token = worker.token
        if token is None or not token.is_valid(self._clock()):
            return
        if secret is not None and secret_is_current(secret, token, spec, worker.owner):
            return
        namespace = worker.key[0]
        try:
            if secret is None:
                await self._kube.create_secret(namespace, render_secret(token, spec, worker.owner))
            else:
                body = render_secret(token, spec, worker.owner, existing=secret)
                await self._kube.replace_secret(namespace, body)
        except (ConflictError, NotFoundError):
            # Changed or deleted since it was read: look again at once.
            worker.wake.set()

    async def _publish(
        self,
        worker: TokenWorker,
        fingerprint: str | None,
        spec_error: str | None,
        decision: Decision,
        now: datetime,
    ) -> datetime | None:
        """Write status and metrics; return when to look again."""
        namespace, name = worker.key
        token, failure = worker.token, worker.failure
        ready = is_ready(token, fingerprint, now)
        refresh_time = self._refresh_time(worker) if ready else None
        next_look = [t for t in (decision.wake_at, refresh_time) if t is not None]
        if failure is not None:
            next_look.append(failure.retry_at)  # for local failures, a periodic re-check
        if ready and token is not None:
            next_look.append(token.expires_at)  # Ready turns False at expiry
        wake_at = min(next_look) if next_look else None
        shortfall = (
            propagation_shortfall(token, worker.spec.refresh_before, self._policy)
            if ready and worker.spec is not None
            else None
        )
        condition = ready_condition(
            spec_error=spec_error,
            ready=ready,
            token=token,
            fingerprint=fingerprint,
            failure=failure,
            now=now,
            shortfall=shortfall,
        )
        planned = failure.retry_at if failure is not None else refresh_time
        status = render_status(
            generation=worker.generation,
            condition=condition,
            previous_conditions=list(
                (worker.status_sent or worker.body.get("status") or {}).get("conditions") or []
            ),
            secret_name=worker.spec.secret_name if worker.spec else name,
            token=token if token is not None and token.fingerprint == fingerprint else None,
            next_refresh_at=planned,
            failure=failure,
            now=now,
        )
        if status != worker.status_sent:
            try:
                await self._kube.patch_token_status(namespace, name, status)
                worker.status_sent = status
            except NotFoundError:
                return None  # deleted meanwhile; the DELETED event ends the worker
        if token is not None:
            metrics.EXPIRATION.labels(namespace, name).set(token.expires_at.timestamp())
        if planned is not None:
            metrics.RENEWAL.labels(namespace, name).set(planned.timestamp())
        metrics.CONSECUTIVE_FAILURES.labels(namespace, name).set(failure.count if failure else 0)
        metrics.set_ready(namespace, name, condition.status)
        return wake_at
