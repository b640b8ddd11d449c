"""What the admission tests share: valid specs, and a dry-run apply that must be
refused or accepted by the API server."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.support import Cluster

VALID = {
    "tokenUrl": "https://ai.egain.cloud/system/auth/T-U/oauth2/token",
    "scopes": ["s"],
    "credentialsSecretRef": {"name": "c"},
}


# One case per rule of docs/api.md ("What the API server rejects"), with the
# field its message names. `None` removes a field.

VALID_CLIENT = {
    "tokenUrl": "https://ai.egain.cloud/system/auth/T-U/oauth2/token",
    "credentialsSecretRef": {"name": "c"},
}
ALL_NAMESPACES: dict[str, Any] = {"allowedNamespaces": {"selector": {}}}


def merged(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """`base` with `change` applied; `None` removes a field."""
    return {k: v for k, v in {**base, **change}.items() if v is not None}


def assert_rejected(cluster: Cluster, manifest: dict[str, Any], *expected: str) -> str:
    """The API server refuses `manifest`, and its message holds each of `expected`;
    returns the message."""
    result = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=json.dumps(manifest), check=False
    )
    assert result.returncode != 0, f"accepted: {manifest['spec']}"
    for text in expected:
        assert text in result.stderr, result.stderr
    return result.stderr


def assert_accepted(cluster: Cluster, manifest: dict[str, Any]) -> None:
    cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(manifest))
