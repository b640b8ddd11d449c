"""How the operator and the command line reach the API server: its address,
credentials and proxy, and the namespace to default to.

The operator takes its Pod's service account, else the kubeconfig
(`load_api_client`); the command line takes the kubeconfig as kubectl does
(`load_user_api_client`). Either way the client's connections read the
environment once, here (`environment_proxy`).
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from kubernetes.aio import client, config

from egain_token_operator.kube.api import UnreachableError


async def load_api_client() -> tuple[client.ApiClient, str]:
    """An API client configured the usual way, and the namespace the operator runs in.

    In-cluster service account when running in a pod (and its namespace), else
    `KUBECONFIG`, else `~/.kube/config` (and its current context's namespace,
    else `default`, as kubectl takes it).
    """
    configuration = client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        # Configured before the client is made: it builds its TLS context from it.
        namespace = _load_incluster(configuration)
        return _api_client(configuration), namespace
    loader = await config.load_kube_config(client_configuration=configuration)
    namespace = (loader.current_context.get("context") or {}).get("namespace") or "default"
    return _api_client(configuration), str(namespace)


def _api_client(configuration: client.Configuration) -> client.ApiClient:
    """A client of `configuration` whose connections read the environment once, here.

    The official client's session trusts the environment, so aiohttp would
    look up the proxy variables and `~/.netrc` in a thread at every request:
    a tenth of the operator's CPU in a burst of new tokens. The proxy for the
    API server is the same at every request (a kubeconfig's `proxy-url` wins),
    and `.netrc` is not how the API server authenticates anyone.
    """
    configuration.client_session_kwargs = {"trust_env": False}
    if not configuration.proxy:
        configuration.proxy = environment_proxy(configuration.host)
    return client.ApiClient(configuration)


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for `url` (`HTTPS_PROXY`, `NO_PROXY`...), if any."""
    parts = urlsplit(url)
    proxy = urllib.request.getproxies_environment().get(parts.scheme)
    if not proxy or urllib.request.proxy_bypass(parts.netloc):
        return None
    return proxy


_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _kubeconfig_source(kubeconfig: str | None) -> str | None:
    """The kubeconfig file list to load, or None for the in-cluster service account."""
    path = kubeconfig or os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())
    found = any(Path(p).expanduser().exists() for p in path.split(os.pathsep) if p)
    if found:
        return path
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None
    raise UnreachableError(f"no kubeconfig found at {path}, and not running in a cluster")


def _load_incluster(configuration: client.Configuration) -> str:
    """Configure the Pod's service account; return its namespace."""
    config.load_incluster_config(client_configuration=configuration)
    return _SERVICE_ACCOUNT_NAMESPACE.read_text().strip()


async def load_user_api_client(
    kubeconfig: str | None = None, context: str | None = None
) -> tuple[client.ApiClient, str]:
    """An API client for a person at a terminal, and the namespace to default to.

    As kubectl does: `kubeconfig` if given, else `KUBECONFIG` (a list of files
    is merged), else `~/.kube/config`, with `context` or the current one and
    its namespace (else `default`); with none of those files, in a Pod, the
    service account and its namespace.
    """
    configuration = client.Configuration()
    source = _kubeconfig_source(kubeconfig)
    if source is None:
        # Configured before the client is made: it builds its TLS context from it.
        namespace = _load_incluster(configuration)
        return _api_client(configuration), namespace
    loader = await config.load_kube_config(
        config_file=source,
        context=context,
        client_configuration=configuration,
        persist_config=False,
    )
    namespace = (loader.current_context.get("context") or {}).get("namespace") or "default"
    return _api_client(configuration), str(namespace)
