"""Laravel paginator shapes (resource, paginate, simple, cursor, array, data) and a page cache.

Like Laravel by default, page URLs carry only `page=` or `cursor=`: a client that wants a
non-default page size must re-send its own `per_page`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tap_outlign.sandbox.data import Dataset

COMPANIES_PATH = "/api/v1/companies"
_ON_EACH_SIDE = 3  # Laravel's default onEachSide
_DATA = "\u2063data\u2063"  # placeholder spliced with pre-serialised companies
Rendered = tuple[dict[str, Any], "Sequence[int]", "PageKey | None"]


@dataclass(frozen=True)
class PageKey:
    """Everything a rendered companies answer depends on (besides the dataset)."""

    shape: str
    base_url: str
    per_page: int = 0
    page: int = 1
    cursor: str | None = None


def encode_cursor(company_id: int, *, forward: bool) -> str:
    """Laravel's opaque cursor: base64url JSON without padding."""
    raw = json.dumps({"id": company_id, "_pointsToNextItems": forward}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str | None) -> tuple[int, bool] | None:
    """(id, points to next items), or None for a missing or unreadable cursor (first page)."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    if not isinstance(value, dict):
        return None
    company_id, forward = value.get("id"), value.get("_pointsToNextItems")
    if isinstance(company_id, int) and isinstance(forward, bool):
        return company_id, forward
    return None


def render(dataset: Dataset, key: PageKey) -> tuple[bytes, PageKey | None]:
    """The answer's JSON body and the key of the page a client would fetch next."""
    if key.shape == "array":
        return dataset.json_array(dataset.ids).encode(), None
    if key.shape == "data":
        value, ids, following = {"data": _DATA}, dataset.ids, None
    elif key.shape == "cursor":
        value, ids, following = _cursor(dataset, key)
    elif key.shape == "simple":
        value, ids, following = _simple(dataset, key)
    else:
        value, ids, following = _length_aware(dataset, key)
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # "data" precedes every URL in each shape, so the first placeholder is the right one
    return text.replace(f'"{_DATA}"', dataset.json_array(ids), 1).encode(), following


def _url(path: str, page: int) -> str:
    return f"{path}?page={page}"


def _links(
    path: str, page: int, last_page: int, prev_url: str | None, next_url: str | None
) -> list[dict[str, Any]]:
    """LengthAwarePaginator::linkCollection() with Laravel's UrlWindow."""
    side = _ON_EACH_SIDE
    window = side + 4
    blocks: list[range | None]
    if last_page < side * 2 + 8:
        blocks = [range(1, last_page + 1)]
    elif page <= window:
        blocks = [range(1, window + side + 1), None, range(last_page - 1, last_page + 1)]
    elif page > last_page - window:
        blocks = [range(1, 3), None, range(last_page - (window + side - 1), last_page + 1)]
    else:
        blocks = [range(1, 3), None, range(page - side, page + side + 1), None,
                  range(last_page - 1, last_page + 1)]  # fmt: skip
    links: list[dict[str, Any]] = [{"url": prev_url, "label": "&laquo; Previous", "active": False}]
    for block in blocks:
        if block is None:
            links.append({"url": None, "label": "...", "active": False})
            continue
        links.extend({"url": _url(path, n), "label": str(n), "active": n == page} for n in block)
    links.append({"url": next_url, "label": "Next &raquo;", "active": False})
    return links


def _length_aware(dataset: Dataset, key: PageKey) -> Rendered:
    path = key.base_url + COMPANIES_PATH
    total, page, per_page = len(dataset), key.page, key.per_page
    last_page = max(math.ceil(total / per_page), 1)
    start = (page - 1) * per_page
    ids = dataset.ids[start : start + per_page]
    prev_url = _url(path, page - 1) if page > 1 else None
    next_url = _url(path, page + 1) if page < last_page else None
    body: dict[str, Any] = {
        "current_page": page,
        "data": _DATA,
        "first_page_url": _url(path, 1),
        "from": start + 1 if ids else None,
        "last_page": last_page,
        "last_page_url": _url(path, last_page),
        "links": _links(path, page, last_page, prev_url, next_url),
        "next_page_url": next_url,
        "path": path,
        "per_page": per_page,
        "prev_page_url": prev_url,
        "to": start + len(ids) if ids else None,
        "total": total,
    }
    following = replace(key, page=page + 1) if next_url else None
    if key.shape == "paginate":
        return body, ids, following
    links = {"first": body["first_page_url"], "last": body["last_page_url"],
             "prev": prev_url, "next": next_url}  # fmt: skip
    meta = {k: body[k] for k in ("current_page", "from", "last_page", "links", "path",
                                 "per_page", "to", "total")}  # fmt: skip
    return {"data": _DATA, "links": links, "meta": meta}, ids, following


