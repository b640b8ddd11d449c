"""The Secret cache keeps data only for the Secrets the operator needs, whatever their labels."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from egain_token_operator.decisions.render import MANAGED_BY, MANAGED_BY_LABEL
from egain_token_operator.kube.secretcache import SecretCache
from egain_token_operator.kube.watch import Key
from tests.unit.fakes import FakeKube

DATA = {"access_token": "x" * 4096}


def managed(name: str, version: str) -> dict[str, Any]:
    """A Secret carrying the operator's label, as anyone may write one."""
    return {
        "metadata": {
            "namespace": "ns",
            "name": name,
            "resourceVersion": version,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY},
            "managedFields": [{"manager": "kubectl"}],
        },
        "data": DATA,
    }


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def watched(
    kube: FakeKube, needed: set[Key], test: Callable[[SecretCache], Awaitable[None]]
) -> list[tuple[str, str]]:
    """Run `test` over a cache of `ns` once its watches listed; return the changes handed on."""
    changes: list[tuple[str, str]] = []

    async def run() -> None:
        cache = SecretCache(
            kube,
            ("ns",),
            lambda change, body: changes.append((change, body["metadata"]["name"])),
            needed=needed.__contains__,
        )
        tasks = [asyncio.create_task(watch.run()) for watch in cache.watches]
        await cache.synced()
        await test(cache)
        for task in tasks:
            task.cancel()

    asyncio.run(run())
    return changes


def test_a_labelled_secret_no_served_token_needs_costs_its_version_only() -> None:
    kube = FakeKube()
    forged = [managed(f"forged-{i}", "1") for i in range(5)]
    kube.lists["secrets"] = [[managed("web", "1"), *forged], []]

    async def test(cache: SecretCache) -> None:
        assert set(cache._managed) == {("ns", "web")}
        held = cache.managed("ns", "web")
        assert held is not None and held["data"] == DATA
        assert "managedFields" not in held["metadata"]
        assert cache.watches[0].version(("ns", "forged-0")) == "1"
        # A change of one is handed on (the registry wakes whoever uses it), not kept.
        cache.watches[0]._apply("MODIFIED", managed("forged-0", "2"))
        assert set(cache._managed) == {("ns", "web")}
        assert cache.watches[0].version(("ns", "forged-0")) == "2"
        assert await cache.target("ns", "web") == (held, False)
        assert kube.reads == [], "read a Secret the list brought"

    changes = watched(kube, {("ns", "web")}, test)
    assert ("ADDED", "forged-4") in changes and ("MODIFIED", "forged-0") in changes


def test_a_secret_needed_once_seen_is_read_once_for_all_waiting_and_kept() -> None:
    kube = FakeKube()
    kube.secrets[("ns", "web")] = managed("web", "1")
    kube.lists["secrets"] = [[managed("web", "1")], []]
    needed: set[Key] = set()

    async def test(cache: SecretCache) -> None:
        assert cache.managed("ns", "web") is None
        needed.add(("ns", "web"))  # its EgainToken appeared after the list
        kube.read_gate.clear()
        waiting = [asyncio.create_task(cache.target("ns", "web")) for _ in range(10)]
        await settle()
        kube.read_gate.set()
        found = await asyncio.gather(*waiting)
        assert all(secret is not None and secret["data"] == DATA for secret, _ in found)
        assert not any(unmanaged for _, unmanaged in found)
        assert kube.reads == [("ns", "web")]
        await cache.target("ns", "web")
        assert kube.reads == [("ns", "web")], "read again although held"
        held = cache.managed("ns", "web")
        assert held is not None and "managedFields" not in held["metadata"]

        # No longer needed: forgotten, but its version is still known.
        needed.clear()
        cache.release("ns", "web")
        assert cache.managed("ns", "web") is None
        assert cache.watches[0].version(("ns", "web")) == "1"
        # A read for a Secret not needed answers, and keeps nothing.
        assert await cache.credentials("ns", "web") is not None
        assert cache._managed == {} and cache._credentials == {}

    watched(kube, needed, test)


def test_credentials_no_longer_needed_are_forgotten() -> None:
    kube = FakeKube()
    creds = {"metadata": {"namespace": "ns", "name": "creds", "resourceVersion": "5"}}
    kube.secrets[("ns", "creds")] = {**creds, "data": {"client_id": "aWQ="}}
    kube.lists["secrets"] = [[], [creds]]

    async def test(cache: SecretCache) -> None:
        await cache.credentials("ns", "creds")
        await cache.credentials("ns", "creds")
        assert kube.reads == [("ns", "creds")]
        cache.release("ns", "creds")
        assert cache._credentials == {}
        await cache.credentials("ns", "creds")
        assert kube.reads == [("ns", "creds")] * 2

    watched(kube, {("ns", "creds")}, test)
