"""Specs, credentials, a token and a client shared by the eGain wire tests."""

import httpx

from egain_token_operator.decisions.hosts import HostAllowList
from egain_token_operator.decisions.tokenspec import parse_spec
from egain_token_operator.egain.addresses import AddressGuard
from egain_token_operator.egain.request import ClientCredentials, CredentialsOrigin
from egain_token_operator.egain.transport import EgainClient
from tests.unit.samples import NOW

SECRET = "hh2Y0UE8FmaFBBawzMUua1OB8Ks4QWHNUyhDyZj1X7c"
# Where CREDS were read: the Secret `team-a/egain-client` at resourceVersion 7.
ORIGIN = CredentialsOrigin(
    "team-a",
    "egain-client",
    "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
    "7",
    "client_id",
    "client_secret",
)
CREDS = ClientCredentials("b4b2c1d9-4c19-4e8a-8e7a-9a0b1c2d3e4f", SECRET, ORIGIN)
CLIENT_APP = parse_spec(
    "t",
    {
        "tokenUrl": "https://ai.egain.cloud/system/auth/TMPRODB88619984-U/oauth2/token",
        "scopes": ["knowledge.portalmgr.manage", "core.aiservices.read"],
        "credentialsSecretRef": {"name": "egain-client"},
    },
)
ANONYMOUS = parse_spec(
    "t",
    {
        "flow": "AnonymousCustomer",
        "tenantId": "TMPRODB88619984",
        "scopes": [
            "core.aiservices.read",
            "https://api.ai.egain.cloud/auth/core.aiservices.manage",
        ],
        "credentialsSecretRef": {"name": "egain-client"},
    },
)


# A token as eGain would issue it (tests add hostile parts to it).
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


async def resolves_publicly(host: str, port: int) -> tuple[str, ...]:
    """A resolver for the unit tests: every name at a public documentation address."""
    return ("203.0.113.7",)


def client(
    handler: httpx.MockTransport, hosts: str = "*.egain.cloud", limit: int = 16
) -> EgainClient:
    return EgainClient(
        allowed_hosts=HostAllowList.parse(hosts),
        ca_bundle=None,
        timeout=5.0,
        max_concurrent_requests=limit,
        default_lifetime=3600.0,
        guard=AddressGuard(resolver=resolves_publicly),
        transport=handler,
        clock=lambda: NOW,
    )
