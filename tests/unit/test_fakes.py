"""The in-memory API server answers as the API server does where the operator
depends on it: conflicts, missing objects, merge patches."""

from __future__ import annotations

import asyncio

import pytest

from egain_token_operator.kube.api import ConflictError, NotFoundError
from tests.unit.fakes import FakeKube, merge_patch


def test_merge_patch_follows_rfc_7386() -> None:
    # The examples of RFC 7386, appendix A, in part.
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}) == {"a": {"b": "d"}}
    assert merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    assert merge_patch([1, 2], {"a": "b", "c": None}) == {"a": "b"}
    assert merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}


def test_writes_conflict_as_the_api_server_does() -> None:
    kube = FakeKube()
    body = {"metadata": {"name": "s"}, "data": {}}

    async def scenario() -> None:
        first = await kube.create_secret("ns", body)
        with pytest.raises(ConflictError):
            await kube.create_secret("ns", body)  # AlreadyExists
        second = await kube.replace_secret("ns", first)
        assert second["metadata"]["resourceVersion"] != first["metadata"]["resourceVersion"]
        with pytest.raises(ConflictError):
            await kube.replace_secret("ns", first)  # a stale resourceVersion
        with pytest.raises(NotFoundError):
            await kube.replace_secret("ns", {"metadata": {"name": "other"}})
        with pytest.raises(NotFoundError):
            await kube.patch_token_status("ns", "missing", {"phase": "x"})
        second["data"]["changed"] = "by the caller"  # an answer is a copy
        assert kube.secrets[("ns", "s")]["data"] == {}

    asyncio.run(scenario())


def test_a_status_patch_is_merged_into_the_held_object() -> None:
    kube = FakeKube()
    kube.tokens[("ns", "t")] = {"metadata": {"name": "t", "namespace": "ns"}, "spec": {"a": 1}}

    async def scenario() -> None:
        await kube.patch_token_status("ns", "t", {"x": 1, "y": {"z": 2}})
        written = await kube.patch_token_status("ns", "t", {"x": None, "y": {"w": 3}})
        assert written["status"] == {"y": {"z": 2, "w": 3}}
        assert written["spec"] == {"a": 1}
        assert kube.statuses == [{"x": 1, "y": {"z": 2}}, {"x": None, "y": {"w": 3}}]

    asyncio.run(scenario())
