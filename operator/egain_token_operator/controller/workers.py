"""The worker registry: one task per EgainToken, the indexes, leadership.

Data flows one way: watch events only update what is known and wake a
worker; the worker's task takes one look at a time (`Reconciler.reconcile`:
observe, plan, act) and then ends, the worker asleep until the plan's wake-up
time or the next relevant event, whichever comes first (a timer, not a task:
most workers sleep most of the time). Only the leader runs workers.

Events find the workers they concern through indexes (`index.Index`), never by
going through every worker: a Secret → the EgainTokens that read or write it;
a client → the EgainTokens that name it; a client → its credentials Secret; a
namespace → the EgainTokens in it that name a ClusterEgainClient.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from egain_token_operator import metrics
from egain_token_operator.controller.index import Index
from egain_token_operator.controller.observe import TokenWorker
from egain_token_operator.controller.reconcile import NotHoldingError, Reconciler
from egain_token_operator.decisions.clients import (
    ClientKey,
    parse_client_ref,
    referenced_credentials,
)
from egain_token_operator.decisions.render import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    REFRESH_REQUESTED_AT_ANNOTATION,
    TOKEN_LABEL,
    secret_is_current,
)
from egain_token_operator.decisions.tokenspec import referenced_secrets
from egain_token_operator.egain.slots import FairSlots
from egain_token_operator.kube.api import KubeError
from egain_token_operator.kube.watch import Key, trimmed

logger = logging.getLogger(__name__)

# What a worker reads of its EgainToken's metadata; the rest is not kept.
_TOKEN_METADATA = ("name", "namespace", "uid", "generation", "deletionTimestamp", "annotations")

# Looks under way at once. Past this, more at once only interleave: what each
# holds while under way (requests, responses, rendered bodies) adds up, and
# thousands of EgainTokens created or due together would raise the memory
# high-water mark, which the process keeps. Token requests have their own
# limit (--max-concurrent-requests, 16 by default), well under this one. Both
# are shared fairly among namespaces (`FairSlots`): one namespace holds at
# most 56 looks, so that its many or hanging tokens never make another
# namespace's token wait for a look.
_CONCURRENT_LOOKS = 64

# Backoff after a failed look (the API server down, RBAC missing, a bug).
_API_RETRY_INITIAL = 2.0
_API_RETRY_MAX = 20.0  # the cap of an expired token's retries (schedule.RetryPolicy)


# The log line said once every EgainToken has had its first look (`FirstLooks`).
FIRST_LOOKS_DONE = "every EgainToken has had its first look"


class FirstLooks:
    """Which EgainTokens have not had their first look since this replica
    started acting, and whether every one has.

    After a restart, a look that finds everything current writes nothing, so
    no write tells that every EgainToken was looked at: this does. The first
    looks are complete once the EgainTokens were listed (`listed`) and every
    worker started since `begin` has taken a look or ended with its EgainToken.
    The methods that can complete them return the seconds since `begin` when
    they do, once; None otherwise.
    """

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._pending: set[Key] = set()
        self._listed = False
        self._counting = False
        self._since = clock()
        self.looked_at = 0  # EgainTokens looked at since `begin`

    def begin(self) -> None:
        """Start counting: this replica starts acting; each worker started says so."""
        self._pending.clear()
        self._counting, self._since, self.looked_at = True, self._clock(), 0

    def end(self) -> None:
        """Stop counting: this replica stands by."""
        self._pending.clear()
        self._counting = False

    def started(self, key: Key) -> None:
        """A worker started while first looks are counted."""
        if self._counting:
            self._pending.add(key)

    def listed(self) -> float | None:
        """Every EgainToken was listed (their workers started)."""
        self._listed = True
        return self._completed()

    def looked(self, key: Key) -> float | None:
        """`key`'s worker took a look."""
        if key in self._pending:
            self._pending.discard(key)
            self.looked_at += 1
        return self._completed()

    def gone(self, key: Key) -> float | None:
        """`key`'s EgainToken went (deleted, or no longer selected)."""
        self._pending.discard(key)
        return self._completed()

    def _completed(self) -> float | None:
        if not self._counting or not self._listed or self._pending:
            return None
        self._counting = False
        return (self._clock() - self._since).total_seconds()


