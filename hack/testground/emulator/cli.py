"""The command line: `python -m testground.emulator --port 8443 --state-dir DIR ...`.

It registers the clients given by `--client` flags and `--clients-file`, prints
the URLs and the CA file as `key=value` lines (the endpoint is also written to
`DIR/endpoint.json`), and serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from testground.emulator.endpoint import EgainEmulator


def _parse_client_spec(spec: str) -> dict[str, Any]:
    """`ID:SECRET:TENANT:SCOPE1,SCOPE2[:LIFETIME[:FLOW1,FLOW2]]` → register_client kwargs."""
    parts = spec.split(":")
    if not 4 <= len(parts) <= 6:
        # Do not echo the spec: it holds a secret.
        raise argparse.ArgumentTypeError("expected ID:SECRET:TENANT:SCOPES[:LIFETIME[:FLOWS]]")
    client: dict[str, Any] = {
        "client_id": parts[0],
        "client_secret": parts[1],
        "tenant": parts[2],
        "scopes": [s for s in parts[3].split(",") if s],
    }
    if len(parts) > 4 and parts[4]:
        client["lifetime"] = int(parts[4])
    if len(parts) > 5 and parts[5]:
        client["flows"] = parts[5].split(",")
    return client


def _load_clients_file(path: Path) -> list[dict[str, Any]]:
    """Clients from YAML or JSON: a list, or a mapping with a `clients` list."""
    loaded = yaml.safe_load(path.read_text())
    clients = loaded.get("clients", []) if isinstance(loaded, dict) else loaded
    if not isinstance(clients, list):
        raise TypeError(f"{path}: expected a list of clients")
    return [dict(c) for c in clients]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m testground.emulator", description="eGain token endpoint emulator"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument(
        "--state-dir", type=Path, required=True, help="CA and certificate live here"
    )
    parser.add_argument("--url-host", default="localhost", help="host name in the printed URLs")
    parser.add_argument("--dns-name", action="append", default=[], help="extra certificate name")
    parser.add_argument(
        "--client",
        action="append",
        default=[],
        type=_parse_client_spec,
        metavar="ID:SECRET:TENANT:SCOPES[:LIFETIME[:FLOWS]]",
        help="register a client (repeatable; SCOPES and FLOWS comma-separated)",
    )
    parser.add_argument("--clients-file", type=Path, help="YAML/JSON list of clients")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )

    emulator = EgainEmulator(
        args.state_dir, args.host, args.port, url_host=args.url_host, dns_names=args.dns_name
    )
    clients: list[dict[str, Any]] = list(args.client)
    if args.clients_file:
        clients += _load_clients_file(args.clients_file)
    for client in clients:
        emulator.register_client(**client)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with emulator:
        print(f"base_url={emulator.base_url}")
        print(f"ca_file={emulator.ca_file}")
        print(f"admin_url={emulator.admin_url}")
        for tenant in sorted({c["tenant"] for c in clients}):
            print(f"client_app_token_url={emulator.client_app_token_url(tenant)}")
        print(f"anonymous_token_url={emulator.anonymous_token_url()}", flush=True)
        stop.wait()
    return 0
