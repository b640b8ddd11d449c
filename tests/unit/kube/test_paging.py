"""LIST requests come in pages: `limit` on each, `continue` until the API server gives none."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from egain_token_operator.kube.adapter import LIST_PAGE_BYTES, LIST_PAGE_SIZE, Kube, _paged
from egain_token_operator.kube.api import Collection, GoneError, list_all


class Body:
    """A response's body as aiohttp streams it; counts what was read."""

    def __init__(self, data: bytes) -> None:
        self._data, self.read_bytes = data, 0

    async def read(self, n: int) -> bytes:
        chunk = self._data[self.read_bytes : self.read_bytes + n]
        self.read_bytes += len(chunk)
        return chunk


class Response:
    """Just what `kube._json` and `kube._page` read of an aiohttp response."""

    def __init__(self, status: int, body: dict[str, Any], length_sent: bool = False) -> None:
        self.status, self.reason, self._body = status, "", json.dumps(body).encode()
        self.content = Body(self._body)
        self.content_length = len(self._body) if length_sent else None
        self.closed = False

    async def read(self) -> bytes:
        return self._body

    def close(self) -> None:
        self.closed = True

    def release(self) -> None:
        return None


class Pages:
    """A collection of `total` objects served `limit` at a time, as the API server
    serves it; `sizes` gives some objects a body of that many bytes."""

    def __init__(
        self,
        total: int,
        expire_after: int | None = None,
        sizes: dict[int, int] | None = None,
        length_sent: bool = False,
    ) -> None:
        self.total, self.expire_after, self.sizes = total, expire_after, sizes or {}
        self.length_sent = length_sent
        self.calls: list[dict[str, Any]] = []
        self.responses: list[Response] = []

    async def __call__(self, **params: Any) -> Response:
        self.calls.append(params)
        if self.expire_after is not None and len(self.calls) > self.expire_after:
            return Response(410, {"message": "The provided continue parameter is too old"})
        start, limit = int(params.get("_continue") or 0), params["limit"]
        end = min(start + limit, self.total)
        more = str(end) if end < self.total else ""
        items = [
            {"metadata": {"name": f"o{i}"}, "data": "x" * self.sizes.get(i, 0)}
            for i in range(start, end)
        ]
        response = Response(
            200,
            {"metadata": {"resourceVersion": "42", "continue": more}, "items": items},
            self.length_sent,
        )
        self.responses.append(response)
        return response


async def gathered(
    pages: Pages, page_size: int, page_bytes: int = LIST_PAGE_BYTES
) -> list[list[str]]:
    return [
        [item["metadata"]["name"] for item in page["items"]]
        async for page in _paged(pages, page_size, page_bytes)
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


# Objects of 10 KB, and of 100 bytes, against a budget of 25 KB a page.
BIG, BUDGET = 10_000, 25_000


@pytest.mark.parametrize("length_sent", [False, True])
def test_a_page_over_its_bytes_is_asked_for_again_with_half_the_limit(length_sent: bool) -> None:
    pages = Pages(12, sizes=dict.fromkeys(range(6), BIG), length_sent=length_sent)
    got = asyncio.run(gathered(pages, 8, BUDGET))
    assert [name for page in got for name in page] == [f"o{i}" for i in range(12)]
    assert [(call["limit"], call.get("_continue")) for call in pages.calls] == [
        (8, None),  # 6 large: over
        (4, None),  # 4 large: over
        (2, None),  # 20 KB: taken, but over half the budget: the limit stays
        (2, "2"),
        (2, "4"),
        (2, "6"),  # small now: the limit doubles again
        (4, "8"),
    ]
    dropped = [r for r in pages.responses if r.closed]
    assert len(dropped) == 2
    # Not read past the budget (by one chunk at most); not read at all when its length said so.
    assert all(r.content.read_bytes <= BUDGET + 64 * 1024 for r in dropped)
    if length_sent:
        assert all(r.content.read_bytes == 0 for r in dropped)


def test_one_object_is_taken_whatever_its_size() -> None:
    pages = Pages(2, sizes={0: 3 * BUDGET})
    assert asyncio.run(gathered(pages, 2, BUDGET)) == [["o0"], ["o1"]]
    assert [call["limit"] for call in pages.calls] == [2, 1, 1]
