"""The admin API under `/admin/`: faults, the request log, clients and tokens over HTTP.

It lets other processes (the demo, scripts, Pods) do what tests do in-process:
`GET/POST/DELETE /admin/faults`, `GET /admin/requests`, `GET /admin/concurrency`
(token requests in flight now and at most since the last reset),
`POST /admin/reset`, `GET/POST /admin/clients`, `GET /admin/tokens` and
`POST /admin/introspect` (the token in the body, never in a URL). Bad requests get a 400 that never
echoes the request, which may hold a client secret.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any, Protocol
from urllib.parse import parse_qs

from testground.emulator.clients import public_client
from testground.emulator.faults import Fault, FaultKind
from testground.emulator.oauth import Client, Flow
from testground.emulator.records import Concurrency, RequestRecord
from testground.emulator.tokens import IssuedToken

ADMIN_PREFIX = "/admin/"


class Administered(Protocol):
    """What the admin API reads and changes of the emulator (`endpoint.EgainEmulator`).

    Declared here, not imported, so that the admin API sits below the
    emulator that serves it rather than importing it back.
    """

    # Called with a JSON object's members as keywords: their names are checked
    # by the call itself, which answers a wrong one with a 400.
    @property
    def set_fault(self) -> Callable[..., Fault]: ...
    @property
    def register_client(self) -> Callable[..., None]: ...

    def faults(self) -> list[Fault]: ...
    def clear_faults(self, kind: FaultKind | str | None = None) -> None: ...
    def requests(
        self, client_id: str | None = None, *, flow: Flow | str | None = None
    ) -> list[RequestRecord]: ...
    def concurrency(self) -> Concurrency: ...
    def reset(self) -> None: ...
    def clients(self) -> list[Client]: ...
    def issued_tokens(self, client_id: str | None = None) -> list[IssuedToken]: ...
    def token_info(self, token: str) -> IssuedToken | None: ...


def serve_admin(
    emulator: Administered, method: str, target: str, body: bytes
) -> tuple[int, object]:
    """Serve `/admin/...`; return the status and a JSON-ready payload."""
    path, _, query = target.partition("?")
    params = {k: v[-1] for k, v in parse_qs(query).items()}
    try:
        data: Any = json.loads(body) if body else {}
    except ValueError:
        return 400, {"error": "body is not JSON"}
    try:
        return _route(emulator, method, path.removeprefix(ADMIN_PREFIX), params, data)
    except (KeyError, TypeError, ValueError) as exc:
        # Never echo the request back: it may hold a client secret.
        return 400, {"error": f"bad admin request ({type(exc).__name__})"}


def _route(
    emulator: Administered, method: str, route: str, params: Mapping[str, str], data: Any
) -> tuple[int, object]:
    match method, route:
        case "GET", "faults":
            return 200, [asdict(f) for f in emulator.faults()]
        case "POST", "faults":
            return 201, asdict(emulator.set_fault(**dict(data)))
        case "DELETE", "faults":
            emulator.clear_faults(params.get("kind"))
            return 200, []
        case "GET", "requests":
            records = emulator.requests(params.get("client_id"), flow=params.get("flow"))
            return 200, [r.to_json() for r in records]
        case "GET", "concurrency":
            return 200, asdict(emulator.concurrency())
        case "POST", "reset":
            emulator.reset()
            return 200, {}
        case "GET", "clients":
            return 200, [public_client(c) for c in emulator.clients()]
        case "POST", "clients":
            emulator.register_client(**dict(data))
            return 201, {"client_id": data["client_id"]}
        case "GET", "tokens":
            return 200, [t.to_json() for t in emulator.issued_tokens(params.get("client_id"))]
        case "POST", "introspect":
            # The token travels in the body, never in a URL that might be logged.
            info = emulator.token_info(str(data["token"]))
            if info is None:
                return 200, {"active": False}
            return 200, {"active": not info.expired, **info.to_json()}
    return 404, {"error": f"no admin route {method} {route}"}
