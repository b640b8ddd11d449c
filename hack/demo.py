"""`make demo`: the operator, as a Pod from its image, keeping a short-lived eGain token fresh.

Builds (first run only) and starts the local single-node cluster with the
operator image, starts the eGain emulator where Pods reach it, installs the
Helm chart with that image, applies examples/client-app.yaml (pointed at the
emulator, with a short token lifetime) and a consumer Pod that mounts the
token's Secret and prints its expiry, then shows the token refresh in the
Secret and in the Pod's file. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from testground import controlplane, incluster
from testground.emulator import EgainEmulator

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "egain-demo"
OPERATOR_NAMESPACE = "egain-token-operator"
TENANT = "TMPRODB88619984"
EXAMPLE_URL = "https://ai.egain.cloud/system/auth/TMPRODB88619984-U/oauth2/token"
SECRET = "knowledge-portal-token"
# The kubelet of the local node syncs Pods every 10 s: a 20 s allowance covers
# the delivery of a new token to the consumer's file.
PROPAGATION_ALLOWANCE = 20
CONSUMER_SCRIPT = """
while true; do
  echo "$(date -u +%H:%M:%S) the token in my file expires at $(cat /var/run/egain/expires_at)"
  sleep 2
done
"""


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


def secret_expiry(plane: controlplane.ControlPlane) -> str | None:
    """The `expires_at` key of the token Secret (the token itself is never printed)."""
    result = plane.kubectl(
        "get", "secret", SECRET, "-n", NAMESPACE, "-o", "jsonpath={.data.expires_at}", check=False
    )
    if result.returncode != 0 or not result.stdout:
        return None
    return base64.b64decode(result.stdout).decode()


def consumer_expiry(plane: controlplane.ControlPlane) -> str | None:
    """The expiry the consumer Pod last printed from its file."""
    logs = plane.kubectl("logs", "consumer", "-n", NAMESPACE, "--tail=1", check=False).stdout
    return logs.split()[-1] if "expires at" in logs else None


def wait_for_change(read: Any, previous: str | None, timeout: float, what: str) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = read()
        if current and current != previous:
            return str(current)
        time.sleep(0.5)
    raise SystemExit(f"{what} did not change in {timeout:.0f}s; see `kubectl logs` of the operator")


def run(args: argparse.Namespace, stack: list[Any]) -> None:
    say("Building (first run only) and starting the local cluster: control plane and a node")
    plane = controlplane.start(args.state_dir / "cluster")
    stack.append(lambda: controlplane.stop(args.state_dir / "cluster"))
    print(f"export KUBECONFIG={plane.kubeconfig}")
    print(f"operator image: {plane.images.operator.reference}")

    say("Starting the eGain emulator (HTTPS, its own CA) where Pods reach it")
    emulator = EgainEmulator(
        args.state_dir / "emulator", host=plane.gateway, url_host=plane.gateway
    )
    emulator.start()
    stack.append(emulator.stop)
    client_id, client_secret = str(uuid.uuid4()), secrets.token_urlsafe(32)
    emulator.register_client(
        client_id, client_secret, TENANT, ["knowledge.portalmgr.manage"], lifetime=args.lifetime
    )
    print(f"token endpoint: {emulator.client_app_token_url(TENANT)}")
    print(f"tokens live {args.lifetime}s")

    say("helm install: the operator runs as a Pod from its image")
    plane.kubectl("create", "namespace", NAMESPACE, check=False)
    values = {"watchNamespaces": [NAMESPACE], "propagationAllowance": PROPAGATION_ALLOWANCE}
    incluster.install_operator(plane, emulator, "egain-token-operator", OPERATOR_NAMESPACE, values)
    print(plane.kubectl("get", "pods", "-n", OPERATOR_NAMESPACE, "-o", "wide").stdout)

    say("Applying examples/client-app.yaml (credentials Secret + EgainToken)")
    plane.kubectl("apply", "-f", "-", input=example_manifests(emulator, client_id, client_secret))
    plane.kubectl(
        "wait", "egt/knowledge-portal", "-n", NAMESPACE, "--for=condition=Ready", "--timeout=60s"
    )
    expiry = wait_for_change(lambda: secret_expiry(plane), None, 60, "the Secret")
    print(plane.kubectl("get", "egt", "-n", NAMESPACE).stdout)
    print(f"Secret {SECRET}: expires_at={expiry}")

    say("Starting a consumer Pod that mounts the Secret and prints the expiry it reads")
    incluster.apply(
        plane, incluster.consumer_pod(plane, "consumer", NAMESPACE, CONSUMER_SCRIPT, SECRET)
    )
    plane.kubectl("wait", "pod/consumer", "-n", NAMESPACE, "--for=condition=Ready")
    seen = wait_for_change(lambda: consumer_expiry(plane), None, 60, "the consumer's output")
    print(f"consumer Pod reads: expires at {seen}")

    refreshes = 0
    while args.refreshes == 0 or refreshes < args.refreshes:
        say("Waiting for the operator to refresh the token before it expires")
        expiry = wait_for_change(
            lambda: secret_expiry(plane), expiry, args.lifetime * 2, "the Secret"
        )
        written = time.monotonic()
        refreshes += 1
        print(plane.kubectl("get", "egt", "-n", NAMESPACE).stdout)
        print(f"Secret {SECRET}: new expires_at={expiry} (refresh {refreshes})")
        seen = wait_for_change(lambda: consumer_expiry(plane), seen, args.lifetime * 2, "the file")
        print(
            f"consumer Pod reads: expires at {seen} "
            f"({time.monotonic() - written:.0f}s after the Secret changed)"
        )
        print(f"token requests so far: {len(emulator.requests(client_id))}")
        if args.refreshes == 0:
            print("(Ctrl-C to stop everything)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, default=REPO / ".testground" / "demo")
    parser.add_argument("--lifetime", type=int, default=60, help="token lifetime in seconds")
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
