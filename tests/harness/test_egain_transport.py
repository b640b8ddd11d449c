"""The operator's eGain client over real HTTPS: kept-alive connections, guarded as they open."""

from __future__ import annotations

import asyncio

from egain_token_operator.decisions.hosts import HostAllowList
from egain_token_operator.decisions.tokenspec import parse_spec
from egain_token_operator.egain.addresses import AddressGuard, resolve
from egain_token_operator.egain.request import (
    ClientCredentials,
    CredentialsOrigin,
    build_request,
)
from egain_token_operator.egain.transport import EgainClient
from testground.emulator import EgainEmulator
from tests.harness.conftest import READ, TENANT, Creds

ORIGIN = CredentialsOrigin("team", "egain-client", "uid", "1", "client_id", "client_secret")


def test_requests_share_a_connection_whose_addresses_were_checked_once(
    emulator: EgainEmulator, creds: Creds
) -> None:
    asked: list[str] = []

    async def counting(host: str, port: int) -> tuple[str, ...]:
        asked.append(host)
        return await resolve(host, port)

    spec = parse_spec(
        "t",
        {
            "tokenUrl": emulator.client_app_token_url(TENANT),
            "scopes": [READ],
            "credentialsSecretRef": {"name": "egain-client"},
        },
    )
    request = build_request(spec, ClientCredentials(creds.client_id, creds.client_secret, ORIGIN))

    async def three() -> list[str]:
        egain = EgainClient(
            allowed_hosts=HostAllowList.parse(f"localhost:{emulator.port}"),
            ca_bundle=emulator.ca_file,
            timeout=10.0,
            max_concurrent_requests=4,
            default_lifetime=3600.0,
            guard=AddressGuard(resolver=counting),
        )
        try:
            return [
                (await egain.fetch_token(request, namespace="team"))[0].access_token
                for _ in range(3)
            ]
        finally:
            await egain.aclose()

    tokens = asyncio.run(three())
    assert len(set(tokens)) == 3
    assert all(emulator.is_issued_token(token, client_id=creds.client_id) for token in tokens)
    # One connection opened (its addresses resolved and checked), then kept alive:
    # an idle connection's socket is asked whether the server closed it, and is reused.
    assert asked == ["localhost"]
