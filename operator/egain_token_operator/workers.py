"""The worker registry: one task per EgainToken, the Secret index, leadership.

Data flows one way: watch events only update what is known and wake a
worker; the worker's task takes one look at a time (`Reconciler.reconcile`:
observe, plan, act) and sleeps until the plan's wake-up time or the next
relevant event, whichever comes first. Only the leader runs workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from egain_token_operator import metrics
from egain_token_operator.kube import KubeError
from egain_token_operator.reconcile import Key, Reconciler, TokenWorker
from egain_token_operator.render import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    REFRESH_REQUESTED_AT_ANNOTATION,
    TOKEN_LABEL,
    secret_is_current,
)
from egain_token_operator.spec import referenced_secrets
from egain_token_operator.watch import trimmed

logger = logging.getLogger(__name__)

# What a worker reads of its EgainToken's metadata; the rest is not kept.
_TOKEN_METADATA = ("name", "namespace", "uid", "generation", "deletionTimestamp", "annotations")

# Looks under way at once. Past this, more at once only interleave: what each
# holds while under way (requests, responses, rendered bodies) adds up, and
# thousands of EgainTokens created or due together would raise the memory
# high-water mark, which the process keeps. Token requests have their own
# limit (--max-concurrent-requests, 16 by default), well under this one.
_CONCURRENT_LOOKS = 64

# Backoff after a failed look (the API server down, RBAC missing, a bug).
_API_RETRY_INITIAL = 2.0
_API_RETRY_MAX = 20.0  # the cap of an expired token's retries (schedule.RetryPolicy)


class WorkerRegistry:
    """Keeps every observed EgainToken's Secret holding a fresh token: a worker each."""

    def __init__(
        self,
        reconciler: Reconciler,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        active: bool = True,
    ) -> None:
        self.reconciler = reconciler
        self._clock = clock
        self._workers: dict[Key, TokenWorker] = {}
        # Secrets that matter to workers: (namespace, Secret name) -> worker keys.
        self._secret_watchers: dict[Key, set[Key]] = {}
        # Whether workers run; a replica standing by only keeps track of EgainTokens.
        self._active = active
        self._looks = asyncio.Semaphore(_CONCURRENT_LOOKS)

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
        wake the workers whose inputs or output changed."""
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
            version = (secret.get("metadata") or {}).get("resourceVersion")
            return version is not None and version == worker.credentials_version
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
        self.reconciler.sharing.leave(key)
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
        # Shared tokens are kept only while acting: a new leader starts afresh.
        self.reconciler.sharing.clear()
        for key, worker in self._workers.items():
            worker.task = None
            metrics.forget(*key)

    async def stop(self) -> None:
        """Cancel every worker and wait for them to end."""
        await self._cancel_all()
        self.reconciler.sharing.clear()
        self._workers.clear()
        self._secret_watchers.clear()

    # --- the worker loop ----------------------------------------------------

    async def _run(self, worker: TokenWorker) -> None:
        # A look judges Secrets by the cache: not before the watches listed them.
        await self.reconciler.secrets.synced()
        api_failures = 0
        while True:
            try:
                async with self._looks:
                    worker.wake.clear()
                    wake_at = await self.reconciler.reconcile(worker)
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
