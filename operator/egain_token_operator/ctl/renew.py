"""`renew NAME | --all | -l SELECTOR | --client KIND/NAME [-n NS | -A] [--timeout S]`:
force a refresh of one EgainToken or many, and wait for the new tokens.

The request is the `egain.cloud/refresh-requested-at` annotation on each
token; how each renewal ends is `renewal.Renewal`'s to say. One token is read
every `RENEW_POLL_SECONDS`, which needs nothing but `get`. Many are followed
with one `kube.watch.Watch` of the tokens and one of the managed Secrets: one
list and one watch of each, whatever the number of tokens, never a poll per
token.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from egain_token_operator.ctl.command import (
    EXIT_NOT_READY,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    CommandError,
    connect,
    managed_secret_name,
    read_client,
    read_token,
)
from egain_token_operator.ctl.readout import printable
from egain_token_operator.ctl.renewal import Ending, Progress, Renewal
from egain_token_operator.ctl.reports import renewal_summary, selection_text
from egain_token_operator.decisions.clientref import client_argument, uses
from egain_token_operator.decisions.clients import ClientRef
from egain_token_operator.decisions.render import REFRESH_REQUESTED_AT_ANNOTATION
from egain_token_operator.kube.api import (
    Collection,
    GoneError,
    KubeApi,
    KubeError,
    NotFoundError,
)
from egain_token_operator.kube.secretcache import MANAGED_SELECTOR
from egain_token_operator.kube.watch import Key, Watch, object_key

# How often `renew NAME` looks at the Secret while it waits.
RENEW_POLL_SECONDS = 0.5
# Annotations `renew` sends at once when it renews many tokens.
RENEW_CONCURRENT_PATCHES = 16


@dataclass(frozen=True, slots=True)
class Selection:
    """What `renew`'s arguments select: one EgainToken by name, or every one a list
    finds (of the namespace, or of every one), by labels or by client."""

    name: str | None = None
    every_namespace: bool = False
    label_selector: str | None = None
    client: ClientRef | None = None


def _selection(args: argparse.Namespace) -> Selection:
    """`renew`'s selection; `CommandError` (usage) unless there is exactly one form."""
    forms = [args.name is not None, args.all, args.selector is not None, args.client is not None]
    if sum(forms) != 1:
        raise CommandError(
            "renew takes exactly one of NAME, --all, -l SELECTOR and --client KIND/NAME",
            EXIT_USAGE,
        )
    if args.name is not None:
        if args.all_namespaces:
            raise CommandError("NAME cannot be combined with --all-namespaces", EXIT_USAGE)
        return Selection(name=args.name)
    if args.client is None:
        return Selection(every_namespace=args.all_namespaces, label_selector=args.selector)
    try:
        client = client_argument(args.client)
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    if client.kind.namespaced and args.all_namespaces:
        raise CommandError(
            "an EgainClient serves its own namespace only: name it with -n, not -A", EXIT_USAGE
        )
    return Selection(every_namespace=args.all_namespaces, client=client)


def _request_value(now: datetime) -> str:
    """A new value for the refresh annotation: the time, to the microsecond."""
    return now.isoformat(timespec="microseconds").replace("+00:00", "Z")


async def renew(
    args: argparse.Namespace, out: Callable[[str], None], now: Callable[[], datetime]
) -> int:
    """`renew NAME | --all | -l SELECTOR | --client KIND/NAME [-n NS | -A] [--timeout S]`."""
    selection = _selection(args)

    def say(line: str) -> None:
        # Every line renew prints is one line, quoting statuses and annotations.
        out(printable(line))

    kube, namespace = await connect(args)
    try:
        if selection.name is not None:
            return await _renew_one(kube, namespace, selection.name, args.timeout, say, now)
        return await _renew_many(kube, namespace, selection, args.timeout, say, now)
    finally:
        await kube.close()


