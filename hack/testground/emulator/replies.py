"""What the emulator answers: a reply value, and the JSON and text replies it builds.

A `Reply` tells the connection handler what to do (answer, reset, hang or just
close) without doing it, so that the rules deciding it stay free of I/O.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Literal

_NO_STORE = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))
JSON_HEADER = ("Content-Type", "application/json;charset=UTF-8")


@dataclass(frozen=True)
class Reply:
    """What the connection handler must do: answer, reset, hang or just close."""

    action: Literal["respond", "reset", "hang", "close"] = "respond"
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    hang_release: threading.Event | None = None


def json_reply(status: int, payload: object, *headers: tuple[str, str]) -> Reply:
    """A JSON answer that no cache may keep."""
    body = json.dumps(payload).encode()
    return Reply(status=status, headers=(JSON_HEADER, *_NO_STORE, *headers), body=body)


def text_reply(status: int, text: str, content_type: str = "text/plain") -> Reply:
    """A plain (or HTML) answer."""
    return Reply(status=status, headers=(("Content-Type", content_type),), body=text.encode())