class WorkerRegistry:
    """Keeps every observed EgainToken's Secret holding a fresh token: a worker each."""

    def __init__(
        self,
        reconciler: Reconciler,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        active: bool = True,
        acting: Callable[[], Awaitable[None]] | None = None,
        on_client_touched: Callable[[ClientKey], None] = lambda key: None,
    ) -> None:
        self.reconciler = reconciler
        self._clock = clock
        self._workers: dict[Key, TokenWorker] = {}
        # (namespace, Secret name) -> the EgainTokens that read or write it.
        self._secret_users: Index[Key, Key] = Index()
        # A client -> the EgainTokens that name it.
        self._client_users: Index[ClientKey, Key] = Index()
        # (namespace, Secret name) -> the clients whose credentials it holds.
        self._credentials_users: Index[Key, ClientKey] = Index()
        # A namespace -> the EgainTokens in it that name a ClusterEgainClient.
        self._namespace_users: Index[str, Key] = Index()
        # Told when a client's status may change: its tokens or its credentials.
        self._on_client_touched = on_client_touched
        # Whether workers run; a replica standing by only keeps track of EgainTokens.
        self._active = active
        # With leader election, awaited before each look: returns once this
        # replica may act (its hold on the Lease is current), so that a worker
        # whose timer fires in a process just resumed from a freeze does nothing
        # until the elector has renewed the Lease or stood by (and cancelled it).
        self._acting = acting
        self._looks = FairSlots(_CONCURRENT_LOOKS)
        self._first_looks = FirstLooks(clock)
        if active:
            self._first_looks.begin()

    def tokens_listed(self) -> None:
        """Take that every served EgainToken has been listed once (the token watches
        synced): from then on, the first looks can be complete."""
        self._said_first_looks(self._first_looks.listed())

    def _said_first_looks(self, seconds: float | None) -> None:
        if seconds is not None:
            logger.info(
                "%s (%d looked at, %.1fs after this replica started acting)",
                FIRST_LOOKS_DONE,
                self._first_looks.looked_at,
                seconds,
            )

    def needs_secret(self, key: Key) -> bool:
        """True when a served EgainToken writes or reads the Secret `key`, or a
        client names it for its credentials: the Secrets whose data the cache
        keeps (`secretcache.SecretCache`)."""
        return bool(self._secret_users.users(key) or self._credentials_users.users(key))

    def _released(self, keys: Iterable[Key]) -> None:
        """Let the cache forget the data of the Secrets among `keys` no longer needed."""
        for key in keys:
            if not self.needs_secret(key):
                self.reconciler.secrets.release(*key)

    def token_count(self, client: ClientKey) -> int:
        """How many EgainTokens name `client`."""
        return len(self._client_users.users(client))

    # --- watch events -------------------------------------------------------

    def observe_token(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """Take an EgainToken watch event."""
        body = trimmed(body, _TOKEN_METADATA, (REFRESH_REQUESTED_AT_ANNOTATION,))
        metadata = body["metadata"]
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
        """Take a Secret watch event (a managed Secret in full, any other as metadata only):
        wake the workers whose inputs or output changed, directly or through a client."""
        metadata = body.get("metadata", {})
        secret_key = (str(metadata.get("namespace")), str(metadata.get("name")))
        users = set(self._secret_users.users(secret_key))
        for client in self._credentials_users.users(secret_key):
            self._on_client_touched(client)
            users |= self._client_users.users(client)
        for key in users:
            worker = self._workers.get(key)
            if worker is None or worker.spec is None:
                continue
            if event_type != "DELETED" and self._unchanged_for(worker, secret_key, body):
                continue
            worker.wake.set()

    def observe_client(self, client: ClientKey, body: Mapping[str, Any] | None) -> None:
        """Take a client that appeared, went or whose spec changed: wake the
        EgainTokens that name it."""
        spec = (body or {}).get("spec") or {}
        credentials = referenced_credentials(
            client, spec, self.reconciler.clients.cluster_namespace
        )
        self._released(self._credentials_users.set(client, [credentials] if credentials else []))
        self._on_client_touched(client)
        self._wake(self._client_users.users(client))

    def observe_namespace(self, namespace: str) -> None:
        """Take a namespace whose labels changed: wake the EgainTokens in it that
        name a ClusterEgainClient (whose selector may now match, or no longer)."""
        self._wake(self._namespace_users.users(namespace))

    def _wake(self, keys: Iterable[Key]) -> None:
        for key in keys:
            worker = self._workers.get(key)
            if worker is not None:
                worker.wake.set()

    def _unchanged_for(
        self, worker: TokenWorker, secret_key: Key, secret: Mapping[str, Any]
    ) -> bool:
        """True when `secret` is what the worker last saw or wrote, so no look is needed."""
        assert worker.spec is not None
        credentials = worker.spec.credentials
        if secret_key == (credentials.namespace or worker.key[0], credentials.name):
            version = (secret.get("metadata") or {}).get("resourceVersion")
            return version is not None and version == worker.credentials_version
        if secret_key[0] != worker.key[0]:
            return False  # a client's former credentials: the next look tells
        labels = secret.get("metadata", {}).get("labels") or {}
        ours = (
            labels.get(MANAGED_BY_LABEL) == MANAGED_BY and labels.get(TOKEN_LABEL) == worker.key[1]
        )
        return (
            ours
            and worker.memory.token is not None
            and secret_is_current(secret, worker.memory.token, worker.spec, worker.owner)
        )

    def _index(self, worker: TokenWorker) -> None:
        (namespace, name), spec = worker.key, worker.manifest.get("spec") or {}
        self._released(
            self._secret_users.set(
                worker.key, [(namespace, secret) for secret in referenced_secrets(name, spec)]
            )
        )
        ref = parse_client_ref(spec, lenient=True)
        self._index_client(worker.key, [ref.key(namespace)] if ref else [])
        cluster_client = ref is not None and not ref.kind.namespaced
        self._namespace_users.set(worker.key, [namespace] if cluster_client else [])

    def _index_client(self, key: Key, clients: list[ClientKey]) -> None:
        for client in self._client_users.set(key, clients):
            self._on_client_touched(client)  # its token count changed

    def _forget(self, key: Key) -> None:
        worker = self._workers.pop(key, None)
        if worker is None:
            return
        self._released(self._secret_users.set(key, []))
        self._index_client(key, [])
        self._namespace_users.set(key, [])
        if worker.task is not None:
            worker.task.cancel()
        _unschedule(worker)
        self.reconciler.sharing.leave(key)
        self.reconciler.budgets.withdraw(key, self._clock())
        metrics.forget(*key)
        self._said_first_looks(self._first_looks.gone(key))

    def _start(self, worker: TokenWorker) -> None:
        self._first_looks.started(worker.key)
        self._spawn(worker)

    def _spawn(self, worker: TokenWorker) -> None:
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
        self._first_looks.begin()
        for key, worker in list(self._workers.items()):
            self._workers[key] = fresh = TokenWorker(key, worker.body)
            self._index(fresh)
            self._start(fresh)

    async def deactivate(self) -> None:
        """Stop acting (this replica stands by): end every worker, keep the EgainTokens."""
        self._active = False
        self._first_looks.end()
        await self._cancel_all()
        # Shared tokens and budgets are kept only while acting: a new leader starts afresh.
        self.reconciler.sharing.clear()
        self.reconciler.budgets.clear()
        for key, worker in self._workers.items():
            worker.task = None
            _unschedule(worker)
            metrics.forget(*key)

    async def stop(self) -> None:
        """Cancel every worker and wait for them to end."""
        await self._cancel_all()
        self.reconciler.sharing.clear()
        self.reconciler.budgets.clear()
        for worker in self._workers.values():
            _unschedule(worker)
        self._workers.clear()
        for index in (self._secret_users, self._client_users, self._namespace_users):
            index.clear()

    # --- the worker loop ----------------------------------------------------

    async def _run(self, worker: TokenWorker) -> None:
        """Look at `worker`'s EgainToken until a look leaves it nothing to do before
        its wake-up time; then end, the worker asleep (`_sleep`)."""
        # A look judges Secrets by the cache: not before the watches listed them.
        await self.reconciler.secrets.synced()
        while True:
            ref = parse_client_ref(worker.manifest.get("spec") or {}, lenient=True)
            if ref is not None:
                # Nor clients, for a token that names one: waited for here, not
                # while holding a look, so that clients never listed (their RBAC
                # not granted, say) hold no other token back.
                await self.reconciler.clients.synced(ref.kind)
            if self._acting is not None:
                await self._acting()
            try:
                async with self._looks.hold(worker.key[0]):
                    worker.wake.clear()
                    wake_at = await self.reconciler.reconcile(worker)
                worker.failures = 0
                self._said_first_looks(self._first_looks.looked(worker.key))
            except NotHoldingError:
                logger.debug("EgainToken %s/%s: request not sent: Lease not held", *worker.key)
                continue  # back to the gate
            except Exception as exc:
                # A worker must outlive any failure, or its token would silently
                # stop being refreshed: log, back off, look again.
                worker.failures += 1
                delay = min(_API_RETRY_INITIAL * 2 ** (worker.failures - 1), _API_RETRY_MAX)
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
            if not worker.wake.is_set():  # else an event came during the look: again
                self._sleep(worker, wake_at)
                return

    def _sleep(self, worker: TokenWorker, wake_at: datetime | None) -> None:
        """End `worker`'s task until `wake_at` or its wake, whichever comes first.

        A sleeping worker holds a timer, not a task: a task waiting, its
        coroutine and what a token request left with it (anyio's state of the
        task) came to about 2 KiB per EgainToken, most of which sleep.
        """
        worker.task = None
        resume = functools.partial(self._resume, worker)
        worker.wake.sleep(resume)
        if wake_at is not None:
            delay = max((wake_at - self._clock()).total_seconds(), 0.0)
            worker.timer = asyncio.get_running_loop().call_later(delay, resume)

    def _resume(self, worker: TokenWorker) -> None:
        """Start a sleeping worker's task again (its wake-up time came, or its wake).

        Only a served worker of an acting replica sleeps: forgetting a worker
        and standing by `_unschedule` it."""
        _unschedule(worker)
        self._spawn(worker)


def _unschedule(worker: TokenWorker) -> None:
    """Forget what would start a sleeping worker again."""
    worker.wake.sleep(None)
    if worker.timer is not None:
        worker.timer.cancel()
        worker.timer = None
