"""List-then-watch and the Secret cache, over an in-memory API."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from egain_token_operator.kube.api import Collection, GoneError
from egain_token_operator.kube.secretcache import MANAGED_SELECTOR, OTHERS_SELECTOR, SecretCache
from egain_token_operator.kube.watch import Watch, trimmed
from tests.unit.fakes import FakeKube


def obj(name: str, version: str, **metadata: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": version, **metadata}}


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_a_relist_hands_over_only_what_changed_and_what_went_away() -> None:
    kube = FakeKube()
    kube.lists["secrets"] = [
        [obj("a", "1"), obj("b", "1"), obj("d", "1")],
        # after 410: b deleted, c added meanwhile; in two pages
        [obj("a", "1"), obj("c", "3"), obj("d", "1")],
    ]
    kube.streams["secrets"] = [[("MODIFIED", obj("a", "1")), GoneError(410, "too old")]]
    seen: list[tuple[str, str]] = []

    async def run() -> None:
        watch = Watch(
            kube,
            Collection("secrets", "ns"),
            lambda change, body: seen.append((change, body["metadata"]["name"])),
        )
        task = asyncio.create_task(watch.run())
        await settle()
        assert watch.synced.is_set()
        assert watch.version(("ns", "c")) == "3" and watch.version(("ns", "b")) is None
        task.cancel()

    asyncio.run(run())
    assert seen == [
        ("ADDED", "a"),
        ("ADDED", "b"),
        ("ADDED", "d"),
        ("MODIFIED", "a"),
        ("ADDED", "c"),  # handed over page by page
        ("DELETED", "b"),  # once every page was seen
    ]


def test_trimmed_keeps_only_the_named_metadata_and_annotations() -> None:
    body = {
        "spec": {"x": 1},
        "metadata": {
            "name": "t",
            "managedFields": [{"big": "x" * 100}],
            "annotations": {"keep": "1", "kubectl.kubernetes.io/last-applied-configuration": "{}"},
        },
    }
    assert trimmed(body, ("name", "annotations"), ("keep",)) == {
        "spec": {"x": 1},
        "metadata": {"name": "t", "annotations": {"keep": "1"}},
    }


def test_credentials_are_read_once_for_all_waiting_and_again_only_when_changed() -> None:
    kube = FakeKube()
    kube.secrets[("ns", "creds")] = {**obj("creds", "5"), "data": {"client_id": "aWQ="}}
    kube.lists["secrets"] = [[], [obj("creds", "5"), obj("helm-release", "2")]]
    changes: list[tuple[str, str]] = []

    async def run() -> None:
        cache = SecretCache(
            kube,
            ("ns",),
            lambda change, body: changes.append((change, body["metadata"]["name"])),
            needed=lambda key: key == ("ns", "creds"),
        )
        assert [w.collection.label_selector for w in cache.watches] == [
            MANAGED_SELECTOR,
            OTHERS_SELECTOR,
        ]
        assert cache.watches[1].collection.metadata_only
        tasks = [asyncio.create_task(w.run()) for w in cache.watches]
        await cache.synced()
        kube.read_gate.clear()
        waiting = [asyncio.create_task(cache.credentials("ns", "creds")) for _ in range(50)]
        await settle()
        kube.read_gate.set()
        found = await asyncio.gather(*waiting)
        assert all(f is not None and f["data"] == {"client_id": "aWQ="} for f in found)
        assert kube.reads == [("ns", "creds")]
        await cache.credentials("ns", "creds")
        assert kube.reads == [("ns", "creds")], "read again although unchanged"
        # The metadata watch says it changed: the next look reads it again.
        cache.watches[1]._apply("MODIFIED", obj("creds", "6"))
        await cache.credentials("ns", "creds")
        assert kube.reads == [("ns", "creds")] * 2
        assert cache.exists_unmanaged("ns", "helm-release")
        assert await cache.credentials("ns", "missing") is None
        assert kube.reads == [("ns", "creds")] * 2, "read a Secret the watch says is not there"
        for task in tasks:
            task.cancel()

    asyncio.run(run())
    assert ("ADDED", "helm-release") in changes and ("MODIFIED", "creds") in changes


@pytest.mark.parametrize("labelled", [True, False])
def test_a_write_conflict_reads_the_secret_again(labelled: bool) -> None:
    kube = FakeKube()
    labels = {"app.kubernetes.io/managed-by": "egain-token-operator"} if labelled else {}
    kube.secrets[("ns", "token")] = obj("token", "9", labels=labels, managedFields=[{}])
    kube.lists["secrets"] = [[obj("token", "8", labels=labels)], []]

    async def run() -> None:
        cache = SecretCache(kube, ("ns",), lambda change, body: None, needed=lambda key: True)
        tasks = [asyncio.create_task(w.run()) for w in cache.watches]
        await cache.synced()
        await cache.read_again("ns", "token")
        managed = cache.managed("ns", "token")
        if labelled:
            assert managed is not None and managed["metadata"]["resourceVersion"] == "9"
            assert "managedFields" not in managed["metadata"]
        else:
            assert managed is None
        for task in tasks:
            task.cancel()

    asyncio.run(run())
