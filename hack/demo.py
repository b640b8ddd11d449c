"""`make demo`: the operator keeping a short-lived eGain token fresh, on a local control plane.

Starts the local control plane and the eGain emulator, installs the CRD, runs
the operator, applies examples/client-app.yaml (pointed at the emulator, with
a short token lifetime), then shows the Secret appear and refresh. Ctrl-C
stops everything it started.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from testground import controlplane
from testground.emulator import EgainEmulator
from testground.tools import ensure_tools

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "egain-demo"
TENANT = "TMPRODB88619984"
EXAMPLE_URL = "https://ai.egain.cloud/system/auth/TMPRODB88619984-U/oauth2/token"


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def example_manifests(emulator: EgainEmulator, client_id: str, client_secret: str) -> str:
    """examples/client-app.yaml, in the demo namespace, pointed at the emulator."""
    text = (REPO / "examples" / "client-app.yaml").read_text()
    text = text.replace(EXAMPLE_URL, emulator.client_app_token_url(TENANT))
    documents = [d for d in yaml.safe_load_all(text) if d]
    for document in documents:
        document["metadata"]["namespace"] = NAMESPACE
        if document["kind"] == "Secret":
            document["stringData"] = {"client_id": client_id, "client_secret": client_secret}
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": documents})


def secret_expiry(plane: controlplane.ControlPlane, name: str) -> str | None:
    """The `expires_at` key of the token Secret (the token itself is never printed)."""
    result = plane.kubectl(
        "get", "secret", name, "-n", NAMESPACE, "-o", "jsonpath={.data.expires_at}", check=False
    )
    if result.returncode != 0 or not result.stdout:
        return None
    return base64.b64decode(result.stdout).decode()


def wait_for_expiry_change(
    plane: controlplane.ControlPlane, name: str, previous: str | None, timeout: float
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = secret_expiry(plane, name)
        if current and current != previous:
            return current
        time.sleep(0.5)
    raise SystemExit(f"no new token in {timeout:.0f}s; see the operator log above")


def run(args: argparse.Namespace, stack: list[Any]) -> None:
    say("Building (first run only) and starting the local control plane")
    ensure_tools()
    plane = controlplane.start(args.state_dir / "cluster")
    stack.append(lambda: controlplane.stop(args.state_dir / "cluster"))
    print(f"export KUBECONFIG={plane.kubeconfig}")

    say("Starting the eGain emulator (HTTPS, its own CA)")
    emulator = EgainEmulator(args.state_dir / "emulator")
    emulator.start()
    stack.append(emulator.stop)
    client_id, client_secret = str(uuid.uuid4()), secrets.token_urlsafe(32)
    emulator.register_client(
        client_id, client_secret, TENANT, ["knowledge.portalmgr.manage"], lifetime=args.lifetime
    )
    print(f"token endpoint: {emulator.client_app_token_url(TENANT)}")
    print(f"tokens live {args.lifetime}s, so a refresh comes every ~{args.lifetime * 2 // 3}s")

    say("Installing the EgainToken CRD")
    plane.kubectl(
        "apply", "--server-side", "-f", str(REPO / "crds" / "egaintokens.egain.cloud.yaml")
    )
    plane.kubectl("wait", "--for=condition=Established", "crd/egaintokens.egain.cloud")
    plane.kubectl("create", "namespace", NAMESPACE, check=False)

    say("Starting the operator")
    operator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "egain_token_operator",
            "run",
            "--namespace",
            NAMESPACE,
            "--allowed-token-hosts",
            f"localhost:{emulator.port}",
            "--ca-bundle",
            str(emulator.ca_file),
            "--metrics-address",
            "127.0.0.1:0",
            "--health-address",
            "127.0.0.1:0",
        ],
        env={**plane.env(), "PYTHONPATH": str(REPO / "operator")},
        start_new_session=True,
    )

    def stop_operator() -> None:
        os.killpg(operator.pid, signal.SIGTERM)
        operator.wait(timeout=20)

    stack.append(stop_operator)

    say("Applying examples/client-app.yaml (credentials Secret + EgainToken)")
    plane.kubectl("apply", "-f", "-", input=example_manifests(emulator, client_id, client_secret))
    plane.kubectl(
        "wait", "egt/knowledge-portal", "-n", NAMESPACE, "--for=condition=Ready", "--timeout=60s"
    )
    expiry = wait_for_expiry_change(plane, "knowledge-portal-token", None, 60)
    print(plane.kubectl("get", "egt", "-n", NAMESPACE).stdout)
    print(f"Secret knowledge-portal-token: expires_at={expiry}")
    print(plane.kubectl("get", "secret", "knowledge-portal-token", "-n", NAMESPACE).stdout)

    refreshes = 0
    while args.refreshes == 0 or refreshes < args.refreshes:
        say("Waiting for the operator to refresh the token before it expires")
        expiry = wait_for_expiry_change(plane, "knowledge-portal-token", expiry, args.lifetime * 2)
        refreshes += 1
        print(plane.kubectl("get", "egt", "-n", NAMESPACE).stdout)
        print(f"Secret knowledge-portal-token: new expires_at={expiry} (refresh {refreshes})")
        print(f"token requests so far: {len(emulator.requests(client_id))}")
        if args.refreshes == 0:
            print("(Ctrl-C to stop everything)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, default=REPO / ".testground" / "demo")
    parser.add_argument("--lifetime", type=int, default=30, help="token lifetime in seconds")
    parser.add_argument(
        "--refreshes",
        type=int,
        default=0,
        help="stop after this many refreshes (0: run until Ctrl-C)",
    )
    args = parser.parse_args()
    stack: list[Any] = []
    try:
        run(args, stack)
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
    finally:
        for undo in reversed(stack):
            undo()


if __name__ == "__main__":
    main()
