"""What is sent to eGain: the two client-credentials flows and the token request.

The flow objects build the URL (with `user_type` and `domain_hint` for
anonymous customers), the scopes (with the prefix) and the form; `build_request`
turns a spec and its credentials into the one `TokenRequest` the transport
sends. Nothing here knows about Kubernetes or touches the network.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit, urlunsplit

from egain_token_operator.decisions.issuer import GRANT_TYPE, Flow, with_scope_prefix
from egain_token_operator.decisions.tokenspec import TokenSharing, TokenSpec

# The key of `TokenRequest.sharing_key`. Sharing keys live in this process's
# memory only, so a key drawn at start-up serves, and makes them useless to
# anyone who reads one: even a weak client secret cannot be guessed from it.
_SHARING_KEY = secrets.token_bytes(32)


@dataclass(frozen=True, slots=True)
class CredentialsOrigin:
    """Where client credentials were read: the Secret (its identity and the
    resourceVersion read) and the two keys. Any edit of the Secret gives it a
    new resourceVersion, so this changes whenever the credentials may have."""

    namespace: str
    name: str
    uid: str
    resource_version: str
    client_id_key: str
    client_secret_key: str


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """A client id and secret, and where they were read. Neither shows in `repr`."""

    client_id: str = field(repr=False)
    client_secret: str = field(repr=False)
    origin: CredentialsOrigin


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """One token request, ready to send."""

    url: str
    flow: str
    scopes: tuple[str, ...]
    form: Mapping[str, str] = field(repr=False)
    # Where the credentials in `form` were read: what `fingerprint` says of them.
    credentials: CredentialsOrigin
    # Whether the token it gets may serve identical requests (`spec.tokenSharing`).
    shared: bool = True

    @property
    def sharing_key(self) -> str | None:
        """What identical requests have in common, so that they can share one token.

        The URL (query included), the grant type, the client id and secret, and
        the set of scopes as sent: their order does not change the token eGain
        issues, so it does not count here (it does in `fingerprint`). An HMAC under
        a key drawn at start-up: equal within the process, never stored, and
        the client secret cannot be read back from it. None when the request
        must have a token of its own.
        """
        if not self.shared:
            return None
        canonical = json.dumps(
            [
                self.url,
                self.form["grant_type"],
                self.form["client_id"],
                self.form["client_secret"],
                sorted(set(self.scopes)),
            ],
            separators=(",", ":"),
        )
        return hmac.new(_SHARING_KEY, canonical.encode(), hashlib.sha256).hexdigest()

    @property
    def fingerprint(self) -> str:
        """A digest of everything that determines the token this request gets.

        Stored beside the token, on a Secret the EgainToken's team can read, it
        tells after a restart whether the token still answers the current spec
        and credentials. It is a SHA-256 over the URL, the flow, the scopes as
        sent and where the credentials were read (`CredentialsOrigin`), never
        over their values: no guess of the client id or secret can be checked
        against it. A rotation is an edit of the credentials Secret, which
        gives it a new resourceVersion, so it still changes the fingerprint.
        """
        origin = self.credentials
        canonical = json.dumps(
            [
                self.url,
                self.flow,
                list(self.scopes),
                [origin.namespace, origin.name, origin.uid, origin.resource_version],
                [origin.client_id_key, origin.client_secret_key],
            ],
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def legacy_fingerprint(self) -> str:
        """The fingerprint as releases before `fingerprint` left out the
        credentials' values wrote it: a SHA-256 over the URL and the form.

        Only compared with, never written: a token stored under it answers this
        request as well, so an upgrade requests no token for it.
        """
        canonical = json.dumps([self.url, sorted(self.form.items())], separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def host(self) -> str:
        """The host the request goes to (safe to show)."""
        return urlsplit(self.url).hostname or ""

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never be echoed back in a message: the client secret and id."""
        return (self.form["client_secret"], self.form["client_id"])


@dataclass(frozen=True, slots=True)
class ClientAppFlow:
    """`POST tokenUrl` as written, the scopes as written."""

    token_url: str
    scopes: tuple[str, ...]

    name = Flow.CLIENT_APP

    def url(self) -> str:
        """The URL the request is POSTed to."""
        return self.token_url

    def requested_scopes(self) -> tuple[str, ...]:
        """The scopes as sent."""
        return self.scopes


@dataclass(frozen=True, slots=True)
class AnonymousCustomerFlow:
    """`POST tokenUrl?user_type=customer&domain_hint=<tenant>`, prefixed scopes."""

    token_url: str
    tenant_id: str
    scopes: tuple[str, ...]
    scope_prefix: str

    name = Flow.ANONYMOUS_CUSTOMER

    def url(self) -> str:
        """The token URL with the customer query appended to any it already has."""
        parts = urlsplit(self.token_url)
        query = urlencode({"user_type": "customer", "domain_hint": self.tenant_id})
        joined = f"{parts.query}&{query}" if parts.query else query
        return urlunsplit(parts._replace(query=joined))

    def requested_scopes(self) -> tuple[str, ...]:
        """Each scope prefixed with `scopePrefix`, unless already an absolute URL."""
        return tuple(with_scope_prefix(self.scope_prefix, scope) for scope in self.scopes)


def flow_of(spec: TokenSpec) -> ClientAppFlow | AnonymousCustomerFlow:
    """The flow `spec` asks for."""
    if spec.flow is Flow.CLIENT_APP:
        return ClientAppFlow(spec.token_url, spec.scopes)
    return AnonymousCustomerFlow(
        spec.token_url, spec.tenant_id or "", spec.scopes, spec.scope_prefix
    )


def build_request(spec: TokenSpec, credentials: ClientCredentials) -> TokenRequest:
    """The request for `spec`'s flow, exactly as eGain documents it."""
    flow = flow_of(spec)
    scopes = flow.requested_scopes()
    return TokenRequest(
        url=flow.url(),
        flow=flow.name.value,
        scopes=scopes,
        form={
            "grant_type": GRANT_TYPE,
            "scope": " ".join(scopes),
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
        },
        credentials=credentials.origin,
        shared=spec.token_sharing is TokenSharing.SHARED,
    )
