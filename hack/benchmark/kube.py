"""The benchmark's own view of the cluster: a plain async API client, the audit log, identities.

The operator runs as a user of its own (a client certificate for
`OPERATOR_USER`), so that its requests are told apart in the audit log from
the benchmark's (which runs as the cluster admin) and the controllers'.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from testground import pki
from testground.controlplane import ControlPlane

OPERATOR_USER = "egain-token-operator-bench"
GROUP_PATH = "/apis/egain.cloud/v1alpha1"
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
_RETRIES_WHEN_TOLD = 30  # 429s with Retry-After taken before giving up


def tokens_path(namespace: str | None) -> str:
    """The EgainToken collection of `namespace` (of every namespace for None)."""
    if namespace is None:
        return f"{GROUP_PATH}/egaintokens"
    return f"{GROUP_PATH}/namespaces/{namespace}/egaintokens"


def secrets_path(namespace: str) -> str:
    """The Secret collection of `namespace`."""
    return f"/api/v1/namespaces/{namespace}/secrets"


class Api:
    """A plain async HTTP client of the API server, as the cluster admin."""

    def __init__(self, plane: ControlPlane, max_connections: int = 64) -> None:
        user = json.loads(plane.kubeconfig.read_text())["users"][0]["user"]
        context = ssl.create_default_context(cafile=str(plane.ca_file))
        context.load_cert_chain(user["client-certificate"], user["client-key"])
        self.client = httpx.AsyncClient(
            base_url=plane.server,
            verify=context,
            timeout=httpx.Timeout(60.0, connect=10.0),
            limits=httpx.Limits(max_connections=max_connections),
        )

    async def aclose(self) -> None:
        """Close the connections."""
        await self.client.aclose()

    async def _checked(self, send: Callable[[], Awaitable[httpx.Response]]) -> dict[str, Any]:
        response = await send()
        # Sent again while the API server says it cannot serve yet (its storage
        # (re)initializing just after a CRD is applied), as long as it says to.
        for _ in range(_RETRIES_WHEN_TOLD):
            if response.status_code != 429:
                break
            await asyncio.sleep(float(response.headers.get("Retry-After") or 1))
            response = await send()
        if response.status_code >= 400:
            # The API server's message never holds a Secret's data.
            message = response.json().get("message", response.reason_phrase)
            raise RuntimeError(f"HTTP {response.status_code}: {message}")
        body: dict[str, Any] = response.json()
        return body

    async def get(self, path: str, **params: str) -> dict[str, Any]:
        """GET `path`."""
        return await self._checked(lambda: self.client.get(path, params=params))

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST `body` to the collection at `path`."""
        return await self._checked(lambda: self.client.post(path, json=dict(body)))

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """Merge-patch the object at `path`."""
        return await self._checked(
            lambda: self.client.patch(path, content=json.dumps(patch), headers=MERGE_PATCH)
        )

    async def create_all(
        self, path: str, bodies: Iterable[Mapping[str, Any]], concurrency: int
    ) -> None:
        """Create every body in the collection at `path`, `concurrency` at a time."""
        await self.create_each(((path, body) for body in bodies), concurrency)

    async def create_each(
        self, objects: Iterable[tuple[str, Mapping[str, Any]]], concurrency: int
    ) -> None:
        """Create every (collection path, body), `concurrency` at a time."""
        limit = asyncio.Semaphore(concurrency)

        async def create(path: str, body: Mapping[str, Any]) -> None:
            async with limit:
                await self.create(path, body)

        await asyncio.gather(*(create(path, body) for path, body in objects))


def operator_kubeconfig(plane: ControlPlane, directory: Path) -> Path:
    """A kubeconfig for the operator as `OPERATOR_USER` (in system:masters, as the admin is)."""
    # Next to the cluster's own certificates, which a new cluster replaces: a
    # certificate kept from an earlier cluster would be signed by another CA.
    certs = plane.state_dir / "pki"
    ca = pki.create_ca(certs, "cluster-ca")  # the cluster's, reused
    pair = pki.issue(
        ca,
        certs,
        "egain-token-operator-bench",
        common_name=OPERATOR_USER,
        organizations=("system:masters",),
        client=True,
    )
    config = json.loads(plane.kubeconfig.read_text())
    config["users"][0]["user"] = {"client-certificate": str(pair.cert), "client-key": str(pair.key)}
    path = directory / "operator.kubeconfig"
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))
    return path


@dataclass(frozen=True)
class ApiRequest:
    """One request of the operator's, as the audit log has it."""

    at: float  # Unix time the API server received it
    verb: str
    resource: str  # e.g. `secrets`, `egaintokens/status`
    namespace: str | None
    name: str | None

    @property
    def kind(self) -> str:
        """`verb resource`, e.g. `patch egaintokens/status`."""
        return f"{self.verb} {self.resource}"


class AuditLog:
    """The operator's requests in the API server's audit log, read as it grows."""

    def __init__(self, path: Path, username: str = OPERATOR_USER) -> None:
        self._path = path
        self._username = username
        self._marker = json.dumps(username).encode()  # a cheap test before parsing a line
        self._offset = 0
        self._seen: set[str] = set()  # audit ids: a watch is logged at two stages
        self.requests: list[ApiRequest] = []

    def read(self) -> None:
        """Take in what was logged since the last read."""
        with self._path.open("rb") as log:
            log.seek(self._offset)
            chunk = log.read()
        complete = chunk.rfind(b"\n") + 1
        self._offset += complete
        for line in chunk[:complete].splitlines():
            if self._marker not in line:
                continue
            entry = json.loads(line)
            if entry.get("user", {}).get("username") != self._username:
                continue
            if entry["auditID"] in self._seen:
                continue
            self._seen.add(entry["auditID"])
            ref = entry.get("objectRef") or {}
            # Discovery and other non-resource requests have a path instead.
            resource = ref.get("resource") or entry["requestURI"].partition("?")[0]
            if ref.get("subresource"):
                resource += "/" + ref["subresource"]
            self.requests.append(
                ApiRequest(
                    at=datetime.fromisoformat(entry["requestReceivedTimestamp"]).timestamp(),
                    verb=entry["verb"],
                    resource=resource,
                    namespace=ref.get("namespace"),
                    name=ref.get("name"),
                )
            )

    def between(self, start: float, end: float = float("inf")) -> list[ApiRequest]:
        """The operator's requests received in [start, end) (Unix times)."""
        self.read()
        return [r for r in self.requests if start <= r.at < end]


def by_kind(requests: Iterable[ApiRequest]) -> dict[str, int]:
    """Request counts by `verb resource`, most first."""
    return dict(Counter(r.kind for r in requests).most_common())