async def _renew_one(
    kube: KubeApi,
    namespace: str,
    name: str,
    wait_seconds: float,
    out: Callable[[str], None],
    now: Callable[[], datetime],
) -> int:
    """One EgainToken: its Secret and itself read every `RENEW_POLL_SECONDS`, which
    needs nothing but `get` on both."""
    token = await read_token(kube, namespace, name)
    secret_name = managed_secret_name(token)
    renewal = Renewal(_request_value(now()))
    renewal.add(token, secret_name, await kube.read_secret(namespace, secret_name))
    await kube.annotate_token(namespace, name, {REFRESH_REQUESTED_AT_ANNOTATION: renewal.request})
    out(
        f"refresh requested ({REFRESH_REQUESTED_AT_ANNOTATION}={renewal.request}); waiting for "
        f"a new token in Secret {secret_name} (up to {wait_seconds:g}s)"
    )
    deadline = time.monotonic() + wait_seconds
    while True:
        secret = await kube.read_secret(namespace, secret_name)
        progress = renewal.saw_secret(secret, now()) if secret is not None else []
        if not progress:
            progress = renewal.saw_token(await read_token(kube, namespace, name))
        for step in progress:
            if step.ending is Ending.FAILED:
                raise CommandError(step.text, EXIT_NOT_READY)
            out(step.text)
            if step.ending is Ending.RENEWED:
                return EXIT_OK
        if time.monotonic() >= deadline:
            raise CommandError(
                f"timed out after {wait_seconds:g}s: {renewal.unanswered((namespace, name))}. "
                f"Is the operator running and serving namespace {namespace}? The request "
                "stays; the operator answers it when it can.",
                EXIT_TIMEOUT,
            )
        await asyncio.sleep(RENEW_POLL_SECONDS)


