"""The status of EgainClients and ClusterEgainClients: one small controller.

A client's status says whether it can issue (Ready: its spec can be served
and its credentials Secret holds both keys) and how many EgainTokens name it.
The worker registry marks a client when either may have changed (the client
itself, its credentials Secret, a token that starts or stops naming it); one
task then renders each marked client's status (`render.render_client_status`)
and patches it only when it differs from what the client already says. Only
the leader writes; a new leader marks every client, so statuses written by
nobody while no replica led are caught up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from egain_token_operator.decisions.clients import ClientKey, parse_client
from egain_token_operator.decisions.readiness import ready_in
from egain_token_operator.decisions.reasons import ClientReason, TokenError
from egain_token_operator.decisions.render import render_client_status, status_is_current
from egain_token_operator.decisions.schema import InvalidSpecError
from egain_token_operator.egain.credentials import read_credentials
from egain_token_operator.kube.api import KubeApi, KubeError, NotFoundError
from egain_token_operator.kube.clientcache import ClientCache
from egain_token_operator.kube.events import EventPoster
from egain_token_operator.kube.secretcache import SecretSource

logger = logging.getLogger(__name__)

# Backoff after a failed status patch (the API server down, RBAC missing).
_RETRY_DELAY = 5.0


class ClientStatusController:
    """Keeps every client's status current; only while active (the leader)."""

    def __init__(
        self,
        kube: KubeApi,
        clients: ClientCache,
        secrets: SecretSource,
        token_count: Callable[[ClientKey], int],
        post_event: EventPoster,
        *,
        listed: Callable[[], Awaitable[None]],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        active: bool = True,
    ) -> None:
        self._kube = kube
        # Waits until the Secrets and the EgainTokens were listed: a status
        # written before would say too few tokens, or credentials not found.
        self._listed = listed
        self._clients = clients
        self._secrets = secrets
        self._token_count = token_count
        self._post_event = post_event
        self._clock = clock
        self._active = active
        self._marked: set[ClientKey] = set()
        self._wake = asyncio.Event()
        # What was last patched, per client: a watch event may not have brought it yet.
        self._sent: dict[ClientKey, dict[str, Any]] = {}

    def touch(self, key: ClientKey) -> None:
        """Mark `key`: its status may have changed."""
        if self._active:
            self._marked.add(key)
            self._wake.set()

    def activate(self) -> None:
        """Start writing (this replica became the leader): every client is marked."""
        self._active = True
        self._sent.clear()
        for key in self._clients.known():
            self.touch(key)

    def deactivate(self) -> None:
        """Stop writing (this replica stands by)."""
        self._active = False
        self._marked.clear()

    async def run(self) -> None:
        """Update marked clients until cancelled."""
        await self._listed()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._marked and self._active:
                key = self._marked.pop()
                try:
                    await self.update(key)
                except KubeError as exc:
                    logger.warning(
                        "%s: status not written (%s); retrying in %.0fs", key, exc, _RETRY_DELAY
                    )
                    self._marked.add(key)
                    await asyncio.sleep(_RETRY_DELAY)

    async def update(self, key: ClientKey) -> None:
        """Render `key`'s status; patch it, and say so in an Event, if it changed."""
        body = self._clients.cached(key)
        if body is None:
            self._sent.pop(key, None)
            return
        spec_error = credentials_error = None
        ref = None
        try:
            ref = parse_client(key.kind, body, self._clients.cluster_namespace).issuer.credentials
        except InvalidSpecError as exc:
            spec_error = str(exc)
        else:
            secret = await self._secrets.credentials(ref.namespace or key.namespace, ref.name)
            try:
                read_credentials(secret, ref)
            except TokenError as error:
                credentials_error = error.message
        current = body.get("status") or {}
        # What this replica last wrote is newer than what the watch brought back, if it did.
        previous = self._sent.get(key) or current
        status = render_client_status(
            generation=(body.get("metadata") or {}).get("generation"),
            credentials=ref,
            credentials_error=credentials_error,
            spec_error=spec_error,
            tokens=self._token_count(key),
            previous_conditions=list(previous.get("conditions") or []),
            now=self._clock(),
        )
        if status == self._sent.get(key) or status_is_current(current, status):
            return
        try:
            await self._kube.patch_client_status(key, status)
        except NotFoundError:
            return  # deleted meanwhile
        self._sent[key] = status
        self._say(body, ready_in(previous), ready_in(status))

    def _say(
        self, body: Mapping[str, Any], before: Mapping[str, Any], after: Mapping[str, Any]
    ) -> None:
        """An Event when the Ready reason changes: a Warning when it cannot issue."""
        if before.get("reason") == after["reason"]:
            return
        if after["reason"] != ClientReason.CREDENTIALS_FOUND:
            self._post_event(body, "Warning", after["reason"], after["message"])
        elif before:
            self._post_event(body, "Normal", after["reason"], after["message"])
