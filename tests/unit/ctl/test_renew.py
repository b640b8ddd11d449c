"""`renew` of many follows its tokens and Secrets with `kube.watch.Watch`: a watch too
old (410) lists again and hands over what changed meanwhile, and a failed list or
watch ends the renewal at once instead of being retried as the operator retries."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from egain_token_operator.ctl import command, renew
from egain_token_operator.kube.api import Collection, GoneError, KubeError
from tests.unit.test_renewal import (
    NOW,
    REQUEST,
    FakeKube,
    managed_secret,
    renew_args,
    run_many,
    token,
)


class FailingKube(FakeKube):
    """`FakeKube` whose lists and watches of a resource first raise scripted errors."""

    def __init__(self, tokens: list[dict[str, Any]], secrets: list[dict[str, Any]]) -> None:
        super().__init__(tokens, secrets)
        self.list_errors: dict[str, list[KubeError]] = {}
        self.watch_errors: dict[str, list[KubeError]] = {}
        # Called as a watch raises its error: what changes on the API server meanwhile.
        self.meanwhile: Callable[[], None] = lambda: None

    async def list_pages(
        self, collection: Collection
    ) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
        errors = self.list_errors.get(collection.resource)
        if errors:
            self.lists.append(collection)
            raise errors.pop(0)
        async for page in super().list_pages(collection):
            yield page

    async def watch_objects(
        self, collection: Collection, resource_version: str
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        errors = self.watch_errors.get(collection.resource)
        if errors:
            self.watches.append(collection)
            self.meanwhile()
            raise errors.pop(0)
        async for change in super().watch_objects(collection, resource_version):
            yield change


def versioned(secret: dict[str, Any], version: str) -> dict[str, Any]:
    secret["metadata"]["resourceVersion"] = version
    return secret


def test_a_watch_too_old_lists_again_and_finds_the_new_tokens() -> None:
    kube = FailingKube(
        [token("a"), token("b")],
        [versioned(managed_secret("a-token"), "1"), versioned(managed_secret("b-token"), "1")],
    )
    kube.watch_errors["secrets"] = [GoneError(410, "too old")]

    def answered_while_gone() -> None:
        # The operator answers while nobody watches: only the list again sees it.
        assert kube.patched  # the tokens were annotated before any watch started
        kube.secrets = [
            versioned(managed_secret(f"{name}-token", request=REQUEST, value="t2"), "2")
            for name in ("a", "b")
        ]

    kube.meanwhile = answered_while_gone
    code, out, error = run_many(kube, "--all")

    assert (code, error) == (command.EXIT_OK, "")
    assert out[-1] == "2 EgainToken(s): 2 renewed, 0 failed, 0 timed out"
    # One list of each, one list again of the Secrets; never a read per token.
    assert [c.resource for c in kube.lists] == ["egaintokens", "secrets", "secrets"]
    assert sorted(c.resource for c in kube.watches) == ["egaintokens", "secrets", "secrets"]


def test_a_failed_watch_ends_the_renewal_at_once() -> None:
    kube = FailingKube([token("a")], [])
    kube.watch_errors["egaintokens"] = [KubeError(403, "forbidden: watch egaintokens")]

    started = time.monotonic()
    with pytest.raises(KubeError, match="forbidden: watch egaintokens"):
        run_many(kube, "--all", seconds=30)

    assert time.monotonic() - started < 5  # not waited out, not retried with backoff
    # Each watched once: the failed one was not tried again.
    assert sorted(c.resource for c in kube.watches) == ["egaintokens", "secrets"]
    assert kube.patched == [("apps", "a")]


def test_a_failed_list_ends_the_renewal_before_any_request() -> None:
    kube = FailingKube([token("a")], [])
    kube.list_errors["secrets"] = [KubeError(403, "forbidden: list secrets")]

    with pytest.raises(KubeError, match="forbidden: list secrets"):
        run_many(kube, "--all", seconds=30)

    assert [c.resource for c in kube.lists] == ["egaintokens", "secrets"]
    assert kube.patched == [] and kube.watches == []


def test_nothing_is_left_running_after_a_renewal() -> None:
    async def renew_then_count_tasks() -> int:
        kube = FailingKube([token("a")], [])
        selection = renew._selection(renew_args("--all"))
        with pytest.raises(command.CommandError, match="timed out"):
            await renew._renew_many(kube, "apps", selection, 0.1, [].append, lambda: NOW)  # type: ignore[arg-type]
        return len(asyncio.all_tasks()) - 1  # this one

    assert asyncio.run(renew_then_count_tasks()) == 0


def test_a_first_list_cut_short_by_a_410_lists_again_and_drops_what_went_away() -> None:
    class CutShort(FailingKube):
        async def list_pages(
            self, collection: Collection
        ) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
            if collection.resource == "egaintokens" and len(self.lists) == 0:
                self.lists.append(collection)
                yield [versioned(token("a"), "1"), versioned(token("gone"), "1")], "1"
                raise GoneError(410, "the list's snapshot is too old")
            async for page in super().list_pages(collection):
                yield page

    kube = CutShort([versioned(token("a"), "1")], [])
    kube.answer = lambda body, request: [
        ("MODIFIED", managed_secret("a-token", request=request, value="t2"))
    ]
    code, out, error = run_many(kube, "--all")

    assert (code, error) == (command.EXIT_OK, "")
    assert kube.patched == [("apps", "a")]  # not the token deleted meanwhile
    assert [c.resource for c in kube.lists] == ["egaintokens", "egaintokens", "secrets"]
    assert out[-1] == "1 EgainToken(s): 1 renewed, 0 failed, 0 timed out"
