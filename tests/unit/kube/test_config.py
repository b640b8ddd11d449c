"""Where the kubeconfig is found, as kubectl finds it; and the API client reads the
proxy from the environment once, not at every request."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from kubernetes.aio import client

from egain_token_operator.kube import config as kube_config
from egain_token_operator.kube.api import KubeError

SERVER = "https://api.cluster.example:6443"


def _clear(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)


def test_no_proxy_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear(monkeypatch)
    assert kube_config.environment_proxy(SERVER) is None


def test_the_proxy_for_the_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://other.example:3128")
    assert kube_config.environment_proxy(SERVER) == "http://proxy.example:3128"


@pytest.mark.parametrize("no_proxy", [".example", "api.cluster.example", "*"])
def test_no_proxy_bypasses_it(monkeypatch: pytest.MonkeyPatch, no_proxy: str) -> None:
    _clear(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    assert kube_config.environment_proxy(SERVER) is None


def _client_of(configuration: client.Configuration) -> tuple[bool, str | None]:
    """Whether the session `kube_config._api_client` makes trusts the environment, and its proxy."""

    async def inspect() -> tuple[bool, str | None]:
        api_client = kube_config._api_client(configuration)
        try:
            session = api_client.rest_client._create_pool_manager()
            trusted = bool(session.trust_env)
            await session.close()
            return trusted, api_client.rest_client.proxy
        finally:
            await api_client.close()

    return asyncio.run(inspect())


def test_the_session_does_not_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert _client_of(client.Configuration(host=SERVER)) == (False, "http://proxy.example:3128")


def test_a_kubeconfig_proxy_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    configuration = client.Configuration(host=SERVER)
    configuration.proxy = "http://kubeconfig.example:8080"
    assert _client_of(configuration) == (False, "http://kubeconfig.example:8080")


def test_kubeconfig_as_kubectl_finds_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    present = tmp_path / "config"
    present.write_text("{}")
    missing = tmp_path / "missing"
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", f"{missing}:{present}")
    assert kube_config._kubeconfig_source(None) == f"{missing}:{present}"
    assert kube_config._kubeconfig_source(str(present)) == str(present)
    monkeypatch.delenv("KUBECONFIG")
    with pytest.raises(KubeError, match="no kubeconfig found"):
        kube_config._kubeconfig_source(None)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert kube_config._kubeconfig_source(None) is None  # in a Pod: its service account
    with pytest.raises(KubeError, match="no kubeconfig found"):
        kube_config._kubeconfig_source(str(missing))  # a file named explicitly must exist
