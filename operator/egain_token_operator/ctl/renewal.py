"""What `renew` waits for: one refresh request on one or many EgainTokens, and how each ends.

Pure: EgainTokens and Secrets go in as the API sends them (read one by one,
listed or watched, `renew.py` decides), `now` is passed in, and what each token
came to comes out as lines for the user. A token is renewed when its managed
Secret carries the request's value in its own `egain.cloud/refresh-requested-at`
annotation: the operator writes it there only beside a token obtained for
that request. It has failed when its status records a new permanent failure;
a transient one is reported once, and the wait goes on.

A Secret's token is kept as a digest only, to tell a new token from the same
one again without holding or showing it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from egain_token_operator.ctl.readout import recorded_ready, time_until
from egain_token_operator.decisions.reasons import TRANSIENT_REASONS
from egain_token_operator.decisions.render import (
    EXPIRES_AT_ANNOTATION,
    REFRESH_REQUESTED_AT_ANNOTATION,
)
from egain_token_operator.kube.watch import Key, object_key


class Ending(StrEnum):
    """How the renewal of one EgainToken ended."""

    RENEWED = "renewed"
    # Refused for good, or not renewable at all (a spec without a Secret name).
    FAILED = "failed"
    # Deleted while it was being renewed: nothing left to renew.
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class Progress:
    """Something to tell the user about one EgainToken; `ending` None: it goes on."""

    key: Key
    text: str
    ending: Ending | None = None


def token_digest(secret: Mapping[str, Any] | None) -> str | None:
    """A digest of the token a Secret holds, to notice a new one without showing it."""
    value = ((secret or {}).get("data") or {}).get("access_token")
    return hashlib.sha256(value.encode()).hexdigest() if isinstance(value, str) else None


def failure_marker(token: Mapping[str, Any]) -> tuple[Any, ...]:
    """What changes in the status with each failure the operator records."""
    status = token.get("status") or {}
    last = status.get("lastFailure") or {}
    return (status.get("consecutiveFailures"), last.get("time"), last.get("reason"))


@dataclass
class _Waiting:
    secret_name: str
    digest_before: str | None
    failures_before: tuple[Any, ...]
    token: Mapping[str, Any]
    said_transient: bool = False


@dataclass
class Renewal:
    """One refresh request (`request`, the annotation's value) and the tokens it was made on."""

    request: str
    endings: dict[Key, Ending] = field(default_factory=dict)
    _waiting: dict[Key, _Waiting] = field(default_factory=dict)
    # Managed Secret -> the EgainTokens that name it (one, unless some conflict).
    _by_secret: dict[Key, list[Key]] = field(default_factory=dict)

    def add(
        self, token: Mapping[str, Any], secret_name: str, secret: Mapping[str, Any] | None
    ) -> None:
        """A token to renew, with its managed Secret as it was before the request."""
        key = object_key(token)
        self._waiting[key] = _Waiting(
            secret_name, token_digest(secret), failure_marker(token), token
        )
        self._by_secret.setdefault((key[0], secret_name), []).append(key)

    def fail(self, key: Key, text: str) -> Progress:
        """A token that cannot be renewed at all: it ends here."""
        return self._end(key, text, Ending.FAILED)

    @property
    def waiting(self) -> list[Key]:
        """The tokens whose renewal has not ended yet, sorted."""
        return sorted(self._waiting)

    def secret_name(self, key: Key) -> str:
        """The managed Secret a waiting token's new token is looked for in."""
        return self._waiting[key].secret_name

    def saw_secret(self, secret: Mapping[str, Any], now: datetime) -> list[Progress]:
        """A managed Secret as it is now: renewed, when it answers the request."""
        metadata = secret.get("metadata") or {}
        annotations = metadata.get("annotations") or {}
        if annotations.get(REFRESH_REQUESTED_AT_ANNOTATION) != self.request:
            return []
        namespace, name = object_key(secret)
        found = []
        for key in self._by_secret.get((namespace, name), []):
            waiting = self._waiting.get(key)
            if waiting is None:
                continue
            # eGain may have answered with the token the Secret already held.
            same = token_digest(secret) == waiting.digest_before
            new = "same token again" if same else "new token"
            expires = annotations.get(EXPIRES_AT_ANNOTATION)
            text = (
                f"{new} in Secret {name}, valid until {expires} "
                f"({time_until(expires, now, 'expired')})"
            )
            found.append(self._end(key, text, Ending.RENEWED))
        return found

    def saw_token(self, token: Mapping[str, Any]) -> list[Progress]:
        """An EgainToken as it is now: failed, when its status records a new
        permanent failure; a new transient one is told once."""
        key = object_key(token)
        waiting = self._waiting.get(key)
        if waiting is None:
            return []
        waiting.token = token
        if failure_marker(token) == waiting.failures_before:
            return []
        last = (token.get("status") or {}).get("lastFailure") or {}
        reason, message = last.get("reason"), last.get("message")
        if reason is None:
            return []  # cleared by a success: the Secret says which request it answered
        if reason not in TRANSIENT_REASONS:
            text = f"the operator could not renew the token: {reason}: {message}"
            return [self._end(key, text, Ending.FAILED)]
        if waiting.said_transient:
            return []
        waiting.said_transient = True
        return [Progress(key, f"the operator's request failed ({reason}: {message}); it retries")]

    def deleted(self, key: Key) -> list[Progress]:
        """The EgainToken `key` was deleted."""
        if key not in self._waiting:
            return []
        return [self._end(key, "deleted meanwhile; nothing to renew", Ending.DELETED)]

    def unanswered(self, key: Key) -> str:
        """Why a token still waiting has not been renewed, for the timeout message."""
        waiting = self._waiting[key]
        ready = recorded_ready(waiting.token)
        return (
            f"Secret {waiting.secret_name} holds no token for this refresh request yet "
            f"(Ready={ready.get('status', 'Unknown')} {ready.get('reason', '')})"
        )

    def _end(self, key: Key, text: str, ending: Ending) -> Progress:
        self._waiting.pop(key, None)
        self.endings[key] = ending
        return Progress(key, text, ending)