async def _renew_many(
    kube: KubeApi,
    namespace: str,
    selection: Selection,
    wait_seconds: float,
    out: Callable[[str], None],
    now: Callable[[], datetime],
) -> int:
    """Every EgainToken `selection` lists: one list of the tokens and one of the
    managed Secrets, an annotation on each token, then one watch of each list
    until every token's renewal has ended or `wait_seconds` passed."""
    scope = None if selection.every_namespace else namespace
    client = selection.client.key(namespace) if selection.client else None
    if client is not None:
        await read_client(kube, client)
    followed = _Followed(kube)
    try:
        followed.follow(Collection("egaintokens", scope, selection.label_selector))
        tokens = await followed.first_list("egaintokens")
        if client is not None:
            tokens = [token for token in tokens if uses(token, client)]
        described = selection_text(scope, selection.label_selector, client)
        if not tokens:
            out(f"No {described}.")
            return EXIT_OK
        followed.follow(Collection("secrets", scope, MANAGED_SELECTOR))
        before = {object_key(secret): secret for secret in await followed.first_list("secrets")}
        renewal = Renewal(_request_value(now()))
        news: list[Progress] = []
        for token in tokens:
            key = object_key(token)
            try:
                secret_name = managed_secret_name(token)
            except CommandError as exc:
                news.append(renewal.fail(key, str(exc)))
                continue
            renewal.add(token, secret_name, before.get((key[0], secret_name)))
        news += await _annotate_all(kube, renewal)
        out(
            f"refresh requested ({REFRESH_REQUESTED_AT_ANNOTATION}={renewal.request}) on "
            f"{len(tokens)} {described}; waiting for their new tokens "
            f"(up to {wait_seconds:g}s)"
        )
        for step in news:
            out(f"{step.key[0]}/{step.key[1]}: {step.text}")
        followed.watch()
        deadline = time.monotonic() + wait_seconds
        while renewal.waiting and (left := deadline - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(left):  # not wait_for: see workers.py
                    change = await followed.next_change()
            except TimeoutError:
                break
            if change.resource == "secrets":
                news = renewal.saw_secret(change.body, now()) if change.kind != "DELETED" else []
            elif change.kind == "DELETED":
                news = renewal.deleted(object_key(change.body))
            else:
                news = renewal.saw_token(change.body)
            for step in news:
                out(f"{step.key[0]}/{step.key[1]}: {step.text}")
    finally:
        await followed.stop()
    timed_out = renewal.waiting
    for key in timed_out:
        out(f"{key[0]}/{key[1]}: timed out: {renewal.unanswered(key)}")
    out(renewal_summary(renewal.endings, len(timed_out)))
    failed = list(renewal.endings.values()).count(Ending.FAILED)
    if failed:
        raise CommandError(f"{failed} EgainToken(s) could not be renewed", EXIT_NOT_READY)
    if timed_out:
        namespaces = ", ".join(sorted({key[0] for key in timed_out}))
        raise CommandError(
            f"timed out after {wait_seconds:g}s: {len(timed_out)} EgainToken(s) not renewed "
            f"yet. Is the operator running and serving namespace(s) {namespaces}? The "
            "requests stay; the operator answers them when it can.",
            EXIT_TIMEOUT,
        )
    return EXIT_OK


async def _annotate_all(kube: KubeApi, renewal: Renewal) -> list[Progress]:
    """Set the request's annotation on every waiting token, a few at a time."""
    slots = asyncio.Semaphore(RENEW_CONCURRENT_PATCHES)

    async def annotate(key: Key) -> list[Progress]:
        async with slots:
            try:
                await kube.annotate_token(*key, {REFRESH_REQUESTED_AT_ANNOTATION: renewal.request})
            except NotFoundError:
                return renewal.deleted(key)
            return []

    done = await asyncio.gather(*(annotate(key) for key in renewal.waiting))
    return [step for steps in done for step in steps]


@dataclass(frozen=True, slots=True)
class _Change:
    """One object of a followed collection as its `Watch` handed it over."""

    resource: str
    kind: str  # ADDED, MODIFIED or DELETED
    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class _Listed:
    """The first list of a followed collection has been handed over, whole."""

    resource: str


class _Followed:
    """The collections a renewal of many follows, each with a `Watch` (its list,
    watch, resume and list-again-on-410 loop), reaching the API server through
    this object rather than straight through `kube`, to differ from the
    operator's watches in three ways:

    - a failed list or watch ends the renewal (exit 3, as every API error of
      the command line) rather than being retried for as long as it runs: the
      failure is handed over and the watch waits there to be stopped;
    - the end of each first list (`Watch.synced`) is handed over as `_Listed`,
      so the renewal knows what was there before its request;
    - no watch starts before `watch()`: none when no token was selected, and
      each from its list's version once the tokens are annotated.
    """

    def __init__(self, kube: KubeApi) -> None:
        self._kube = kube
        self._news: asyncio.Queue[_Change | _Listed | KubeError] = asyncio.Queue()
        self._watching = asyncio.Event()
        self._runs: list[asyncio.Task[None]] = []

    def follow(self, collection: Collection) -> None:
        """List `collection` now; watch it once `watch()` is called."""

        def changed(kind: str, body: Mapping[str, Any]) -> None:
            self._news.put_nowait(_Change(collection.resource, kind, body))

        # A `Watch` calls `list_pages` and `watch_objects` only, which this object has.
        watch = Watch(cast(KubeApi, self), collection, changed)
        self._runs += [asyncio.create_task(watch.run()), asyncio.create_task(self._listed(watch))]

    async def _listed(self, watch: Watch) -> None:
        """Hand over `_Listed` once the first list was handed over, whole."""
        await watch.synced.wait()
        self._news.put_nowait(_Listed(watch.collection.resource))

    async def first_list(self, resource: str) -> list[Mapping[str, Any]]:
        """Every object the first list of `resource` handed over. Call it once per
        `follow`, in the same order, before `watch()`."""
        listed: dict[Key, Mapping[str, Any]] = {}
        while not isinstance(news := await self._next(), _Listed):
            # A 410 in the middle of the list lists again: changes, then deletions.
            if news.kind == "DELETED":
                listed.pop(object_key(news.body), None)
            else:
                listed[object_key(news.body)] = news.body
        return list(listed.values())

    def watch(self) -> None:
        """Start every watch, from its list's version."""
        self._watching.set()

    async def next_change(self) -> _Change:
        """The next change to a followed collection; `KubeError` when one failed."""
        news = await self._next()
        assert isinstance(news, _Change)  # every first list was taken before `watch()`
        return news

    async def stop(self) -> None:
        """Stop every watch."""
        for run in self._runs:
            run.cancel()
        await asyncio.gather(*self._runs, return_exceptions=True)

    async def _next(self) -> _Change | _Listed:
        news = await self._news.get()
        if isinstance(news, KubeError):
            raise news
        return news

    async def list_pages(
        self, collection: Collection
    ) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
        """`KubeApi.list_pages`; a failure other than 410 is handed over."""
        try:
            async for page in self._kube.list_pages(collection):
                yield page
        except GoneError:
            raise  # the Watch lists again at once
        except KubeError as exc:
            await self._failed(exc)

    async def watch_objects(
        self, collection: Collection, resource_version: str
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """`KubeApi.watch_objects` once `watch()` was called; a failure other than 410
        is handed over."""
        await self._watching.wait()
        try:
            async for change in self._kube.watch_objects(collection, resource_version):
                yield change
        except GoneError:
            raise  # the Watch lists again at once
        except KubeError as exc:
            await self._failed(exc)

    async def _failed(self, exc: KubeError) -> None:
        """Hand `exc` to the renewal, which ends it, and wait to be stopped."""
        self._news.put_nowait(exc)
        await asyncio.Future()
