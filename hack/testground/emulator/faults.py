"""Faults: the ways the emulator misbehaves on demand, and the answers they give.

A fault takes part in a request in one of three ways: a delay comes first; a
takeover replaces the whole answer before the request is even validated (the
service is down, not judging); a shaping fault only alters a successful answer.
The board of active faults is not thread-safe by itself: `EgainEmulator`
guards it with its lock.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, replace
from enum import StrEnum
from http import HTTPStatus

from testground.emulator.replies import JSON_HEADER, Reply, json_reply, text_reply

# Where a redirect fault points by default: a path the emulator answers 404 on
# and records, so a test can prove nobody followed the redirect.
REDIRECT_TARGET_PATH = "/elsewhere/oauth2/token"


class FaultKind(StrEnum):
    """Ways the emulator can misbehave on token requests."""

    LATENCY = "latency"  # answer `delay` seconds late (combines with the others)
    SERVER_ERROR = "server_error"  # HTTP `status` (default 503)
    RATE_LIMITED = "rate_limited"  # HTTP 429, with `Retry-After: retry_after` unless None
    NON_JSON = "non_json"  # 200, Content-Type JSON, body not JSON
    HTML = "html"  # 200, an HTML page (as a captive portal or proxy sends)
    NO_EXPIRES_IN = "no_expires_in"  # a success without `expires_in`
    STRING_EXPIRES_IN = "string_expires_in"  # a success with `"expires_in": "3600"`
    EXPIRES_IN = "expires_in"  # a success with `"expires_in": value` (any JSON value)
    # A success with `"scope": value` (any JSON value), whatever was granted: an
    # issuer granting more (or other) than it was asked for.
    GRANTED_SCOPE = "granted_scope"
    HOSTILE_TOKEN = "hostile_token"  # a success whose token is followed by `text`
    OVERSIZED = "oversized"  # a success padded to `size` bytes
    DEEP_JSON = "deep_json"  # a success with a field nested `depth` arrays deep
    RESET = "reset"  # TCP reset after reading the request, no response
    HANG = "hang"  # read the request, never answer (until cleared or stopped)
    REDIRECT = "redirect"  # HTTP `status` (default 302) to `location`


DELAY = frozenset({FaultKind.LATENCY})
SHAPE = frozenset(
    {
        FaultKind.NO_EXPIRES_IN,
        FaultKind.STRING_EXPIRES_IN,
        FaultKind.EXPIRES_IN,
        FaultKind.GRANTED_SCOPE,
        FaultKind.HOSTILE_TOKEN,
        FaultKind.OVERSIZED,
        FaultKind.DEEP_JSON,
    }
)
TAKEOVER = frozenset(FaultKind) - DELAY - SHAPE

_HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>Sign in</title></head>"
    "<body><h1>Please sign in</h1><form method='post'></form></body></html>"
)


@dataclass(frozen=True)
class Fault:
    """An active fault. `count` is how many more requests it applies to (None: until cleared)."""

    kind: FaultKind
    count: int | None = 1
    client_id: str | None = None  # only requests from this client; None: all
    status: int | None = None  # server_error (default 503) and redirect (default 302)
    retry_after: int | None = 1  # rate_limited: seconds in Retry-After; None: no header
    delay: float = 0.0  # latency: seconds
    location: str | None = None  # redirect target; default: a recorded 404 path here
    value: object = None  # expires_in, granted_scope: the JSON value sent (null by default)
    text: str = "\r\nX-Injected: yes"  # hostile_token: what follows the token
    size: int = 5 * 1024 * 1024  # oversized: bytes of the whole body
    depth: int = 10_000  # deep_json: arrays nested in the extra field


def checked_fault(fault: Fault) -> Fault:
    """`fault` with its defaults filled in and its numbers normalised.

    A `count` of -1 means None ("until cleared"). Raises ValueError if the
    fault makes no sense.
    """
    count = None if fault.count is None or fault.count == -1 else int(fault.count)
    if count is not None and count < 1:
        raise ValueError("count must be positive, or None/-1 for 'until cleared'")
    status = fault.status
    if status is None:
        status = {FaultKind.SERVER_ERROR: 503, FaultKind.REDIRECT: 302}.get(fault.kind)
    if fault.kind is FaultKind.SERVER_ERROR and not (status and 500 <= status <= 599):
        raise ValueError("server_error needs a 5xx status")
    if fault.kind is FaultKind.REDIRECT and status not in (301, 302, 303, 307, 308):
        raise ValueError("redirect needs a 3xx redirect status")
    retry_after = None if fault.retry_after is None else int(fault.retry_after)
    if fault.delay < 0 or (retry_after is not None and retry_after < 0):
        raise ValueError("delay and retry_after must not be negative")
    if int(fault.size) < 0 or int(fault.depth) < 1:
        raise ValueError("size must not be negative, depth must be positive")
    json.dumps(fault.value)  # raises ValueError/TypeError unless JSON
    return replace(
        fault,
        count=count,
        status=status,
        retry_after=retry_after,
        delay=float(fault.delay),
        text=str(fault.text),
        size=int(fault.size),
        depth=int(fault.depth),
    )


class FaultBoard:
    """The active faults, oldest first."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def put(self, fault: Fault) -> None:
        """Add `fault`, replacing the one of the same kind and client_id."""
        key = (fault.kind, fault.client_id)
        self._faults = [f for f in self._faults if (f.kind, f.client_id) != key] + [fault]

    def all(self) -> list[Fault]:
        """The active faults, with their remaining counts."""
        return list(self._faults)

    def clear(self, kind: FaultKind | str | None = None) -> None:
        """Remove all faults, or those of one kind."""
        if kind is None:
            self._faults = []
        else:
            self._faults = [f for f in self._faults if f.kind != FaultKind(kind)]

    def take(self, kinds: frozenset[FaultKind], client_id: str | None) -> Fault | None:
        """Consume one use of the newest fault of `kinds` matching the client."""
        for index in range(len(self._faults) - 1, -1, -1):
            fault = self._faults[index]
            if fault.kind in kinds and fault.client_id in (None, client_id):
                if fault.count is None:
                    return fault
                if fault.count > 1:
                    self._faults[index] = replace(fault, count=fault.count - 1)
                else:
                    del self._faults[index]
                return fault
        return None


