"""The request histogram is labelled by the allow-list entry a token URL matched.

A tenant may point `tokenUrl` at any host an entry allows; labelling by that
host would add series for every host it tries. These tests drive the real
`EgainClient` and read what it recorded.
"""

import asyncio
import contextlib
from collections.abc import Callable

import httpx

from egain_token_operator.decisions.reasons import TokenEndpointUnavailableError
from egain_token_operator.decisions.tokenspec import parse_spec
from egain_token_operator.egain.request import build_request
from egain_token_operator.metrics import REQUEST_DURATION
from tests.unit.egain.samples import CREDS, client

LabelSet = tuple[str, str, str]  # host, flow, status_code
Handler = Callable[[httpx.Request], httpx.Response]


def counts() -> dict[LabelSet, float]:
    """Requests counted so far, by label set."""
    return {
        (sample.labels["host"], sample.labels["flow"], sample.labels["status_code"]): sample.value
        for family in REQUEST_DURATION.collect()
        for sample in family.samples
        if sample.name.endswith("_count")
    }


def touched(before: dict[LabelSet, float]) -> dict[LabelSet, float]:
    """The label sets whose count grew since `before`, with how much each grew."""
    return {
        labels: value - before.get(labels, 0.0)
        for labels, value in counts().items()
        if value != before.get(labels, 0.0)
    }


def issue(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"access_token": "T", "expires_in": 60})


def send_to(urls: list[str], hosts: str, handler: Handler = issue) -> None:
    """Request a token from each of `urls` through a client allowing `hosts`."""

    async def go() -> None:
        egain = client(httpx.MockTransport(handler), hosts=hosts)
        for url in urls:
            spec = parse_spec(
                "t",
                {
                    "tokenUrl": url,
                    "scopes": ["core.aiservices.read"],
                    "credentialsSecretRef": {"name": "egain-client"},
                },
            )
            with contextlib.suppress(TokenEndpointUnavailableError):
                await egain.fetch_token(build_request(spec, CREDS), namespace="team")
        await egain.aclose()

    asyncio.run(go())


TENANT_HOSTS = [f"a{i}.egain.cloud" for i in range(1, 26)]


def test_many_hosts_under_one_entry_make_one_label_value() -> None:
    before = counts()
    send_to([f"https://{host}/oauth2/token" for host in TENANT_HOSTS], "*.egain.cloud")
    assert touched(before) == {("*.egain.cloud", "ClientApp", "200"): 25.0}


def test_requests_that_get_no_answer_are_labelled_by_the_entry_too() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    before = counts()
    send_to([f"https://{host}/oauth2/token" for host in TENANT_HOSTS], "*.egain.cloud", refuse)
    assert touched(before) == {("*.egain.cloud", "ClientApp", "error"): 25.0}


def test_two_entries_make_two_label_values() -> None:
    before = counts()
    send_to(
        [f"https://{host}/oauth2/token" for host in TENANT_HOSTS[:3]]
        + ["https://login.example.com:8443/oauth2/token"] * 2,
        "*.egain.cloud,login.example.com:8443",
    )
    assert touched(before) == {
        ("*.egain.cloud", "ClientApp", "200"): 3.0,
        ("login.example.com:8443", "ClientApp", "200"): 2.0,
    }


def test_the_label_never_holds_a_tenants_host() -> None:
    send_to([f"https://{host}/oauth2/token" for host in TENANT_HOSTS], "*.egain.cloud")
    send_to(["https://ai.egain.cloud/oauth2/token"], "ai.egain.cloud,*.egain.cloud")
    labelled = {host for host, _, _ in counts()}
    assert labelled.isdisjoint(TENANT_HOSTS)
    # An entry naming one host exactly is the operator's value, and is kept.
    assert "ai.egain.cloud" in labelled
