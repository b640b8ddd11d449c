"""LIST requests come in pages: `limit` on each, `continue` until the API server gives none."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from egain_token_operator.kube.adapter import LIST_PAGE_SIZE, Kube, _paged
from egain_token_operator.kube.api import Collection, GoneError, list_all


class Response:
    """Just what `kube._json` reads of an aiohttp response."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status, self.reason, self._body = status, "", json.dumps(body).encode()

    async def read(self) -> bytes:
        return self._body

    def release(self) -> None:
        return None


class Pages:
    """A collection of `total` objects served `limit` at a time, as the API server serves it."""

    def __init__(self, total: int, expire_after: int | None = None) -> None:
        self.total, self.expire_after = total, expire_after
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, **params: Any) -> Response:
        self.calls.append(params)
        if self.expire_after is not None and len(self.calls) > self.expire_after:
            return Response(410, {"message": "The provided continue parameter is too old"})
        start, limit = int(params.get("_continue") or 0), params["limit"]
        end = min(start + limit, self.total)
        more = str(end) if end < self.total else ""
        items = [{"metadata": {"name": f"o{i}"}} for i in range(start, end)]
        return Response(
            200, {"metadata": {"resourceVersion": "42", "continue": more}, "items": items}
        )


async def gathered(pages: Pages, page_size: int) -> list[list[str]]:
    return [
        [item["metadata"]["name"] for item in page["items"]]
        async for page in _paged(pages, page_size)
    ]


def test_every_page_is_asked_for_with_a_limit_and_the_previous_continue() -> None:
    pages = Pages(5)
    got = asyncio.run(gathered(pages, 2))
    assert got == [["o0", "o1"], ["o2", "o3"], ["o4"]]
    assert pages.calls == [
        {"limit": 2},
        {"limit": 2, "_continue": "2"},
        {"limit": 2, "_continue": "4"},
    ]


def test_a_list_smaller_than_a_page_is_one_request() -> None:
    pages = Pages(3)
    assert asyncio.run(gathered(pages, LIST_PAGE_SIZE)) == [["o0", "o1", "o2"]]
    assert pages.calls == [{"limit": LIST_PAGE_SIZE}]


def test_an_expired_continue_token_is_gone() -> None:
    with pytest.raises(GoneError):
        asyncio.run(gathered(Pages(5, expire_after=1), 2))


def test_list_all_gathers_the_pages_of_one_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    pages = Pages(2 * LIST_PAGE_SIZE + 1)
    kube = Kube.__new__(Kube)
    monkeypatch.setattr(kube, "_list", lambda collection, **params: pages(**params), raising=False)
    items, version = asyncio.run(list_all(kube, Collection("secrets", "ns")))
    assert (len(items), version, len(pages.calls)) == (2 * LIST_PAGE_SIZE + 1, "42", 3)
    assert all(call["limit"] == LIST_PAGE_SIZE for call in pages.calls)
