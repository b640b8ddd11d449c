"""An eGain token endpoint emulator for tests and the demo.

It serves the two client-credentials flows of eGain exactly as documented
(`/system/auth/{TENANT}-{SUFFIX}/oauth2/token` for a client app, and
`/core/authmgr/v3/oauth2/v2.0/anonymous/token?user_type=customer&domain_hint=...`
for an anonymous customer), over HTTPS only, with its own CA. It is as strict
as the real service so that a test passing here means the operator sends
well-formed requests, and it can misbehave on demand (latency, 5xx, 429,
garbage bodies, odd `expires_in`, resets, hangs, redirects) so that every
failure path of the operator can be exercised.

Neither client secrets nor issued tokens are ever printed or logged: tests
check tokens with `is_issued_token()` / `token_info()` and log fingerprints.

Stdlib `http.server` is used rather than aiohttp: one thread per connection
makes "close the socket without answering" and "never answer" trivial to do
without disturbing other requests.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import secrets
import signal
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qs, parse_qsl

import yaml

from testground import pki

logger = logging.getLogger(__name__)

ANONYMOUS_TOKEN_PATH = "/core/authmgr/v3/oauth2/v2.0/anonymous/token"
ANONYMOUS_SCOPE_PREFIX = "https://api.ai.egain.cloud/auth/"
ADMIN_PREFIX = "/admin/"
# Where a redirect fault points by default: a path the emulator answers 404 on
# and records, so a test can prove nobody followed the redirect.
REDIRECT_TARGET_PATH = "/elsewhere/oauth2/token"
# Tenant ids may contain hyphens, so the suffix is what follows the LAST one.
_CLIENT_APP_PATH = re.compile(
    r"^/system/auth/(?P<tenant>[A-Za-z0-9_-]+)-(?P<suffix>[A-Za-z0-9]+)/oauth2/token$"
)
_FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
_MAX_BODY = 64 * 1024
_MAX_DRAIN = 1024 * 1024
_MAX_LOG = 10_000
_HANDSHAKE_TIMEOUT = 5.0
# A hang is released by clear_faults()/reset()/stop(); this only bounds a
# forgotten one so that a thread cannot outlive a long demo forever.
_MAX_HANG = 600.0
# Issued tokens and client secrets are runs of URL-safe characters; any such run
# in a text is looked up among what the emulator issued (see `secrets_in`).
_CANDIDATE = re.compile(r"[A-Za-z0-9._~+/=-]{16,}")


class Flow(StrEnum):
    """The two eGain client-credentials flows (names as in the EgainToken API)."""

    CLIENT_APP = "ClientApp"
    ANONYMOUS_CUSTOMER = "AnonymousCustomer"


class FaultKind(StrEnum):
    """Ways the emulator can misbehave on token requests."""

    LATENCY = "latency"  # answer `delay` seconds late (combines with the others)
    SERVER_ERROR = "server_error"  # HTTP `status` (default 503)
    RATE_LIMITED = "rate_limited"  # HTTP 429 with `Retry-After: retry_after`
    NON_JSON = "non_json"  # 200, Content-Type JSON, body not JSON
    HTML = "html"  # 200, an HTML page (as a captive portal or proxy sends)
    NO_EXPIRES_IN = "no_expires_in"  # a success without `expires_in`
    STRING_EXPIRES_IN = "string_expires_in"  # a success with `"expires_in": "3600"`
    RESET = "reset"  # TCP reset after reading the request, no response
    HANG = "hang"  # read the request, never answer (until cleared or stopped)
    REDIRECT = "redirect"  # HTTP `status` (default 302) to `location`


# How each fault takes part in a request: a delay comes first; a takeover
# replaces the whole answer before the request is even validated (the service
# is down, not judging); a shaping fault only alters a successful answer.
_DELAY = frozenset({FaultKind.LATENCY})
_SHAPE = frozenset({FaultKind.NO_EXPIRES_IN, FaultKind.STRING_EXPIRES_IN})
_TAKEOVER = frozenset(FaultKind) - _DELAY - _SHAPE


@dataclass(frozen=True)
class Client:
    """A client application registered with the emulated eGain tenant."""

    client_id: str
    client_secret: str = field(repr=False)
    tenant: str
    scopes: frozenset[str]  # unprefixed, e.g. "knowledge.portalmgr.read"
    lifetime: int = 3600  # seconds, sent as expires_in
    flows: frozenset[Flow] = frozenset(Flow)


@dataclass(frozen=True)
class Fault:
    """An active fault. `count` is how many more requests it applies to (None: until cleared)."""

    kind: FaultKind
    count: int | None = 1
    client_id: str | None = None  # only requests from this client; None: all
    status: int | None = None  # server_error (default 503) and redirect (default 302)
    retry_after: int = 1  # rate_limited: seconds in Retry-After
    delay: float = 0.0  # latency: seconds
    location: str | None = None  # redirect target; default: a recorded 404 path here


@dataclass(frozen=True)
class RequestRecord:
    """One request to a token path, as the emulator saw it. Holds no secret and no token."""

    monotonic: float  # time.monotonic() when answered
    wall_time: datetime.datetime  # UTC
    method: str
    path: str  # without the query
    flow: Flow | None  # None: not a token path (404)
    tenant: str | None  # from the path (ClientApp) or domain_hint (AnonymousCustomer)
    domain_hint: str | None
    user_type: str | None
    content_type: str | None
    client_id: str | None
    grant_type: str | None
    scopes: tuple[str, ...]  # as sent (prefixed for AnonymousCustomer)
    status: int | None  # None: reset or hang, nothing was sent
    error: str | None  # the OAuth error code of a rejection
    fault: FaultKind | None  # the takeover or shaping fault applied
    delayed: float  # seconds of latency fault applied
    token_issued: bool
    token_fingerprint: str | None  # see token_fingerprint()

    def to_json(self) -> dict[str, Any]:
        """This record as JSON-ready data (the admin endpoint's format)."""
        data = asdict(self)
        data["wall_time"] = self.wall_time.isoformat()
        data["scopes"] = list(self.scopes)
        return data


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
        return _utcnow() >= self.expires_at

    def to_json(self) -> dict[str, Any]:
        """This token's metadata as JSON-ready data."""
        data = asdict(self)
        data["issued_at"] = self.issued_at.isoformat()
        data["expires_at"] = self.expires_at.isoformat()
        data["expired"] = self.expired
        return data


def token_fingerprint(token: str) -> str:
    """A short, one-way, loggable name for a token (never the token itself)."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:16]


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_unspecified(address: str) -> bool:
    return ipaddress.ip_address(address).is_unspecified


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class _OAuthError(Exception):
    """A rejection as RFC 6749 §5.2 describes it."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(error)
        self.error = error
        self.description = description
        self.status = status


@dataclass
class _Seen:
    """What is known of a token request so far; becomes its RequestRecord."""

    method: str
    path: str
    content_type: str | None
    flow: Flow | None = None
    tenant: str | None = None
    domain_hint: str | None = None
    user_type: str | None = None
    client_id: str | None = None
    grant_type: str | None = None
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Reply:
    """What the connection handler must do: answer, reset, hang or just close."""

    action: Literal["respond", "reset", "hang", "close"] = "respond"
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    hang_release: threading.Event | None = None


_NO_STORE = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))
_JSON = ("Content-Type", "application/json;charset=UTF-8")


