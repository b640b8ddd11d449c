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
from tests.unit.ctl.test_renewal import (
    NOW,
    REQUEST,
    holding,
    managed_secret,
    reacting,
    renew_args,
    run_many,
    token,
)
from tests.unit.fakes import FakeKube


class FailingKube(FakeKube):
    """`FakeKube` whose lists of a resource first raise scripted errors, and which
    changes what it holds as a scripted watch (`streams`) starts."""

    def __init__(self) -> None:
        super().__init__()
        self.list_errors: dict[str, list[KubeError]] = {}
        # Called as a scripted watch starts: what changes on the API server meanwhile.
        self.meanwhile: Callable[[], None] = lambda: None

    async def list_pages(
        self, collection: Collection
    ) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
        errors = self.list_errors.get(collection.resource)
        if errors:
            self.listed.append(collection)
            raise errors.pop(0)
        async for page in super().list_pages(collection):
            yield page

    async def watch_objects(
        self, collection: Collection, resource_version: str
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        if self.streams.get(collection.resource):
            self.meanwhile()
        async for change in super().watch_objects(collection, resource_version):
            yield change


def versioned(body: dict[str, Any], version: str) -> dict[str, Any]:
    body["metadata"]["resourceVersion"] = version
    return body


def test_a_watch_too_old_lists_again_and_finds_the_new_tokens() -> None:
    kube = holding(
        FailingKube(),
        [token("a"), token("b")],
        [versioned(managed_secret("a-token"), "1"), versioned(managed_secret("b-token"), "1")],
    )
    kube.streams["secrets"] = [[GoneError(410, "too old")]]

    def answered_while_gone() -> None:
        # The operator answers while nobody watches: only the list again sees it.
        assert kube.annotated  # the tokens were annotated before any watch started
        for name in ("a", "b"):
            answer = managed_secret(f"{name}-token", request=REQUEST, value="t2")
            kube.secrets[("apps", f"{name}-token")] = versioned(answer, "2")

    kube.meanwhile = answered_while_gone
    code, out, error = run_many(kube, "--all")

    assert (code, error) == (command.EXIT_OK, "")
    assert out[-1] == "2 EgainToken(s): 2 renewed, 0 failed, 0 timed out"
    # One list of each, one list again of the Secrets; never a read per token.
    assert [c.resource for c in kube.listed] == ["egaintokens", "secrets", "secrets"]
    assert sorted(c.resource for c in kube.watched) == ["egaintokens", "secrets", "secrets"]
    assert kube.reads == []


def test_a_failed_watch_ends_the_renewal_at_once() -> None:
    kube = holding(FailingKube(), [token("a")], [])
    kube.streams["egaintokens"] = [[KubeError(403, "forbidden: watch egaintokens")]]

    started = time.monotonic()
    with pytest.raises(KubeError, match="forbidden: watch egaintokens"):
        run_many(kube, "--all", seconds=30)

    assert time.monotonic() - started < 5  # not waited out, not retried with backoff
    # Each watched once: the failed one was not tried again.
    assert sorted(c.resource for c in kube.watched) == ["egaintokens", "secrets"]
    assert kube.annotated == [("apps", "a")]


def test_a_failed_list_ends_the_renewal_before_any_request() -> None:
    kube = holding(FailingKube(), [token("a")], [])
    kube.list_errors["secrets"] = [KubeError(403, "forbidden: list secrets")]

    with pytest.raises(KubeError, match="forbidden: list secrets"):
        run_many(kube, "--all", seconds=30)

    assert [c.resource for c in kube.listed] == ["egaintokens", "secrets"]
    assert kube.annotated == [] and kube.watched == []


def test_nothing_is_left_running_after_a_renewal() -> None:
    async def renew_then_count_tasks() -> int:
        kube = holding(FakeKube(), [token("a")], [])
        selection = renew._selection(renew_args("--all"))
        out: list[str] = []
        with pytest.raises(command.CommandError, match="timed out"):
            await renew._renew_many(kube, "apps", selection, 0.1, out.append, lambda: NOW)
        return len(asyncio.all_tasks()) - 1  # this one

    assert asyncio.run(renew_then_count_tasks()) == 0


def test_a_first_list_cut_short_by_a_410_lists_again_and_drops_what_went_away() -> None:
    class CutShort(FakeKube):
        async def list_pages(
            self, collection: Collection
        ) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
            if collection.resource == "egaintokens" and not self.listed:
                self.listed.append(collection)
                yield [versioned(token("a"), "1"), versioned(token("gone"), "1")], "1"
                raise GoneError(410, "the list's snapshot is too old")
            async for page in super().list_pages(collection):
                yield page

    kube = holding(CutShort(), [versioned(token("a"), "1")], [])
    reacting(
        kube,
        lambda body, request: [
            ("MODIFIED", managed_secret("a-token", request=request, value="t2"))
        ],
    )
    code, out, error = run_many(kube, "--all")

    assert (code, error) == (command.EXIT_OK, "")
    assert kube.annotated == [("apps", "a")]  # not the token deleted meanwhile
    assert [c.resource for c in kube.listed] == ["egaintokens", "egaintokens", "secrets"]
    assert out[-1] == "1 EgainToken(s): 1 renewed, 0 failed, 0 timed out"