def _simple(dataset: Dataset, key: PageKey) -> Rendered:
    path = key.base_url + COMPANIES_PATH
    page, per_page = key.page, key.per_page
    start = (page - 1) * per_page
    ids = dataset.ids[start : start + per_page + 1]  # one extra tells whether more exist
    next_url = _url(path, page + 1) if len(ids) > per_page else None
    ids = ids[:per_page]
    body = {
        "current_page": page,
        "data": _DATA,
        "first_page_url": _url(path, 1),
        "from": start + 1 if ids else None,
        "next_page_url": next_url,
        "path": path,
        "per_page": per_page,
        "prev_page_url": _url(path, page - 1) if page > 1 else None,
        "to": start + len(ids) if ids else None,
    }
    return body, ids, replace(key, page=page + 1) if next_url else None


def _cursor(dataset: Dataset, key: PageKey) -> Rendered:
    """CursorPaginator keyed on id: immune to rows shifting between pages."""
    path = key.base_url + COMPANIES_PATH
    per_page = key.per_page
    cursor = decode_cursor(key.cursor)
    if cursor is None or cursor[1]:
        start = dataset.index_after(cursor[0]) if cursor else 0
        ids = dataset.ids[start : start + per_page + 1]
        has_more = len(ids) > per_page
        ids = ids[:per_page]
    else:
        stop = dataset.index_before(cursor[0])
        ids = dataset.ids[max(stop - per_page - 1, 0) : stop]
        has_more = len(ids) > per_page
        ids = ids[len(ids) - per_page :] if has_more else ids
    next_cursor = prev_cursor = None
    pointing_back = cursor is not None and not cursor[1]
    if len(ids) and (has_more or pointing_back):
        next_cursor = encode_cursor(ids[-1], forward=True)
    if len(ids) and cursor is not None and (has_more or not pointing_back):
        prev_cursor = encode_cursor(ids[0], forward=False)
    body = {
        "data": _DATA,
        "path": path,
        "per_page": per_page,
        "next_cursor": next_cursor,
        "next_page_url": f"{path}?cursor={next_cursor}" if next_cursor else None,
        "prev_cursor": prev_cursor,
        "prev_page_url": f"{path}?cursor={prev_cursor}" if prev_cursor else None,
    }
    return body, ids, replace(key, cursor=next_cursor) if next_cursor else None


CacheEntry = tuple[bytes, "PageKey | None"]
"""A rendered answer and the key of the page after it."""


class PageCache:
    """Rendered answers, least recently used first out, bounded in bytes."""

    def __init__(self, budget: int = 256 * 1024 * 1024) -> None:
        """Empty cache holding at most `budget` bytes of bodies."""
        self.budget = budget
        self.size = 0
        self._bodies: OrderedDict[PageKey, CacheEntry] = OrderedDict()

    def get(self, key: PageKey) -> CacheEntry | None:
        """A cached (body, next key), refreshed as most recently used."""
        entry = self._bodies.get(key)
        if entry is not None:
            self._bodies.move_to_end(key)
        return entry

    def __contains__(self, key: object) -> bool:
        """Whether `key` is cached (without touching its recency)."""
        return key in self._bodies

    def put(self, key: PageKey, entry: CacheEntry) -> None:
        """Store an answer, evicting the oldest ones beyond the budget."""
        if key in self._bodies:
            return
        self._bodies[key] = entry
        self.size += len(entry[0])
        while self.size > self.budget and len(self._bodies) > 1:
            _, old = self._bodies.popitem(last=False)
            self.size -= len(old[0])
