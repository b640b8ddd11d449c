"""Row a)'s plain client, in a process of its own so that the CPU it spends is its own.

`python -m benchmark.floorclient` reads a `Job` as JSON on stdin, does what
one issue needs (the token POST to the emulator, a Secret create, a merge
patch of an EgainToken's status) `trials` times in a row and then once for
each of `names` with `concurrency` at a time, and prints the figures as JSON:
the durations of the trials and of their three calls, and the throughput
with the CPU (user and system) the process spent on it. `issue.floor` runs it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from benchmark.kube import MERGE_PATCH, secrets_path, tokens_path
from egain_token_operator.decisions.timestamps import rfc3339


@dataclass(frozen=True)
class Job:
    """What the client does, and where."""

    server: str  # the API server
    ca_file: str  # the cluster's CA
    client_cert: str  # the cluster admin's certificate and key
    client_key: str
    token_url: str
    egain_ca_file: str  # the emulator's CA
    namespace: str  # where the EgainTokens are (no operator serves it)
    client_id: str
    client_secret: str
    scope: str
    warm_up: str  # the EgainToken issued once first, to open the connections
    trials: list[str]  # issued one after the other
    names: list[str]  # issued `concurrency` at a time
    concurrency: int


async def run(job: Job) -> dict[str, Any]:
    """The figures of `job`: each trial's three durations, and the throughput's."""
    form = {
        "grant_type": "client_credentials",
        "client_id": job.client_id,
        "client_secret": job.client_secret,
        "scope": job.scope,
    }
    cluster = ssl.create_default_context(cafile=job.ca_file)
    cluster.load_cert_chain(job.client_cert, job.client_key)
    limits = httpx.Limits(max_connections=job.concurrency)
    async with (
        httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=job.egain_ca_file),
            timeout=30.0,
            limits=limits,
        ) as egain,
        httpx.AsyncClient(base_url=job.server, verify=cluster, timeout=60.0, limits=limits) as api,
    ):

        async def issue(name: str) -> tuple[float, float, float]:
            """The durations of the token POST, the Secret create and the status patch."""
            started = time.perf_counter()
            sent = datetime.now(UTC)
            response = await egain.post(job.token_url, data=form)
            response.raise_for_status()
            answer = response.json()
            expires = rfc3339(sent + timedelta(seconds=int(answer["expires_in"])))
            posted = time.perf_counter()
            created = await api.post(
                secrets_path(job.namespace), json=secret(name, answer, expires, job.scope)
            )
            created.raise_for_status()
            written = time.perf_counter()
            patched = await api.patch(
                f"{tokens_path(job.namespace)}/{name}/status",
                content=json.dumps({"status": status(name, rfc3339(sent), expires, job.scope)}),
                headers=MERGE_PATCH,
            )
            patched.raise_for_status()
            return posted - started, written - posted, time.perf_counter() - written

        await issue(job.warm_up)
        parts = [await issue(name) for name in job.trials]
        limit = asyncio.Semaphore(job.concurrency)

        async def limited(name: str) -> None:
            async with limit:
                await issue(name)

        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(limited(name) for name in job.names))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"parts": parts, "seconds": elapsed, "cpu_seconds": cpu}


def secret(name: str, answer: dict[str, Any], expires: str, scope: str) -> dict[str, Any]:
    """A Secret like the operator's."""
    token_type = str(answer.get("token_type", "Bearer"))
    values = {
        "access_token": answer["access_token"],
        "token_type": token_type,
        "authorization": f"{token_type} {answer['access_token']}",
        "expires_at": expires,
        "scope": answer.get("scope", scope),
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"{name}-token", "labels": {"egain.cloud/token": name}},
        "type": "Opaque",
        "data": {k: base64.b64encode(str(v).encode()).decode() for k, v in values.items()},
    }


def status(name: str, issued: str, expires: str, scope: str) -> dict[str, Any]:
    """A status like the operator's."""
    return {
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "TokenIssued",
                "message": f"token valid until {expires}",
                "lastTransitionTime": issued,
                "observedGeneration": 1,
            }
        ],
        "secretName": f"{name}-token",
        "tokenType": "Bearer",
        "scopes": [scope],
        "issuedAt": issued,
        "expiresAt": expires,
        "consecutiveFailures": 0,
    }


def main() -> None:
    job = Job(**json.load(sys.stdin))
    json.dump(asyncio.run(run(job)), sys.stdout)


if __name__ == "__main__":
    main()
