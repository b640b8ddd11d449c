"""The address guard: no token request to link-local addresses or the API server."""

import asyncio
import contextlib
import ipaddress
from collections.abc import Iterable, Iterator, Mapping

import httpcore
import httpx
import pytest
from kubernetes.aio import client

from egain_token_operator.decisions.hosts import HostAllowList
from egain_token_operator.decisions.reasons import (
    Reason,
    TokenEndpointUnavailableError,
    TokenUrlNotAllowedError,
)
from egain_token_operator.decisions.tokenspec import parse_spec
from egain_token_operator.egain.addresses import (
    AddressGuard,
    GuardedNetworkBackend,
    refusal,
    resolve,
)
from egain_token_operator.egain.request import build_request
from egain_token_operator.egain.transport import EgainClient
from egain_token_operator.kube.adapter import Kube
from tests.unit.egain.samples import CREDS, SECRET

API_SERVER = ("10.96.0.1", 443)


def resolver(table: Mapping[str, Iterable[str]]) -> "FakeResolver":
    return FakeResolver({host: iter([tuple(answer)]) for host, answer in table.items()})


class FakeResolver:
    """Answers from a table, each host's answers in turn, the last one repeated;
    an address answers itself, as getaddrinfo does."""

    def __init__(self, answers: dict[str, Iterator[tuple[str, ...]]]) -> None:
        self._answers = answers
        self._last: dict[str, tuple[str, ...]] = {}
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> tuple[str, ...]:
        self.asked.append(host)
        with contextlib.suppress(ValueError):
            return (str(ipaddress.ip_address(host)),)
        if host not in self._answers:
            raise OSError(f"unknown host {host}")
        self._last[host] = next(self._answers[host], self._last.get(host, ()))
        return self._last[host]


@pytest.mark.parametrize(
    ("address", "port", "why"),
    [
        ("169.254.169.254", 443, "the cloud instance metadata address"),
        ("::ffff:169.254.169.254", 443, "the cloud instance metadata address"),
        ("fd00:ec2::254", 443, "the cloud instance metadata address"),
        ("169.254.10.20", 443, "a link-local address"),
        ("::ffff:169.254.0.1", 8443, "a link-local address"),
        ("fe80::1", 443, "a link-local address"),
        ("fe80::1%eth0", 443, "a link-local address"),
        ("febf::1", 443, "a link-local address"),
        ("0.0.0.0", 443, "an unspecified address (this host)"),  # noqa: S104
        ("::", 443, "an unspecified address (this host)"),
        ("10.96.0.1", 443, "the Kubernetes API server's address"),
        ("::ffff:10.96.0.1", 443, "the Kubernetes API server's address"),
        ("10.96.0.1", 8443, None),
        ("10.96.0.2", 443, None),
        ("169.255.0.1", 443, None),
        ("fec0::1", 443, None),
        ("127.0.0.1", 443, None),
        ("203.0.113.7", 443, None),
    ],
)
def test_refusal(address: str, port: int, why: str | None) -> None:
    assert refusal(address, port, [API_SERVER]) == why


def guard(
    table: Mapping[str, Iterable[str]], api_server: tuple[str, int] = API_SERVER
) -> AddressGuard:
    return AddressGuard(api_server=api_server, resolver=resolver(table))


