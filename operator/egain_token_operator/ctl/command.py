"""What every command of the command line shares: its exit codes, the error that
ends it, the connection through the user's kubeconfig, and the reads that end
a command when the object is missing."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from egain_token_operator.decisions.clients import ClientKey
from egain_token_operator.decisions.tokenspec import declared_secret_name
from egain_token_operator.kube.adapter import Kube
from egain_token_operator.kube.api import KubeApi, KubeError
from egain_token_operator.kube.config import load_user_api_client

EXIT_OK = 0
EXIT_NOT_READY = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_TIMEOUT = 4


class CommandError(Exception):
    """Ends a command with `exit_code`; the message is for stderr."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


async def connect(args: argparse.Namespace) -> tuple[Kube, str]:
    """The API server as the user's kubeconfig reaches it (`--kubeconfig`,
    `--context`), and the namespace to work in (`-n`, else the context's)."""
    try:
        api_client, default_namespace = await load_user_api_client(args.kubeconfig, args.context)
    except KubeError as exc:
        raise CommandError(exc.message, EXIT_NOT_FOUND) from None
    except Exception as exc:  # the kubeconfig loader raises many kinds
        raise CommandError(f"cannot load the kubeconfig: {exc}", EXIT_NOT_FOUND) from None
    return Kube(api_client), args.namespace or default_namespace


async def read_token(kube: KubeApi, namespace: str, name: str) -> dict[str, Any]:
    """The EgainToken `namespace/name`; `CommandError` (not found) when there is none."""
    token = await kube.read_token(namespace, name)
    if token is None:
        raise CommandError(
            f'EgainToken "{name}" not found in namespace {namespace}', EXIT_NOT_FOUND
        )
    return token


async def read_client(kube: KubeApi, ref: ClientKey) -> dict[str, Any]:
    """The EgainClient or ClusterEgainClient `ref`; `CommandError` (not found) when
    there is none."""
    client = await kube.read_client(ref)
    if client is None:
        where = f" in namespace {ref.namespace}" if ref.namespace else ""
        raise CommandError(f'{ref.kind.value} "{ref.name}" not found{where}', EXIT_NOT_FOUND)
    return client


def managed_secret_name(token: Mapping[str, Any]) -> str:
    """The managed Secret's name: as the status says, else as the spec says."""
    recorded = (token.get("status") or {}).get("secretName")
    if isinstance(recorded, str) and recorded:
        return recorded
    name = token["metadata"]["name"]
    declared = declared_secret_name(name, token.get("spec") or {})
    if declared is None:
        raise CommandError(f"EgainToken {name}: spec.secretName must be a string", EXIT_NOT_READY)
    return declared
