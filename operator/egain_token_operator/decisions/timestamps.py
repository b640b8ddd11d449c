"""Instants as the API server and the operator write them: RFC 3339, UTC, whole seconds."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(instant: datetime) -> str:
    """`2026-11-23T22:10:00Z`: UTC, whole seconds."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 instant as written by Kubernetes or by `rfc3339()`."""
    instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def whole_seconds(instant: datetime) -> datetime:
    """`instant` as written: whole seconds.

    Keeping times so in memory makes a token read back from its Secret equal
    to the one that was written.
    """
    return instant.replace(microsecond=0)