class TestAddressGuard:
    def test_allowed_addresses_are_returned(self) -> None:
        found = asyncio.run(
            guard({"ai.egain.cloud": ["203.0.113.7"]}).addresses("ai.egain.cloud", 443)
        )
        assert found == ("203.0.113.7",)

    def test_a_name_with_any_forbidden_address_is_refused(self) -> None:
        checked = guard({"mixed.egain.cloud": ["203.0.113.7", "169.254.169.254"]})
        with pytest.raises(TokenUrlNotAllowedError) as caught:
            asyncio.run(checked.addresses("mixed.egain.cloud", 443))
        assert caught.value.reason is Reason.TOKEN_URL_NOT_ALLOWED
        assert caught.value.message == (
            "mixed.egain.cloud (169.254.169.254) is the cloud instance metadata address: "
            "token requests never go there; no request was sent"
        )

    def test_the_api_server_is_known_by_what_its_name_resolves_to(self) -> None:
        checked = guard(
            {"kubernetes.default.svc": ["10.96.0.1"], "api.egain.cloud": ["10.96.0.1"]},
            api_server=("kubernetes.default.svc", 443),
        )
        with pytest.raises(TokenUrlNotAllowedError, match="API server"):
            asyncio.run(checked.addresses("api.egain.cloud", 443))
        # The same address on another port is another service.
        assert asyncio.run(checked.addresses("api.egain.cloud", 8443)) == ("10.96.0.1",)

    def test_an_address_literal_is_named_once(self) -> None:
        with pytest.raises(TokenUrlNotAllowedError) as caught:
            asyncio.run(guard({"fe80::1": ["fe80::1"]}).addresses("fe80::1", 443))
        assert caught.value.message.startswith("fe80::1 is a link-local address")

    def test_check_lets_an_unresolvable_name_through_for_the_proxy(self) -> None:
        asyncio.run(guard({}).check("https://only-the-proxy-knows.egain.cloud/token"))

    def test_check_refuses_by_url(self) -> None:
        checked = guard({"metadata.egain.cloud": ["169.254.169.254"]})
        with pytest.raises(TokenUrlNotAllowedError):
            asyncio.run(checked.check("https://metadata.egain.cloud/token"))


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Records connections; refuses those to `refused` addresses."""

    def __init__(self, refused: Iterable[str] = ()) -> None:
        self.connected: list[tuple[str, int]] = []
        self._refused = set(refused)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connected.append((host, port))
        if host in self._refused:
            raise httpcore.ConnectError("refused")
        return httpcore.AsyncNetworkStream()


class TestGuardedNetworkBackend:
    def test_connects_to_the_checked_addresses_in_turn(self) -> None:
        inner = RecordingBackend(refused=["203.0.113.7"])
        backend = GuardedNetworkBackend(
            guard({"ai.egain.cloud": ["203.0.113.7", "203.0.113.8"]}), inner
        )
        asyncio.run(backend.connect_tcp("ai.egain.cloud", 443))
        assert inner.connected == [("203.0.113.7", 443), ("203.0.113.8", 443)]

    def test_a_forbidden_address_is_never_connected_to(self) -> None:
        inner = RecordingBackend()
        backend = GuardedNetworkBackend(guard({"x.egain.cloud": ["169.254.169.254"]}), inner)
        with pytest.raises(TokenUrlNotAllowedError):
            asyncio.run(backend.connect_tcp("x.egain.cloud", 443))
        assert inner.connected == []

    def test_an_unresolvable_name_is_a_connect_error(self) -> None:
        backend = GuardedNetworkBackend(guard({}), RecordingBackend())
        with pytest.raises(httpcore.ConnectError, match="cannot resolve"):
            asyncio.run(backend.connect_tcp("nowhere.egain.cloud", 443))


def fetch(egain: EgainClient, url: str) -> None:
    spec = parse_spec(
        "t", {"tokenUrl": url, "scopes": ["s"], "credentialsSecretRef": {"name": "c"}}
    )

    async def go() -> None:
        try:
            await egain.fetch_token(build_request(spec, CREDS), namespace="team")
        finally:
            await egain.aclose()

    asyncio.run(go())


def egain_client(
    hosts: str, checked: AddressGuard, transport: httpx.AsyncBaseTransport | None = None
) -> EgainClient:
    return EgainClient(
        allowed_hosts=HostAllowList.parse(hosts),
        ca_bundle=None,
        timeout=5.0,
        max_concurrent_requests=4,
        default_lifetime=3600.0,
        guard=checked,
        transport=transport,
    )


class TestEgainClient:
    @pytest.mark.parametrize(
        ("hosts", "url", "table"),
        [
            # Wildcards and addresses in the allow-list do not open the way.
            ("*.254", "https://169.254.169.254/token", {}),
            ("169.254.169.254", "https://169.254.169.254/latest/token", {}),
            ("[fe80::1]", "https://[fe80::1]/token", {}),
            ("10.96.0.1", "https://10.96.0.1/system/auth/T-U/oauth2/token", {}),
            (
                "*.egain.cloud",
                "https://metadata.egain.cloud/token",
                {"metadata.egain.cloud": ["169.254.169.254"]},
            ),
            (
                "*.egain.cloud",
                "https://kube.egain.cloud/token",
                {"kube.egain.cloud": ["10.96.0.1"]},
            ),
        ],
    )
    def test_forbidden_destinations_get_nothing_whatever_the_allow_list(
        self, hosts: str, url: str, table: dict[str, list[str]]
    ) -> None:
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, json={"access_token": "T"})

        checked = guard(table)
        with pytest.raises(TokenUrlNotAllowedError) as caught:
            fetch(egain_client(hosts, checked, httpx.MockTransport(handler)), url)
        assert seen == []
        assert "no request was sent" in caught.value.message
        assert SECRET not in caught.value.message

    def test_a_direct_request_is_checked_as_its_connection_opens(self) -> None:
        # Resolved once, where the connection is opened, and connected only to the
        # addresses just checked: a name that answers differently the second time
        # (DNS rebinding) has no second time.
        rebinding = FakeResolver(
            {"rebind.egain.cloud": iter([("169.254.169.254",), ("203.0.113.7",)])}
        )
        checked = AddressGuard(api_server=API_SERVER, resolver=rebinding)
        with pytest.raises(TokenUrlNotAllowedError, match="metadata"):
            fetch(egain_client("*.egain.cloud", checked), "https://rebind.egain.cloud/token")
        assert rebinding.asked.count("rebind.egain.cloud") == 1

    def test_a_request_through_a_proxy_is_checked_before_it_is_sent(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The proxy resolves the name itself: the refusal comes before anything
        # reaches it (nothing listens at the proxy's address).
        monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        checked = guard({"metadata.egain.cloud": ["169.254.169.254"]})
        with pytest.raises(TokenUrlNotAllowedError, match="no request was sent"):
            fetch(egain_client("*.egain.cloud", checked), "https://metadata.egain.cloud/token")

    def test_a_name_that_never_resolves_times_out(self) -> None:
        async def stuck(host: str, port: int) -> tuple[str, ...]:
            await asyncio.Event().wait()
            return ()

        client = EgainClient(
            allowed_hosts=HostAllowList.parse("*.egain.cloud"),
            ca_bundle=None,
            timeout=0.05,
            max_concurrent_requests=4,
            default_lifetime=3600.0,
            guard=AddressGuard(resolver=stuck),
        )
        with pytest.raises(TokenEndpointUnavailableError, match="timed out talking to slow"):
            fetch(client, "https://slow.egain.cloud/token")


@pytest.mark.parametrize(
    ("host", "server"),
    [
        ("https://10.96.0.1:443", ("10.96.0.1", 443)),
        ("https://kubernetes.default.svc", ("kubernetes.default.svc", 443)),
        ("https://[fd00::1]:6443", ("fd00::1", 6443)),
    ],
)
def test_the_api_server_address_is_the_one_the_kube_client_uses(
    host: str, server: tuple[str, int]
) -> None:
    configuration = client.Configuration()
    configuration.host = host
    assert Kube(client.ApiClient(configuration)).server == server


def test_resolve_answers_an_address_itself() -> None:
    assert asyncio.run(resolve("fe80::1", 443)) == ("fe80::1",)
    assert asyncio.run(resolve("169.254.169.254", 443)) == ("169.254.169.254",)
