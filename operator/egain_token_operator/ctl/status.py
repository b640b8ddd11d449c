"""`status [-n NS | -A] [NAME | KIND/NAME]`: the EgainTokens, one of them, or a client
and the tokens that use it, as the operator recorded them. Exit 0 when
everything shown is Ready, 1 otherwise."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime

from egain_token_operator.ctl import clientviews, views
from egain_token_operator.ctl.command import (
    EXIT_NOT_READY,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    connect,
    managed_secret_name,
    read_client,
    read_token,
)
from egain_token_operator.ctl.readout import is_ready
from egain_token_operator.decisions.clientref import client_argument, uses
from egain_token_operator.decisions.clients import ClientKey, ClientRef
from egain_token_operator.kube.api import KubeApi

# The other spellings of `status egaintoken/NAME`.
TOKEN_KIND_NAMES = ("egaintoken", "egaintokens", "egt")


async def status(
    args: argparse.Namespace, out: Callable[[str], None], now: Callable[[], datetime]
) -> int:
    """`status [-n NS | -A] [NAME | KIND/NAME]`."""
    if args.name is not None and args.all_namespaces:
        raise CommandError("NAME cannot be combined with --all-namespaces", EXIT_USAGE)
    client: ClientRef | None = None
    name = args.name
    if name is not None and "/" in name:
        kind_text, _, rest = name.partition("/")
        if kind_text.lower() in TOKEN_KIND_NAMES:
            name = rest
        else:
            try:
                client = client_argument(name)
            except ValueError as exc:
                raise CommandError(str(exc), EXIT_USAGE) from None
    kube, namespace = await connect(args)
    try:
        if client is not None:
            return await _client_status(kube, client.key(namespace), args.namespace, out, now())
        if name is None:
            tokens = await kube.list_tokens(None if args.all_namespaces else namespace)
            if not tokens:
                where = "any namespace" if args.all_namespaces else f"namespace {namespace}"
                out(f"No EgainTokens found in {where}.")
                return EXIT_OK
            out(views.status_table(tokens, now(), with_namespace=args.all_namespaces))
            return EXIT_OK if all(is_ready(token) for token in tokens) else EXIT_NOT_READY
        token = await read_token(kube, namespace, name)
        secret_name = managed_secret_name(token)
        secret = await kube.read_secret(namespace, secret_name)
        events = await kube.list_events(namespace, token["metadata"]["uid"])
        out(views.describe_token(token, secret_name, secret, events, now()))
        return EXIT_OK if is_ready(token) else EXIT_NOT_READY
    finally:
        await kube.close()


async def _client_status(
    kube: KubeApi,
    ref: ClientKey,
    namespace_given: str | None,
    out: Callable[[str], None],
    now: datetime,
) -> int:
    """`status egc/NAME | cegc/NAME`: the client and the EgainTokens that use it, of
    its namespace (EgainClient), of every namespace or of the one `-n` names
    (ClusterEgainClient)."""
    client = await read_client(kube, ref)
    tokens_namespace = ref.namespace or namespace_given
    tokens = [t for t in await kube.list_tokens(tokens_namespace) if uses(t, ref)]
    out(clientviews.describe_client(client, tokens, tokens_namespace, now))
    ready = is_ready(client) and all(is_ready(token) for token in tokens)
    return EXIT_OK if ready else EXIT_NOT_READY
