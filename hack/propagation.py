"""`make bench-propagation`: how long a refreshed token takes to reach a Pod's mounted file.

Starts the local cluster with the kubelet at the given pod sync period (the
kubelet's default is 1m), the emulator and the operator from its image, one
EgainToken with a long lifetime, and a consumer Pod that mounts its Secret and
prints, every second, the fingerprint of the token in its file. Then forces a
refresh (the refresh annotation) every `--interval` seconds and measures, for
each new token, the time from its issue (the emulator's clock) to the first
second the Pod's file held it. Prints figures only; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import time
import uuid
from pathlib import Path

from testground import controlplane, incluster
from testground.emulator import EgainEmulator

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "propagation"
TENANT = "TMPRODB88619984"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sync-frequency", default="1m", help="the kubelet's syncFrequency")
    parser.add_argument("--refreshes", type=int, default=6)
    parser.add_argument(
        "--interval", type=float, default=100, help="seconds between forced refreshes"
    )
    parser.add_argument("--state-dir", type=Path, default=REPO / ".testground" / "propagation")
    args = parser.parse_args()
    state_dir = args.state_dir / "cluster"
    plane = controlplane.start(state_dir, sync_frequency=args.sync_frequency)
    try:
        with EgainEmulator(
            args.state_dir / "emulator", host=plane.gateway, url_host=plane.gateway
        ) as emulator:
            measure(plane, emulator, args)
    finally:
        controlplane.stop(state_dir)


def measure(
    plane: controlplane.ControlPlane, emulator: EgainEmulator, args: argparse.Namespace
) -> None:
    client_id, client_secret = str(uuid.uuid4()), secrets.token_urlsafe(32)
    emulator.register_client(client_id, client_secret, TENANT, ["knowledge.portalmgr.manage"])
    plane.kubectl("create", "namespace", NAMESPACE)
    incluster.install_operator(
        plane, emulator, "egain-token-operator", "egain-system", {"watchNamespaces": [NAMESPACE]}
    )
    incluster.apply(
        plane,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "egain-client", "namespace": NAMESPACE},
            "stringData": {"client_id": client_id, "client_secret": client_secret},
        },
        {
            "apiVersion": "egain.cloud/v1alpha1",
            "kind": "EgainToken",
            "metadata": {"name": "measured", "namespace": NAMESPACE},
            "spec": {
                "tokenUrl": emulator.client_app_token_url(TENANT),
                "scopes": ["knowledge.portalmgr.manage"],
                "credentialsSecretRef": {"name": "egain-client"},
            },
        },
        incluster.consumer_pod(plane, "sampler", NAMESPACE, incluster.SAMPLER_SCRIPT, "measured"),
    )
    plane.kubectl("wait", "--for=condition=Ready", "pod/sampler", "-n", NAMESPACE, "--timeout=3m")
    for refresh in range(args.refreshes):
        time.sleep(args.interval)
        plane.kubectl(
            "annotate", "egt", "measured", "-n", NAMESPACE, "--overwrite",
            f"egain.cloud/refresh-requested-at=refresh-{refresh}",
        )  # fmt: skip
    time.sleep(args.interval)
    logs = plane.kubectl("logs", "sampler", "-n", NAMESPACE).stdout
    seen = incluster.first_seen(incluster.samples(logs))
    issued = sorted(emulator.issued_tokens(client_id), key=lambda token: token.issued_at)
    delays = [
        seen[token.fingerprint] - token.issued_at.timestamp()
        for token in issued[1:]  # the first token was there before the Pod started
        if token.fingerprint in seen
    ]
    figures = {
        "sync_frequency": args.sync_frequency,
        "refreshes": len(issued) - 1,
        "delivered": len(delays),
        "delay_min_s": round(min(delays), 1) if delays else None,
        "delay_median_s": round(statistics.median(delays), 1) if delays else None,
        "delay_max_s": round(max(delays), 1) if delays else None,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
