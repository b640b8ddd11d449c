"""`HostAllowList.matching`: which entry allows a URL, the one rule behind `allows`."""

import pytest

from egain_token_operator.decisions.hosts import HostAllowList, HostPattern

HOSTS = HostAllowList.parse("ai.egain.cloud, *.egain.cloud, login.example.com:8443")


@pytest.mark.parametrize(
    ("url", "entry"),
    [
        ("https://ai.egain.cloud/token", "ai.egain.cloud"),
        ("https://a1.egain.cloud/token", "*.egain.cloud"),
        ("https://deep.a2.EGAIN.cloud./token", "*.egain.cloud"),
        ("https://login.example.com:8443/token", "login.example.com:8443"),
    ],
)
def test_the_first_entry_that_allows_the_url(url: str, entry: str) -> None:
    assert HOSTS.matching(url) == HostPattern.parse(entry)
    assert str(HOSTS.matching(url)) == entry
    assert HOSTS.allows(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://ai.egain.cloud/token",
        "https://user@ai.egain.cloud/token",
        "https://egain.cloud/token",
        "https://login.example.com/token",
        "https://ai.egain.cloud:8443/token",
        "https://ai.egain.cloud:bad/token",
        "not a url",
    ],
)
def test_none_when_no_entry_allows_the_url(url: str) -> None:
    assert HOSTS.matching(url) is None
    assert not HOSTS.allows(url)
    assert HOSTS.refusal(url) is not None