def takeover_reply(
    fault: Fault, *, stopping: bool, hang_release: threading.Event, redirect_target: str
) -> Reply:
    """The answer a takeover fault gives instead of the real one.

    A hang waits for `hang_release`, unless the emulator is `stopping`;
    a redirect without a location points at `redirect_target`.
    """
    status = fault.status or 0
    match fault.kind:
        case FaultKind.SERVER_ERROR:
            return text_reply(status, f"{status} {_phrase(status)}")
        case FaultKind.RATE_LIMITED:
            reply = text_reply(429, "429 Too Many Requests")
            if fault.retry_after is None:
                return reply
            return replace(reply, headers=(*reply.headers, ("Retry-After", str(fault.retry_after))))
        case FaultKind.NON_JSON:
            # Labelled JSON but cut short, as a proxy that drops the connection sends.
            return replace(text_reply(200, '{"token_type": "Bearer", "acc'), headers=(JSON_HEADER,))
        case FaultKind.HTML:
            return text_reply(200, _HTML_PAGE, "text/html;charset=UTF-8")
        case FaultKind.RESET:
            return Reply(action="reset")
        case FaultKind.HANG if stopping:
            # stop() has already released the hangs; this one would be missed.
            return Reply(action="close")
        case FaultKind.HANG:
            return Reply(action="hang", hang_release=hang_release)
        case FaultKind.REDIRECT:
            return Reply(status=status, headers=(("Location", fault.location or redirect_target),))
    raise AssertionError(f"not a takeover fault: {fault.kind}")


def shape_payload(payload: dict[str, object], fault: Fault | None) -> dict[str, object]:
    """A successful token answer's fields as a shaping fault (if any) alters them."""
    shaped = dict(payload)
    kind = fault.kind if fault else None
    if kind is FaultKind.NO_EXPIRES_IN:
        del shaped["expires_in"]
    elif kind is FaultKind.STRING_EXPIRES_IN:
        shaped["expires_in"] = str(shaped["expires_in"])
    elif fault and kind is FaultKind.EXPIRES_IN:
        shaped["expires_in"] = fault.value
    elif fault and kind is FaultKind.GRANTED_SCOPE:
        shaped["scope"] = fault.value
    elif fault and kind is FaultKind.HOSTILE_TOKEN:
        # The issued token stays whole in it, so a leak of it is still found.
        shaped["access_token"] = f"{shaped['access_token']}{fault.text}"
    return shaped


def shaped_reply(payload: dict[str, object], fault: Fault | None) -> Reply:
    """A successful token answer, as a shaping fault (if any) alters it.

    The oversized and deep bodies are built as text: the JSON encoder itself
    would give up on the nesting.
    """
    reply = json_reply(200, shape_payload(payload, fault))
    if fault is None or fault.kind not in (FaultKind.OVERSIZED, FaultKind.DEEP_JSON):
        return reply
    if fault.kind is FaultKind.OVERSIZED:
        padding = max(fault.size - len(reply.body) - len(b', "padding": ""'), 0)
        extra = b', "padding": "' + b"x" * padding + b'"'
    else:
        extra = b', "extra": ' + b"[" * fault.depth + b"]" * fault.depth
    return replace(reply, body=reply.body[:-1] + extra + b"}")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Server Error"
