"""The search for secrets left in the open: client secrets and issued tokens in the
operator's logs, in Events and in the objects whose status the operator writes
(EgainTokens, EgainClients, ClusterEgainClients), plain or base64-encoded.

The end-to-end fixtures run it after every test that ran the operator (whose
log is at debug level there), and `hack/soak/` can run it over its own run:

    texts = [operator_log, cluster_record(plane, namespaces)]
    assert_no_secret_material(texts, [emulator])

Findings are described (whose secret, which token), never shown.
"""

from __future__ import annotations

from collections.abc import Iterable

from testground.controlplane import ControlPlane
from testground.emulator import EgainEmulator


def cluster_record(plane: ControlPlane, namespaces: Iterable[str]) -> str:
    """The Events, EgainTokens and EgainClients (status included) of `namespaces`,
    and every ClusterEgainClient, as JSON text.

    Events about ClusterEgainClients are in the operator's cluster resource
    namespace: name it among `namespaces` to search them.
    """
    # A failed read fails the check: an empty record would pass it.
    texts = [plane.kubectl("get", "clusteregainclients", "-o", "json").stdout]
    for namespace in dict.fromkeys(namespaces):
        for resource in ("events", "egaintokens", "egainclients"):
            texts.append(plane.kubectl("get", resource, "-n", namespace, "-o", "json").stdout)
    return "\n".join(texts)


def secret_material(texts: Iterable[str], emulators: Iterable[EgainEmulator]) -> list[str]:
    """What of the emulators' client secrets and issued tokens `texts` hold, described."""
    text = "\n".join(texts)
    found: set[str] = set()
    for emulator in emulators:
        found.update(emulator.secrets_in(text).values())
    return sorted(found)


def assert_no_secret_material(texts: Iterable[str], emulators: Iterable[EgainEmulator]) -> None:
    """Fail, saying what was found (never the values), if `texts` hold any."""
    found = secret_material(texts, emulators)
    assert not found, f"secret material in logs, events or status: {found}"