def _json_reply(status: int, payload: object, *headers: tuple[str, str]) -> _Reply:
    body = json.dumps(payload).encode()
    return _Reply(status=status, headers=(_JSON, *_NO_STORE, *headers), body=body)


def _text_reply(status: int, text: str, content_type: str = "text/plain") -> _Reply:
    return _Reply(status=status, headers=(("Content-Type", content_type),), body=text.encode())


def _oauth_error_reply(exc: _OAuthError) -> _Reply:
    payload = {"error": exc.error, "error_description": exc.description}
    if exc.status == 401:
        return _json_reply(401, payload, ("WWW-Authenticate", 'Basic realm="eGain"'))
    return _json_reply(exc.status, payload)


_HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>Sign in</title></head>"
    "<body><h1>Please sign in</h1><form method='post'></form></body></html>"
)


def _single_values(pairs: list[tuple[str, str]], where: str) -> dict[str, str]:
    # RFC 6749 §3.2: parameters MUST NOT be included more than once.
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values:
            raise _OAuthError("invalid_request", f"parameter {name} repeated in {where}")
        values[name] = value
    return values


def _parse_form(body: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(
            body.decode("ascii"), keep_blank_values=True, strict_parsing=True, errors="strict"
        )
    except ValueError as exc:  # includes UnicodeDecodeError
        raise _OAuthError("invalid_request", "malformed form body") from exc
    return _single_values(pairs, "body")


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _observe(
    method: str, target: str, content_type: str | None, body: bytes
) -> tuple[_Seen, str, dict[str, str] | None]:
    """Learn what a request is (flow, client, ...) leniently, for faults and the log.

    Returns what was seen, the raw query and the form (None if not a valid
    form); validation proper is `_authorize()`'s job.
    """
    path, _, query = target.partition("?")
    seen = _Seen(method=method, path=path, content_type=content_type)
    if path == ANONYMOUS_TOKEN_PATH:
        query_values = parse_qs(query, keep_blank_values=True)
        seen.flow = Flow.ANONYMOUS_CUSTOMER
        seen.user_type = query_values.get("user_type", [None])[0]
        seen.domain_hint = seen.tenant = query_values.get("domain_hint", [None])[0]
    elif match := _CLIENT_APP_PATH.match(path):
        seen.flow = Flow.CLIENT_APP
        seen.tenant = match["tenant"]
    form = None
    if _media_type(content_type) == _FORM_CONTENT_TYPE:
        with contextlib.suppress(_OAuthError):
            form = _parse_form(body)
    if form is not None:
        seen.client_id = form.get("client_id")
        seen.grant_type = form.get("grant_type")
        seen.scopes = tuple(form["scope"].split(" ")) if form.get("scope") else ()
    return seen, query, form


class EgainEmulator:
    """The eGain token endpoint, in a background thread, with fault knobs.

    Thread-safe: tests call any method while the server answers requests.
    """

    def __init__(
        self,
        state_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        url_host: str = "localhost",
        dns_names: Sequence[str] = (),
    ) -> None:
        """Prepare (not start) an emulator keeping its CA and certificate in `state_dir`.

        `url_host` is the host name (or address) used in `base_url`; `dns_names`
        are extra names for the serving certificate (e.g. a Service name in a
        cluster). The certificate also names `host` when it is an address, so
        that clients elsewhere (Pods on the node's bridge) can reach it by that.
        """
        self._state_dir = Path(state_dir)
        self._host = host
        self._port = port
        self._url_host = url_host
        names = ("localhost", url_host, *dns_names)
        self._dns_names = tuple(name for name in dict.fromkeys(names) if not _is_address(name))
        named = (a for a in (host, url_host) if _is_address(a) and not _is_unspecified(a))
        addresses = tuple(dict.fromkeys(("127.0.0.1", "::1", *named)))
        self._ca = pki.create_ca(self._state_dir, "egain-emulator-ca")
        # The file name depends on the names so that reused state never serves
        # a certificate issued for other names.
        digest = hashlib.sha256(" ".join(self._dns_names + addresses).encode()).hexdigest()[:8]
        self._serving = pki.issue(
            self._ca,
            self._state_dir,
            f"egain-emulator-{digest}",
            common_name="egain-emulator",
            dns_names=self._dns_names,
            ip_addresses=addresses,
            server=True,
        )
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # notified on each new record
        self._clients: dict[str, Client] = {}
        self._faults: list[Fault] = []
        self._records: deque[RequestRecord] = deque(maxlen=_MAX_LOG)
        self._tokens: dict[str, IssuedToken] = {}  # _digest(token) → metadata
        # Every client secret ever registered → its client id, so that a
        # rotated or removed one is still found by secrets_in().
        self._secrets: dict[str, str] = {}
        self._hang_release = threading.Event()
        self._stopping = threading.Event()
        self._connections: set[ssl.SSLSocket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Start serving in a background thread. After a stop(), the same port is reused."""
        if self._server is not None:
            raise RuntimeError("emulator already started")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self._serving.cert, self._serving.key)
        self._stopping.clear()
        server = _Server((self._host, self._port), self, context)
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.name = f"egain-emulator:{self._port}"
        self._thread.start()
        self._write_endpoint_file()
        logger.info("eGain emulator serving on %s", self.base_url)

    def stop(self) -> None:
        """Stop serving: release hangs, close every connection, free the port."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        self._release_hangs()
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            # The base class method, so as not to touch the SSL object that
            # the handler thread may be reading through right now.
            with contextlib.suppress(OSError):  # already closed by its handler
                socket.socket.shutdown(connection, socket.SHUT_RDWR)
        with self._changed:
            self._changed.wait_for(lambda: not self._connections, timeout=2.0)
        thread.join(timeout=2.0)
        self._server = self._thread = None
        logger.info("eGain emulator on port %d stopped", self._port)

    @contextlib.contextmanager
    def _tracked(self, connection: ssl.SSLSocket) -> Iterator[None]:
        """Keep `connection` known while it is served, so that stop() can close it."""
        with self._lock:
            self._connections.add(connection)
        try:
            yield
        finally:
            connection.close()
            with self._changed:
                self._connections.discard(connection)
                self._changed.notify_all()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port (known once started)."""
        if not self._port:
            raise RuntimeError("emulator not started")
        return self._port

    @property
    def base_url(self) -> str:
        """E.g. `https://localhost:40123`."""
        return f"https://{self._url_host}:{self.port}"

    @property
    def ca_file(self) -> Path:
        """PEM file of the CA that signed the serving certificate."""
        return self._ca.cert

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client-side SSL context trusting only this emulator's CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def client_app_token_url(self, tenant: str, suffix: str = "U") -> str:
        """Token URL of the client-app flow for `tenant`."""
        return f"{self.base_url}/system/auth/{tenant}-{suffix}/oauth2/token"

    def anonymous_token_url(self) -> str:
        """Token URL of the anonymous-customer flow, without its query."""
        return self.base_url + ANONYMOUS_TOKEN_PATH

    @property
    def redirect_target_url(self) -> str:
        """Where a redirect fault points unless told otherwise."""
        return self.base_url + REDIRECT_TARGET_PATH

    @property
    def admin_url(self) -> str:
        """Base of the admin endpoints (`/admin/faults`, `/admin/requests`, ...)."""
        return self.base_url + ADMIN_PREFIX.rstrip("/")

    # -- clients -----------------------------------------------------------

    def register_client(
        self,
        client_id: str,
        client_secret: str,
        tenant: str,
        scopes: Iterable[str],
        lifetime: int = 3600,
        flows: Iterable[Flow | str] = tuple(Flow),
    ) -> None:
        """Register (or replace) a client allowed `scopes` (unprefixed) on `flows`."""
        client = Client(
            client_id=client_id,
            client_secret=client_secret,
            tenant=tenant,
            scopes=frozenset(scopes),
            lifetime=int(lifetime),
            flows=frozenset(Flow(f) for f in flows),
        )
        if not client_id or not client_secret or not tenant:
            raise ValueError("client_id, client_secret and tenant must not be empty")
        if client.lifetime < 0:
            raise ValueError("lifetime must not be negative")
        with self._lock:
            self._clients[client_id] = client
            self._secrets[client_secret] = client_id

    def update_client(
        self,
        client_id: str,
        *,
        client_secret: str | None = None,
        tenant: str | None = None,
        scopes: Iterable[str] | None = None,
        lifetime: int | None = None,
        flows: Iterable[Flow | str] | None = None,
    ) -> None:
        """Change some attributes of a registered client."""
        with self._lock:
            current = self._clients[client_id]
        self.register_client(
            client_id,
            current.client_secret if client_secret is None else client_secret,
            current.tenant if tenant is None else tenant,
            current.scopes if scopes is None else scopes,
            current.lifetime if lifetime is None else lifetime,
            current.flows if flows is None else flows,
        )

    def rotate_secret(self, client_id: str, new_secret: str | None = None) -> str:
        """Replace a client's secret (random unless given); the old one stops working."""
        secret = new_secret or secrets.token_urlsafe(32)
        self.update_client(client_id, client_secret=secret)
        return secret

    def remove_client(self, client_id: str) -> None:
        """Forget a client: its requests get invalid_client from now on."""
        with self._lock:
            self._clients.pop(client_id, None)

    def clients(self) -> list[Client]:
        """The registered clients."""
        with self._lock:
            return list(self._clients.values())

    # -- faults ------------------------------------------------------------

    def set_fault(
        self,
        kind: FaultKind | str,
        *,
        count: int | None = 1,
        client_id: str | None = None,
        status: int | None = None,
        retry_after: int = 1,
        delay: float = 0.0,
        location: str | None = None,
    ) -> Fault:
        """Make the next `count` token requests (None or -1: all, until cleared) misbehave.

        `client_id` limits the fault to that client's requests. Setting a fault
        replaces the one of the same kind and client_id. When several apply,
        the latency one delays and the most recently set other one acts.
        """
        kind = FaultKind(kind)
        count = None if count is None or count == -1 else int(count)
        if count is not None and count < 1:
            raise ValueError("count must be positive, or None/-1 for 'until cleared'")
        if status is None:
            status = {FaultKind.SERVER_ERROR: 503, FaultKind.REDIRECT: 302}.get(kind)
        if kind is FaultKind.SERVER_ERROR and not (status and 500 <= status <= 599):
            raise ValueError("server_error needs a 5xx status")
        if kind is FaultKind.REDIRECT and status not in (301, 302, 303, 307, 308):
            raise ValueError("redirect needs a 3xx redirect status")
        if delay < 0 or retry_after < 0:
            raise ValueError("delay and retry_after must not be negative")
        fault = Fault(kind, count, client_id, status, int(retry_after), float(delay), location)
        with self._lock:
            self._faults = [
                f for f in self._faults if (f.kind, f.client_id) != (kind, client_id)
            ] + [fault]
        return fault

    def faults(self) -> list[Fault]:
        """The active faults, with their remaining counts."""
        with self._lock:
            return list(self._faults)

    def clear_faults(self, kind: FaultKind | str | None = None) -> None:
        """Remove all faults (or those of one kind) and release hung requests."""
        with self._lock:
            if kind is None:
                self._faults = []
            else:
                self._faults = [f for f in self._faults if f.kind != FaultKind(kind)]
        self._release_hangs()

    def _release_hangs(self) -> None:
        with self._lock:
            released, self._hang_release = self._hang_release, threading.Event()
        released.set()

    def _take_fault(self, kinds: frozenset[FaultKind], client_id: str | None) -> Fault | None:
        """Consume one use of the newest fault of `kinds` matching the client. Lock held."""
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

    # -- request log and issued tokens -------------------------------------

    def requests(
        self, client_id: str | None = None, *, flow: Flow | str | None = None
    ) -> list[RequestRecord]:
        """Recorded token requests, oldest first, optionally of one client or flow."""
        with self._lock:
            return [r for r in self._records if self._matches(r, client_id, flow)]

    def wait_for_requests(
        self,
        count: int = 1,
        client_id: str | None = None,
        *,
        flow: Flow | str | None = None,
        timeout: float = 10.0,
    ) -> list[RequestRecord]:
        """Block until at least `count` matching requests are recorded; return them.

        Raises TimeoutError after `timeout` seconds.
        """
        with self._changed:
            done = self._changed.wait_for(
                lambda: sum(self._matches(r, client_id, flow) for r in self._records) >= count,
                timeout=timeout,
            )
            found = [r for r in self._records if self._matches(r, client_id, flow)]
        if not done:
            raise TimeoutError(f"{len(found)} of {count} expected token requests after {timeout}s")
        return found

    @staticmethod
    def _matches(record: RequestRecord, client_id: str | None, flow: Flow | str | None) -> bool:
        return (client_id is None or record.client_id == client_id) and (
            flow is None or record.flow == flow
        )

    def reset(self) -> None:
        """Forget the request log and clear faults.

        Clients and issued tokens are kept, as the real service keeps them: a
        token issued before a reset still checks out with is_issued_token().
        """
        with self._lock:
            self._records.clear()
        self.clear_faults()

    token_fingerprint = staticmethod(token_fingerprint)

    def token_info(self, token: str) -> IssuedToken | None:
        """What this emulator issued as `token`, or None."""
        with self._lock:
            return self._tokens.get(_digest(token))

    def is_issued_token(self, token: str, *, client_id: str | None = None) -> bool:
        """Whether this emulator issued `token` (to `client_id`, if given)."""
        info = self.token_info(token)
        return info is not None and client_id in (None, info.client_id)

    def issued_tokens(self, client_id: str | None = None) -> list[IssuedToken]:
        """Metadata of the tokens issued (to `client_id`, if given), oldest first."""
        with self._lock:
            tokens = list(self._tokens.values())
        return [t for t in tokens if client_id in (None, t.client_id)]

    def secrets_in(self, text: str) -> dict[str, str]:
        """Every client secret ever registered and every issued token in `text`.

        The keys are the secret values themselves (for redaction); only the
        values, which describe them, are safe to show.
        """
        with self._lock:
            known = dict(self._secrets)
        found = {
            secret: f"a client secret of {client_id}"
            for secret, client_id in known.items()
            if secret in text
        }
        for candidate in set(_CANDIDATE.findall(text)):
            for part in {candidate, *re.split(r"[./=+]", candidate)}:
                info = self.token_info(part)
                if info is not None:
                    found[part] = f"a token issued to {info.client_id} at {info.issued_at}"
        return found

    def last_issued_expiry(self, client_id: str) -> datetime.datetime | None:
        """When the newest token issued to `client_id` expires, or None if none was."""
        tokens = self.issued_tokens(client_id)
        return tokens[-1].expires_at if tokens else None

    # -- the token endpoint ------------------------------------------------

    def _answer(self, method: str, target: str, content_type: str | None, body: bytes) -> _Reply:
        """Decide the answer to one non-admin request and record it."""
        seen, query, form = _observe(method, target, content_type, body)
        if seen.flow is None:
            reply = _json_reply(404, {"error": "not_found", "error_description": "no such path"})
            with self._lock:
                return self._record(seen, reply, error="not_found")

        with self._lock:
            latency = self._take_fault(_DELAY, seen.client_id)
        delayed = latency.delay if latency else 0.0
        # Interruptible, so that stop() never waits for a slow answer.
        if delayed and self._stopping.wait(delayed):
            return _Reply(action="close")

        with self._lock:
            fault = self._take_fault(_TAKEOVER, seen.client_id)
            if fault is not None:
                return self._record(seen, self._fault_reply(fault), fault=fault, delayed=delayed)
            try:
                client, scope = self._authorize(seen, query, form)
            except _OAuthError as exc:
                reply = _oauth_error_reply(exc)
                return self._record(seen, reply, error=exc.error, delayed=delayed)
            return self._issue(seen, seen.flow, client, scope, delayed)

    def _issue(self, seen: _Seen, flow: Flow, client: Client, scope: str, delayed: float) -> _Reply:
        """Issue a token to an authorised request, shaped by any shaping fault. Lock held."""
        shaping = self._take_fault(_SHAPE, client.client_id)
        token = secrets.token_urlsafe(32)
        now = _utcnow()
        issued = IssuedToken(
            fingerprint=token_fingerprint(token),
            client_id=client.client_id,
            flow=flow,
            tenant=client.tenant,
            scope=scope,
            issued_at=now,
            expires_at=now + datetime.timedelta(seconds=client.lifetime),
        )
        self._tokens[_digest(token)] = issued
        payload: dict[str, object] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": client.lifetime,
            "scope": scope,
        }
        if shaping and shaping.kind is FaultKind.NO_EXPIRES_IN:
            del payload["expires_in"]
        elif shaping and shaping.kind is FaultKind.STRING_EXPIRES_IN:
            payload["expires_in"] = str(client.lifetime)
        reply = _json_reply(200, payload)
        return self._record(seen, reply, fault=shaping, delayed=delayed, token=issued)

    def _authorize(
        self, seen: _Seen, query: str, form: dict[str, str] | None
    ) -> tuple[Client, str]:
        """Validate a token request like eGain does; return the client and granted scope.

        Raises _OAuthError. Lock held.
        """
        if seen.method != "POST":
            raise _OAuthError("invalid_request", "the token endpoint accepts POST only", 405)
        if _media_type(seen.content_type) != _FORM_CONTENT_TYPE:
            raise _OAuthError("invalid_request", f"Content-Type must be {_FORM_CONTENT_TYPE}")
        if form is None:
            raise _OAuthError("invalid_request", "malformed or repeated form parameters")
        if seen.flow is Flow.ANONYMOUS_CUSTOMER:
            params = _single_values(parse_qsl(query, keep_blank_values=True), "query")
            if params.get("user_type") != "customer":
                raise _OAuthError("invalid_request", "user_type must be customer")
            if not params.get("domain_hint"):
                raise _OAuthError("invalid_request", "domain_hint is required")
        grant_type = form.get("grant_type")
        if not grant_type:
            raise _OAuthError("invalid_request", "grant_type is required")
        if grant_type != "client_credentials":
            raise _OAuthError("unsupported_grant_type", "only client_credentials is supported")
        for name in ("client_id", "client_secret", "scope"):
            if not form.get(name):
                raise _OAuthError("invalid_request", f"{name} is required")

        client = self._clients.get(form["client_id"])
        secret = form["client_secret"].encode()
        if client is None or not hmac.compare_digest(client.client_secret.encode(), secret):
            raise _OAuthError("invalid_client", "client authentication failed", 401)
        if seen.flow not in client.flows:
            raise _OAuthError("unauthorized_client", f"client may not use the {seen.flow} flow")
        if seen.flow is Flow.CLIENT_APP and seen.tenant != client.tenant:
            raise _OAuthError("unauthorized_client", "client does not belong to this tenant")
        if seen.flow is Flow.ANONYMOUS_CUSTOMER and seen.domain_hint != client.tenant:
            raise _OAuthError("invalid_request", "domain_hint is not the client's tenant")

        scope = form["scope"]
        for requested in scope.split(" "):  # exactly one space between scopes (RFC 6749 §3.3)
            name = requested
            if seen.flow is Flow.ANONYMOUS_CUSTOMER:
                if not requested.startswith(ANONYMOUS_SCOPE_PREFIX):
                    raise _OAuthError(
                        "invalid_scope", f"scopes must start with {ANONYMOUS_SCOPE_PREFIX}"
                    )
                name = requested.removeprefix(ANONYMOUS_SCOPE_PREFIX)
            if name not in client.scopes:
                raise _OAuthError(
                    "invalid_scope", "a requested scope is not granted to this client"
                )
        return client, scope

    def _fault_reply(self, fault: Fault) -> _Reply:
        """The answer a takeover fault gives instead of the real one. Lock held."""
        status = fault.status or 0
        match fault.kind:
            case FaultKind.SERVER_ERROR:
                return _text_reply(status, f"{status} {_phrase(status)}")
            case FaultKind.RATE_LIMITED:
                reply = _text_reply(429, "429 Too Many Requests")
                return replace(
                    reply, headers=(*reply.headers, ("Retry-After", str(fault.retry_after)))
                )
            case FaultKind.NON_JSON:
                # Labelled JSON but cut short, as a proxy that drops the connection sends.
                return replace(_text_reply(200, '{"token_type": "Bearer", "acc'), headers=(_JSON,))
            case FaultKind.HTML:
                return _text_reply(200, _HTML_PAGE, "text/html;charset=UTF-8")
            case FaultKind.RESET:
                return _Reply(action="reset")
            case FaultKind.HANG if self._stopping.is_set():
                # stop() has already released the hangs; this one would be missed.
                return _Reply(action="close")
            case FaultKind.HANG:
                return _Reply(action="hang", hang_release=self._hang_release)
            case FaultKind.REDIRECT:
                location = fault.location or self.redirect_target_url
                return _Reply(status=status, headers=(("Location", location),))
        raise AssertionError(f"not a takeover fault: {fault.kind}")

    def _record(
        self,
        seen: _Seen,
        reply: _Reply,
        *,
        error: str | None = None,
        fault: Fault | None = None,
        delayed: float = 0.0,
        token: IssuedToken | None = None,
    ) -> _Reply:
        """Log a request before it is answered, so no client sees the answer first. Lock held."""
        status = reply.status if reply.action == "respond" else None
        record = RequestRecord(
            monotonic=time.monotonic(),
            wall_time=_utcnow(),
            **asdict(seen),
            status=status,
            error=error,
            fault=fault.kind if fault else None,
            delayed=delayed,
            token_issued=token is not None,
            token_fingerprint=token.fingerprint if token else None,
        )
        self._records.append(record)
        self._changed.notify_all()
        # Never the secret, never the token: client, outcome, nothing else.
        logger.info(
            "token request flow=%s client_id=%s status=%s error=%s fault=%s",
            record.flow,
            record.client_id,
            "none" if status is None else status,
            error,
            record.fault,
        )
        return reply

    # -- admin endpoint ----------------------------------------------------

    def _admin(self, method: str, target: str, body: bytes) -> tuple[int, object]:
        """Serve `/admin/...`; return the status and a JSON-ready payload."""
        path, _, query = target.partition("?")
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        try:
            data: Any = json.loads(body) if body else {}
        except ValueError:
            return 400, {"error": "body is not JSON"}
        try:
            return self._admin_route(method, path.removeprefix(ADMIN_PREFIX), params, data)
        except (KeyError, TypeError, ValueError) as exc:
            # Never echo the request back: it may hold a client secret.
            return 400, {"error": f"bad admin request ({type(exc).__name__})"}

    def _admin_route(
        self, method: str, route: str, params: Mapping[str, str], data: Any
    ) -> tuple[int, object]:
        match method, route:
            case "GET", "faults":
                return 200, [asdict(f) for f in self.faults()]
            case "POST", "faults":
                return 201, asdict(self.set_fault(**dict(data)))
            case "DELETE", "faults":
                self.clear_faults(params.get("kind"))
                return 200, []
            case "GET", "requests":
                records = self.requests(params.get("client_id"), flow=params.get("flow"))
                return 200, [r.to_json() for r in records]
            case "POST", "reset":
                self.reset()
                return 200, {}
            case "GET", "clients":
                return 200, [_public_client(c) for c in self.clients()]
            case "POST", "clients":
                self.register_client(**dict(data))
                return 201, {"client_id": data["client_id"]}
            case "GET", "tokens":
                return 200, [t.to_json() for t in self.issued_tokens(params.get("client_id"))]
            case "POST", "introspect":
                # The token travels in the body, never in a URL that might be logged.
                info = self.token_info(str(data["token"]))
                if info is None:
                    return 200, {"active": False}
                return 200, {"active": not info.expired, **info.to_json()}
        return 404, {"error": f"no admin route {method} {route}"}

    def _write_endpoint_file(self) -> None:
        """Let other processes (the demo, scripts) find the emulator."""
        endpoint = {
            "base_url": self.base_url,
            "ca_file": str(self.ca_file),
            "admin_url": self.admin_url,
            "anonymous_token_url": self.anonymous_token_url(),
        }
        (self._state_dir / "endpoint.json").write_text(json.dumps(endpoint, indent=2) + "\n")


def _public_client(client: Client) -> dict[str, object]:
    return {
        "client_id": client.client_id,
        "tenant": client.tenant,
        "scopes": sorted(client.scopes),
        "lifetime": client.lifetime,
        "flows": sorted(client.flows),
    }


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Server Error"


# -- HTTP plumbing ---------------------------------------------------------


class _Server(ThreadingHTTPServer):
    """A threading HTTPS server whose TLS handshakes happen in the worker threads."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], emulator: EgainEmulator, context: ssl.SSLContext
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.emulator = emulator
        self.ssl_context = context
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() resolves the host name (getfqdn), which can
        # stall for seconds without DNS; nothing here needs it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def finish_request(self, request: Any, client_address: Any) -> None:
        # Wrapping here (not on the listening socket) keeps a slow or plain-HTTP
        # client from stalling the accept loop; a failed handshake gets no answer.
        request.settimeout(_HANDSHAKE_TIMEOUT)
        # Headers and body are separate small writes: without this, Nagle and
        # delayed ACKs add ~40 ms to every answer.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            connection = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            logger.debug("TLS handshake failed from %s: %s", client_address[0], exc)
            return
        with self.emulator._tracked(connection):
            _Handler(connection, client_address, self)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients going away mid-request are routine here (timeouts, resets).
        logger.debug("connection from %s ended with an error", client_address[0], exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    """One connection: HTTP/1.1 keep-alive, every method routed to _dispatch."""

    protocol_version = "HTTP/1.1"
    server_version = "eGainEmulator/1"
    sys_version = ""
    timeout = 30  # idle keep-alive connections are dropped after this
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        # The stdlib logs raw request lines to stderr; the emulator logs its own
        # sanitised line per request instead.
        pass

    def _dispatch(self) -> None:
        emulator = self.server.emulator
        if emulator._stopping.is_set():
            self.close_connection = True
            return
        body = self._read_body()
        if body is None:
            return
        target = self.path
        if target.startswith(ADMIN_PREFIX):
            status, payload = emulator._admin(self.command, target, body)
            self._send(_json_reply(status, payload))
            return
        reply = emulator._answer(self.command, target, self.headers.get("Content-Type"), body)
        match reply.action:
            case "respond":
                self._send(reply)
            case "reset":
                self._reset()
            case "hang":
                assert reply.hang_release is not None
                reply.hang_release.wait(_MAX_HANG)
                self.close_connection = True
            case "close":
                self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def _read_body(self) -> bytes | None:
        """The request body; None (after answering) when it cannot be read."""
        if self.headers.get("Transfer-Encoding"):
            self._refuse(411, "send a Content-Length")
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY:
            # Drain what is reasonable: closing on unread data sends a TCP RST,
            # which can overtake the answer and turn a 413 into a reset.
            self.rfile.read(min(max(length, 0), _MAX_DRAIN))
            self._refuse(413, "bad Content-Length")
            return None
        return self.rfile.read(length)

    def _refuse(self, status: int, description: str) -> None:
        # The body was not read, so the connection cannot be reused.
        self.close_connection = True
        payload = {"error": "invalid_request", "error_description": description}
        self._send(_json_reply(status, payload))

    def _send(self, reply: _Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        if reply.status == 405:
            self.send_header("Allow", "POST")
        self.send_header("Content-Length", str(len(reply.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def _reset(self) -> None:
        """Abort the connection with a TCP RST, answering nothing."""
        # Linger 0 turns close() into a reset. The buffered reader holds a
        # reference to the socket, so it goes first or close() would be deferred.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.connection.close()
        self.close_connection = True


# -- command line ------------------------------------------------------------


def _parse_client_spec(spec: str) -> dict[str, Any]:
    """`ID:SECRET:TENANT:SCOPE1,SCOPE2[:LIFETIME[:FLOW1,FLOW2]]` → register_client kwargs."""
    parts = spec.split(":")
    if not 4 <= len(parts) <= 6:
        # Do not echo the spec: it holds a secret.
        raise argparse.ArgumentTypeError("expected ID:SECRET:TENANT:SCOPES[:LIFETIME[:FLOWS]]")
    client: dict[str, Any] = {
        "client_id": parts[0],
        "client_secret": parts[1],
        "tenant": parts[2],
        "scopes": [s for s in parts[3].split(",") if s],
    }
    if len(parts) > 4 and parts[4]:
        client["lifetime"] = int(parts[4])
    if len(parts) > 5 and parts[5]:
        client["flows"] = parts[5].split(",")
    return client


def _load_clients_file(path: Path) -> list[dict[str, Any]]:
    """Clients from YAML or JSON: a list, or a mapping with a `clients` list."""
    loaded = yaml.safe_load(path.read_text())
    clients = loaded.get("clients", []) if isinstance(loaded, dict) else loaded
    if not isinstance(clients, list):
        raise TypeError(f"{path}: expected a list of clients")
    return [dict(c) for c in clients]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m testground.emulator", description="eGain token endpoint emulator"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument(
        "--state-dir", type=Path, required=True, help="CA and certificate live here"
    )
    parser.add_argument("--url-host", default="localhost", help="host name in the printed URLs")
    parser.add_argument("--dns-name", action="append", default=[], help="extra certificate name")
    parser.add_argument(
        "--client",
        action="append",
        default=[],
        type=_parse_client_spec,
        metavar="ID:SECRET:TENANT:SCOPES[:LIFETIME[:FLOWS]]",
        help="register a client (repeatable; SCOPES and FLOWS comma-separated)",
    )
    parser.add_argument("--clients-file", type=Path, help="YAML/JSON list of clients")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )

    emulator = EgainEmulator(
        args.state_dir, args.host, args.port, url_host=args.url_host, dns_names=args.dns_name
    )
    clients: list[dict[str, Any]] = list(args.client)
    if args.clients_file:
        clients += _load_clients_file(args.clients_file)
    for client in clients:
        emulator.register_client(**client)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with emulator:
        print(f"base_url={emulator.base_url}")
        print(f"ca_file={emulator.ca_file}")
        print(f"admin_url={emulator.admin_url}")
        for tenant in sorted({c["tenant"] for c in clients}):
            print(f"client_app_token_url={emulator.client_app_token_url(tenant)}")
        print(f"anonymous_token_url={emulator.anonymous_token_url()}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
