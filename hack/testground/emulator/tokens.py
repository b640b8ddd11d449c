"""Issued tokens: what the emulator remembers of each (everything but the token).

Tokens are kept by digest, so the emulator can recognise one it issued
(`token_info`) without holding any token in a printable form; tests and logs
name tokens by `token_fingerprint()`. `find_secrets()` looks for client secrets
and issued tokens in a text, plain or base64-encoded. The store is not thread-safe by itself:
`EgainEmulator` guards it with its lock.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from testground.emulator.oauth import Client, Flow

# Issued tokens and client secrets are runs of URL-safe characters; any such run
# in a text is looked up among what the emulator issued (see `find_secrets`).
_CANDIDATE = re.compile(r"[A-Za-z0-9._~+/=-]{16,}")


def utcnow() -> datetime.datetime:
    """The current time, in UTC."""
    return datetime.datetime.now(datetime.UTC)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_fingerprint(token: str) -> str:
    """A short, one-way, loggable name for a token (never the token itself)."""
    return "sha256:" + _digest(token)[:16]


@dataclass(frozen=True)
class IssuedToken:
    """What the emulator remembers of a token it issued: everything but the token."""

    fingerprint: str
    client_id: str
    flow: Flow
    tenant: str
    scope: str
    issued_at: datetime.datetime
    expires_at: datetime.datetime

    @property
    def expired(self) -> bool:
        """Whether the token's lifetime is over."""
        return utcnow() >= self.expires_at

    def to_json(self) -> dict[str, Any]:
        """This token's metadata as JSON-ready data."""
        data = asdict(self)
        data["issued_at"] = self.issued_at.isoformat()
        data["expires_at"] = self.expires_at.isoformat()
        data["expired"] = self.expired
        return data


class TokenStore:
    """The tokens issued, by digest, oldest first."""

    def __init__(self) -> None:
        self._tokens: dict[str, IssuedToken] = {}

    def issue(
        self, client: Client, flow: Flow, scope: str, lifetime: int
    ) -> tuple[str, IssuedToken]:
        """A new random token for `client`, remembered; returns it and its metadata."""
        token = secrets.token_urlsafe(32)
        now = utcnow()
        issued = IssuedToken(
            fingerprint=token_fingerprint(token),
            client_id=client.client_id,
            flow=flow,
            tenant=client.tenant,
            scope=scope,
            issued_at=now,
            expires_at=now + datetime.timedelta(seconds=lifetime),
        )
        self._tokens[_digest(token)] = issued
        return token, issued

    def info(self, token: str) -> IssuedToken | None:
        """What was issued as `token`, or None."""
        return self._tokens.get(_digest(token))

    def all(self) -> list[IssuedToken]:
        """Every token's metadata, oldest first."""
        return list(self._tokens.values())


def find_secrets(
    text: str,
    known_secrets: Mapping[str, str],
    token_info: Callable[[str], IssuedToken | None],
) -> dict[str, str]:
    """Every secret of `known_secrets` (secret → client id) and every issued token in `text`,
    as they are or base64-encoded (as in a Secret's `data`, or a dumped object).

    `token_info` tells what token a string is, if any. The keys are the secret
    values themselves, or their encoded form as it appears (for redaction);
    only the values, which describe them, are safe to show.
    """
    found = _plain_secrets(text, known_secrets, token_info)
    for candidate in set(_CANDIDATE.findall(text)):
        decoded = _base64_text(candidate)
        inside = _plain_secrets(decoded, known_secrets, token_info) if decoded else {}
        if inside:
            found[candidate] = f"base64 of {', '.join(sorted(inside.values()))}"
    return found


def _plain_secrets(
    text: str,
    known_secrets: Mapping[str, str],
    token_info: Callable[[str], IssuedToken | None],
) -> dict[str, str]:
    found = {
        secret: f"a client secret of {client_id}"
        for secret, client_id in known_secrets.items()
        if secret in text
    }
    for candidate in set(_CANDIDATE.findall(text)):
        for part in {candidate, *re.split(r"[./=+]", candidate)}:
            info = token_info(part)
            if info is not None:
                found[part] = f"a token issued to {info.client_id} at {info.issued_at}"
    return found


def _base64_text(candidate: str) -> str | None:
    """`candidate` decoded as standard or URL-safe base64 into text, or None."""
    padded = candidate.rstrip("=") + "=" * (-len(candidate.rstrip("=")) % 4)
    for alphabet in (b"+/", b"-_"):
        try:
            return base64.b64decode(padded.encode(), alphabet, validate=True).decode()
        except (ValueError, binascii.Error):
            continue
    return None
