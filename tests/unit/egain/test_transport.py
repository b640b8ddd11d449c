"""Sending token requests: the form on the wire, the allow-list, redirects, failures, limits."""

import asyncio
from dataclasses import replace
from urllib.parse import parse_qs

import httpx
import pytest

from egain_token_operator.decisions.reasons import (
    InvalidTokenResponseError,
    Reason,
    TokenEndpointUnavailableError,
    TokenError,
    TokenUrlNotAllowedError,
)
from egain_token_operator.egain.request import build_request
from tests.unit.egain.samples import CLIENT_APP, CREDS, SECRET, client
from tests.unit.samples import NOW


class TestClient:
    def test_posts_the_form_and_parses_the_token(self) -> None:
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, json={"access_token": "T", "expires_in": 60})

        async def go() -> None:
            egain = client(httpx.MockTransport(handler))
            token, at = await egain.fetch_token(build_request(CLIENT_APP, CREDS), namespace="team")
            await egain.aclose()
            assert token.access_token == "T"
            assert at == NOW

        asyncio.run(go())
        (request,) = seen
        assert request.method == "POST"
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        assert parse_qs(request.content.decode())["client_secret"] == [SECRET]

    @pytest.mark.parametrize("status", [400, 401, 403])
    def test_an_echoed_client_id_or_secret_never_reaches_a_message(self, status: int) -> None:
        def handler(request: httpx.Request) -> httpx.Response:
            echoed = f"client {CREDS.client_id} with secret {SECRET}"
            return httpx.Response(status, json={"error": echoed, "error_description": echoed})

        async def go() -> str:
            egain = client(httpx.MockTransport(handler))
            with pytest.raises(TokenError) as caught:
                await egain.fetch_token(build_request(CLIENT_APP, CREDS), namespace="team")
            await egain.aclose()
            return caught.value.message

        message = asyncio.run(go())
        assert CREDS.client_id not in message and SECRET not in message
        assert message.count("[redacted]") == 4

    def test_host_outside_the_allow_list_sends_nothing(self) -> None:
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, json={"access_token": "T"})

        async def go() -> None:
            egain = client(httpx.MockTransport(handler), hosts="login.example.com")
            with pytest.raises(TokenUrlNotAllowedError) as caught:
                await egain.fetch_token(build_request(CLIENT_APP, CREDS), namespace="team")
            await egain.aclose()
            assert caught.value.reason is Reason.TOKEN_URL_NOT_ALLOWED

        asyncio.run(go())
        assert seen == []

    def test_redirects_are_not_followed(self) -> None:
        seen: list[str] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(str(request.url))
            return httpx.Response(307, headers={"location": "https://evil.egain.cloud/steal"})

        async def go() -> None:
            egain = client(httpx.MockTransport(handler))
            with pytest.raises(InvalidTokenResponseError):
                await egain.fetch_token(build_request(CLIENT_APP, CREDS), namespace="team")
            await egain.aclose()

        asyncio.run(go())
        assert len(seen) == 1

    @pytest.mark.parametrize("exc", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])
    def test_transport_failures_are_unavailable(self, exc: Exception) -> None:
        def handler(request: httpx.Request) -> httpx.Response:
            raise exc

        async def go() -> None:
            egain = client(httpx.MockTransport(handler))
            with pytest.raises(TokenEndpointUnavailableError) as caught:
                await egain.fetch_token(build_request(CLIENT_APP, CREDS), namespace="team")
            await egain.aclose()
            assert "ai.egain.cloud" in caught.value.message

        asyncio.run(go())

    def test_concurrent_requests_are_limited_and_shared_among_namespaces(self) -> None:
        in_flight: dict[str, int] = {}
        peaks: list[dict[str, int]] = []

        async def go() -> None:
            gate = asyncio.Event()

            async def handler(request: httpx.Request) -> httpx.Response:
                namespace = parse_qs(request.content.decode())["client_id"][0]
                in_flight[namespace] = in_flight.get(namespace, 0) + 1
                peaks.append(dict(in_flight))
                await gate.wait()
                in_flight[namespace] -= 1
                return httpx.Response(200, json={"access_token": "T"})

            egain = client(httpx.MockTransport(handler), limit=4)

            def fetch(namespace: str) -> asyncio.Task[object]:
                # The client id tells the handler which namespace asked.
                request = build_request(CLIENT_APP, replace(CREDS, client_id=namespace))
                return asyncio.create_task(egain.fetch_token(request, namespace=namespace))

            hog = []
            for _ in range(10):
                hog.append(fetch("hog"))
                await asyncio.sleep(0)
            for _ in range(20):
                await asyncio.sleep(0)
            neighbour = fetch("neighbour")
            for _ in range(20):
                await asyncio.sleep(0)
            # The hog's 10 hang: it holds its share (3 of 4), the neighbour the 4th.
            assert in_flight == {"hog": 3, "neighbour": 1}
            gate.set()
            await asyncio.gather(*hog, neighbour)
            await egain.aclose()

        asyncio.run(go())
        assert max(sum(peak.values()) for peak in peaks) == 4
        assert max(peak.get("hog", 0) for peak in peaks) == 3
