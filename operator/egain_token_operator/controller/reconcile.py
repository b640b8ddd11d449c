"""One look at one EgainToken: observe, plan, act.

`observe.observe` gathers an immutable `policy.Snapshot` (the client it names
and its namespace's labels as `clientcache.ClientCache` knows them, the
credentials and the managed Secret as `secretcache.SecretCache` knows them),
to which `Reconciler.reconcile` adds the latest token of identical requests
(`sharing.SharedTokens`); `policy.plan` decides; `reconcile` then fetches a
token if told to (through `SharedTokens`, so identical requests share one),
writes the Secret, patches the status, posts the Events and sets the metrics.
Nothing here decides when to refresh.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from egain_token_operator import metrics
from egain_token_operator.controller.budgets import ClientBudgets
from egain_token_operator.controller.observe import Observation, TokenWorker, observe
from egain_token_operator.controller.restarts import RolloutRestarter
from egain_token_operator.decisions.checks import Snapshot
from egain_token_operator.decisions.clients import ClientRef
from egain_token_operator.decisions.policy import Plan, after_fetch, held_back, in_flight, plan
from egain_token_operator.decisions.reasons import (
    LIFETIME_SHORTER_THAN_ALLOWANCE,
    LOCAL_REASONS,
    REFRESH_DEFERRED,
    Reason,
    TokenError,
)
from egain_token_operator.decisions.render import (
    render_secret,
    render_status,
    secret_is_current,
    status_is_current,
)
from egain_token_operator.decisions.schedule import RetryPolicy, StoredToken, describe_floor
from egain_token_operator.decisions.timestamps import rfc3339, whole_seconds
from egain_token_operator.egain.request import TokenRequest
from egain_token_operator.egain.response import TokenResponse
from egain_token_operator.egain.sharing import SharedTokens
from egain_token_operator.egain.transport import EgainClient
from egain_token_operator.kube.api import ConflictError, KubeApi, NotFoundError
from egain_token_operator.kube.clientcache import ClientCache
from egain_token_operator.kube.events import EventPoster
from egain_token_operator.kube.secretcache import SecretCache

logger = logging.getLogger(__name__)

# Logged (at debug) as each token request is sent.
REQUESTING = "requesting a token"


class NotHoldingError(Exception):
    """A token request stopped unsent: this replica no longer holds its Lease.

    A replica frozen (SIGSTOP, a paused VM) with requests past the worker's
    gate resumes them; by then another may lead. The worker goes back to its
    gate, where it waits for a renewal or is ended as the replica stands by.
    """


# The Events a look has to post (type, reason, message), posted once its writes are done.
Said = list[tuple[str, str, str]]


@dataclass(frozen=True, slots=True)
class Reconciler:
    """Takes one look at a worker's EgainToken."""

    kube: KubeApi
    secrets: SecretCache
    clients: ClientCache
    egain: EgainClient
    policy: RetryPolicy
    restarter: RolloutRestarter
    post_event: EventPoster
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    sharing: SharedTokens = field(default_factory=SharedTokens)
    # The clients' request budgets (`spec.requestsPerMinute`), in this process.
    budgets: ClientBudgets = field(default_factory=ClientBudgets)
    # How a look waits for an instant of `clock` (tests make it return at once).
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    # Whether this replica may act now (`LeaderElector.holds`): asked again just
    # before each token request is sent, after whatever it waited for.
    holds: Callable[[], bool] = lambda: True

    async def reconcile(self, worker: TokenWorker) -> datetime | None:
        """One look at `worker`'s EgainToken. Returns when to look again (None: on events only).

        The Events it has to post are posted at its end, once the Secret and the
        status are written: an Event never competes with the writes that make a
        token Ready, and "new token issued" is said once the token is in place.
        """
        said: Said = []
        try:
            return await self._look(worker, said)
        finally:
            if said:
                manifest = worker.manifest  # parsed from its compact text: once
                for type_, reason, message in said:
                    self.post_event(manifest, type_, reason, message)

    async def _look(self, worker: TokenWorker, said: Said) -> datetime | None:
        now, (namespace, name) = self.clock(), worker.key
        seen = self._with_shared_token(
            worker, await observe(self.secrets, self.clients, worker, self.egain.allowed_hosts)
        )
        decided = plan(seen.snapshot, worker.memory, now, self.policy)
        logger.debug("EgainToken %s/%s: %s", namespace, name, decided.why)
        if decided.request_token and seen.request is not None:
            decided = await self._fetch(worker, seen, decided, now, said)
            now = self.clock()  # the status says when the request ended
        else:
            self.budgets.withdraw(worker.key, now)
            if decided.shared:
                self._announce(worker, seen, decided, worker.memory.failure is not None, now, said)
        if decided.deferral_is_news:
            self._say_deferred(worker, decided, said)
        worker.remember(seen, decided)
        if decided.failure is not None and decided.failure_is_news:
            self._warn(worker, decided, said)
        if seen.request is not None and seen.snapshot.conflict is None:
            await self._write_secret(worker, seen.secret, decided.token)
        if not await self._patch_status(worker, decided, now, seen.snapshot.client_ref):
            return None  # deleted meanwhile; the DELETED event ends the worker
        self._set_metrics(worker, decided)
        return decided.wake_at

    def _with_shared_token(self, worker: TokenWorker, seen: Observation) -> Observation:
        """`seen` with the latest token of its sharing group, the worker enrolled in it.

        Nothing is awaited between this and `_fetch` joining or starting the
        group's request, so a token that lands meanwhile is never missed.
        """
        key = seen.request.sharing_key if seen.request is not None else None
        self.sharing.enroll(worker.key, key, worker.wake.set)
        shared = self.sharing.latest(key)
        if shared is None:
            return seen
        return replace(seen, snapshot=replace(seen.snapshot, shared_token=shared))

    async def _fetch(
        self, worker: TokenWorker, seen: Observation, before: Plan, now: datetime, said: Said
    ) -> Plan:
        """Request a token, or await an identical request in flight; return the plan
        settled with what came back."""
        request, snapshot = seen.request, seen.snapshot
        assert request is not None
        namespace, name = worker.key
        # Whether this joins another's request. Nothing is awaited between this
        # and `fetch`, so `fetch` joins exactly when this says.
        joined = self.sharing.in_flight(request.sharing_key)
        client = snapshot.client
        if joined or client is None:
            self.budgets.withdraw(worker.key, now)  # nothing is sent with a client
        else:
            held = before.token
            # The most urgent go first: no valid token, then the soonest expiry.
            urgency = held.expires_at if held is not None and held.is_valid(now) else None
            turn = self.budgets.acquire(
                client.key, client.requests_per_minute, worker.key, urgency, worker.wake.set, now
            )
            if turn is not None:
                why = f"{client.key} is at its request budget; waiting for a turn"
                return held_back(snapshot, before, until=turn, why=why, now=now, policy=self.policy)
        expiry = self._expiry_in_flight(worker, seen, before)
        try:
            issued = await self.sharing.fetch(
                worker.key,
                request.sharing_key,
                lambda: self._request(worker, request, snapshot, before.token),
            )
        except TokenError as error:
            # Counted by the sender only, and only when something was sent.
            if not joined and error.reason not in LOCAL_REASONS:
                metrics.count_refresh(namespace, name, "failure", error.reason.value)
            return after_fetch(snapshot, before, at=self.clock(), policy=self.policy, error=error)
        finally:
            await _stopped(expiry)
        # Obtained for the request of whichever sharer sent it: held as obtained
        # for this one's (the same token, its own fingerprint and refresh request).
        token = replace(
            issued, fingerprint=request.fingerprint, refresh_request=snapshot.refresh_request
        )
        # Settled before anything is written: a token granting more than the
        # client allows comes back refused (`checks.granted_scope_not_allowed`).
        settled = after_fetch(
            snapshot, before, at=self.clock(), policy=self.policy, token=token, shared=joined
        )
        refused = settled.failure
        if not joined:
            reason = Reason.TOKEN_ISSUED if refused is None else refused.reason
            result = "success" if refused is None else "failure"
            metrics.count_refresh(namespace, name, result, reason.value)
        if refused is None:
            self._announce(worker, seen, settled, before.failure is not None, now, said)
        return settled

    def _expiry_in_flight(
        self, worker: TokenWorker, seen: Observation, before: Plan
    ) -> asyncio.Task[None] | None:
        """While a refresh is in flight, report the token it is to replace as
        expired at its expiry (`policy.in_flight`), not when the request ends:
        a request cut off from eGain ends only at `--http-timeout`. A task to
        stop once the request ended (`_stopped`); None when no token is Ready."""
        token = before.token
        if token is None or before.condition.status != "True":
            return None

        async def report_at_expiry() -> None:
            # Looked up when the task first runs, and again after each sleep:
            # the loop's timer may fire a little before the wall clock's expiry.
            while (left := (token.expires_at - self.clock()).total_seconds()) > 0:
                await self.sleep(left)
            now = self.clock()
            expired = in_flight(seen.snapshot, before, now=now, policy=self.policy)
            logger.debug(
                "EgainToken %s/%s: token expired while its refresh is in flight", *worker.key
            )
            if await self._patch_status(worker, expired, now, seen.snapshot.client_ref):
                self._set_metrics(worker, expired)

        name = f"expiry of egaintoken {worker.key[0]}/{worker.key[1]}"
        return asyncio.get_running_loop().create_task(report_at_expiry(), name=name)

    async def _request(
        self,
        worker: TokenWorker,
        request: TokenRequest,
        snapshot: Snapshot,
        previous: StoredToken | None,
    ) -> StoredToken:
        """Send `request` for `worker`; the token it obtained, or its `TokenError`
        (`NotHoldingError` when the replica no longer holds its Lease)."""

        def sending() -> None:
            if not self.holds():
                raise NotHoldingError
            logger.debug("EgainToken %s/%s: %s", *worker.key, REQUESTING)

        response, requested_at = await self.egain.fetch_token(
            request, namespace=worker.key[0], sending=sending
        )
        if response.expires_in_defaulted:
            self._note_default_lifetime(worker, previous, response)
        return StoredToken(
            access_token=response.access_token,
            token_type=response.token_type,
            scopes=response.scopes,
            issued_at=whole_seconds(requested_at),
            expires_at=whole_seconds(response.expires_at(requested_at)),
            fingerprint=request.fingerprint,
            refresh_request=snapshot.refresh_request,
        )

    def _announce(
        self,
        worker: TokenWorker,
        seen: Observation,
        settled: Plan,
        recovered: bool,
        now: datetime,
        said: Said,
    ) -> None:
        """Say that a new token is in use (the log line, the Event, the propagation
        warning), count a shared one, and restart the rollout targets."""
        assert seen.snapshot.spec is not None and settled.token is not None
        namespace, name = worker.key
        message = f"token valid until {rfc3339(settled.token.expires_at)}"
        if settled.shared:
            message += " (shared)"
            metrics.count_shared(namespace, name)
        if recovered:
            message += " (recovered)"
        logger.info("EgainToken %s/%s: new token issued, %s", namespace, name, message)
        said.append(("Normal", Reason.TOKEN_ISSUED.value, message))
        if settled.shortfall_warning is not None:
            logger.warning("EgainToken %s/%s: %s", namespace, name, settled.shortfall_warning)
            said.append(("Warning", LIFETIME_SHORTER_THAN_ALLOWANCE, settled.shortfall_warning))
        if seen.snapshot.spec.rollout_targets:
            self.restarter.request(namespace, seen.snapshot.spec.rollout_targets, now)

    def _say_deferred(self, worker: TokenWorker, decided: Plan, said: Said) -> None:
        """Say once that a forced refresh waits for the request floor, and until when."""
        assert decided.deferred_until is not None and decided.token is not None
        message = (
            f"refresh requested by annotation deferred until {rfc3339(decided.deferred_until)}: "
            f"{describe_floor(decided.token.lifetime)}"
        )
        logger.info("EgainToken %s/%s: %s", *worker.key, message)
        said.append(("Normal", REFRESH_DEFERRED, message))

    def _note_default_lifetime(
        self, worker: TokenWorker, previous: StoredToken | None, response: TokenResponse
    ) -> None:
        # Said once per token lifetime change, not at every refresh.
        if previous is None or previous.expires_at - previous.issued_at != timedelta(
            seconds=response.expires_in
        ):
            logger.info(
                "EgainToken %s/%s: the token response has no expires_in; "
                "taking the default lifetime of %.0fs",
                *worker.key,
                response.expires_in,
            )

    def _warn(self, worker: TokenWorker, decided: Plan, said: Said) -> None:
        failure = decided.failure
        assert failure is not None
        logger.warning(
            "EgainToken %s/%s: %s: %s (retry in %.0fs)",
            *worker.key,
            failure.reason.value,
            failure.message,
            (failure.retry_at - failure.at).total_seconds(),
        )
        said.append(("Warning", failure.reason.value, failure.message))

    async def _write_secret(
        self, worker: TokenWorker, secret: Mapping[str, Any] | None, token: StoredToken | None
    ) -> None:
        """Write the managed Secret unless it already holds the current token."""
        spec = worker.spec
        if spec is None or token is None or not token.is_valid(self.clock()):
            return
        if secret is not None and secret_is_current(secret, token, spec, worker.owner):
            return
        namespace = worker.key[0]
        try:
            if secret is None:
                written = await self.kube.create_secret(
                    namespace, render_secret(token, spec, worker.owner)
                )
            else:
                body = render_secret(token, spec, worker.owner, existing=secret)
                written = await self.kube.replace_secret(namespace, body)
        except (ConflictError, NotFoundError):
            # Changed or deleted since the watch said: look again at once, with
            # the Secret as it is now.
            await self.secrets.read_again(namespace, spec.secret_name)
            worker.wake.set()
            return
        self.secrets.written(written)

    async def _patch_status(
        self, worker: TokenWorker, decided: Plan, now: datetime, client: ClientRef | None
    ) -> bool:
        """Patch the status unless it already says what it would; False when the
        EgainToken is gone.

        Judged against the status the API server holds (as the watch or the last
        patch's answer brought it), not against what this process sent: after a
        restart, statuses that are current are left alone.
        """
        namespace, name = worker.key
        held = worker.status
        status = render_status(
            generation=worker.generation,
            condition=decided.condition,
            previous_conditions=list(held.get("conditions") or []),
            secret_name=worker.spec.secret_name if worker.spec else name,
            token=decided.reported_token,
            next_refresh_at=decided.next_refresh_at,
            failure=decided.failure,
            now=now,
            client=client,
        )
        if status_is_current(held, status):
            return True
        try:
            written = await self.kube.patch_token_status(namespace, name, status)
        except NotFoundError:
            return False
        worker.status = written.get("status") or {}
        return True

    def _set_metrics(self, worker: TokenWorker, decided: Plan) -> None:
        namespace, name = worker.key
        token, failure = decided.token, decided.failure
        if token is not None:
            metrics.set_expiration(namespace, name, token.expires_at.timestamp())
        if decided.next_refresh_at is not None:
            metrics.set_renewal(namespace, name, decided.next_refresh_at.timestamp())
        metrics.set_failures(namespace, name, failure.count if failure else 0)
        metrics.set_ready(namespace, name, decided.condition.status, decided.condition.reason.value)


async def _stopped(task: asyncio.Task[None] | None) -> None:
    """Cancel `task` and wait for it to end; a failure of its own is only logged."""
    if task is None:
        return
    task.cancel()
    # gather: a cancellation of the caller still propagates, unlike the task's own.
    (outcome,) = await asyncio.gather(task, return_exceptions=True)
    if isinstance(outcome, Exception):
        logger.warning("%s failed: %s", task.get_name(), outcome)
