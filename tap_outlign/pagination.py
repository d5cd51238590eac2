"""Laravel pagination in every shape Outlign may answer with (assumed: Laravel paginators).

Shapes understood, as Laravel renders them:

- API resource collection: ``{"data": [...], "links": {...}, "meta": {"current_page", ...}}``
- ``paginate()``: ``{"current_page", "data", "last_page", "next_page_url", "total", ...}``
- ``simplePaginate()``: the same without ``total`` and ``last_page``
- ``cursorPaginate()``: ``{"data", "next_cursor", "next_page_url", ...}`` (also under ``meta``)
- no pagination: a bare JSON array, or ``{"data": [...]}``

Laravel's next-page URLs carry only ``page`` (or ``cursor``), not our ``per_page``, so the
paginator turns them into tokens and the stream rebuilds each request with its own params.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from singer_sdk.pagination import BaseAPIPaginator
from typing_extensions import override

if TYPE_CHECKING:
    import requests


class UnexpectedShapeError(ValueError):
    """The body is JSON, but not a shape of Laravel list (or object) we know."""


@dataclass(frozen=True, slots=True)
class PageToken:
    """Which page to ask for: a page number (offset paginators) or an opaque cursor."""

    page: int | None = None
    cursor: str | None = None

    def params(self) -> dict[str, Any]:
        """The query parameters that select this page."""
        if self.cursor is not None:
            return {"cursor": self.cursor}
        return {"page": self.page} if self.page is not None else {}


FIRST_PAGE = PageToken(page=1)


@dataclass(frozen=True, slots=True)
class Page:
    """One decoded page: its records and what it says about the rest of the list."""

    records: list[dict[str, Any]]
    next_token: PageToken | None = None
    current_page: int | None = None
    last_page: int | None = None
    total: int | None = None
    per_page: int | None = None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _records(items: Any) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        msg = f"expected a list of records, got {type(items).__name__}"
        raise UnexpectedShapeError(msg)
    for item in items:
        if not isinstance(item, dict):
            msg = f"expected each record to be an object, got {type(item).__name__}"
            raise UnexpectedShapeError(msg)
    return items


def _offset_page(records: list[dict[str, Any]], info: dict[str, Any], *, has_next: bool) -> Page:
    current = _as_int(info.get("current_page"))
    last = _as_int(info.get("last_page"))
    if current is not None and last is not None:
        has_next = current < last
    next_token = PageToken(page=current + 1) if has_next and current is not None else None
    return Page(
        records=records,
        next_token=next_token,
        current_page=current,
        last_page=last,
        total=_as_int(info.get("total")),
        per_page=_as_int(info.get("per_page")),
    )


def _cursor_page(records: list[dict[str, Any]], info: dict[str, Any]) -> Page:
    cursor = info.get("next_cursor")
    return Page(
        records=records,
        next_token=PageToken(cursor=cursor) if isinstance(cursor, str) and cursor else None,
        per_page=_as_int(info.get("per_page")),
    )


def parse_page(body: Any) -> Page:
    """Read any Laravel list shape into a `Page`; raise `UnexpectedShapeError` otherwise."""
    if isinstance(body, list):
        return Page(records=_records(body))
    if not isinstance(body, dict) or "data" not in body:
        msg = "expected a JSON list or an object with a `data` list"
        raise UnexpectedShapeError(msg)
    records = _records(body["data"])
    meta = body.get("meta")
    if isinstance(meta, dict):
        if "next_cursor" in meta:
            return _cursor_page(records, meta)
        links = body.get("links")
        has_next = isinstance(links, dict) and bool(links.get("next"))
        return _offset_page(records, meta, has_next=has_next)
    if "next_cursor" in body:
        return _cursor_page(records, body)
    if "current_page" in body:
        return _offset_page(records, body, has_next=bool(body.get("next_page_url")))
    return Page(records=records)


#: Decoded pages by response: the body is parsed once (in `validate_response`, so a
#: truncated body is retried) and read again by both the stream and the paginator.
_PAGES: WeakKeyDictionary[requests.Response, Page] = WeakKeyDictionary()


def remember_page(response: requests.Response, page: Page) -> None:
    """Attach a decoded page to its response."""
    _PAGES[response] = page


def page_of(response: requests.Response) -> Page:
    """The decoded page of a response that `validate_response` accepted."""
    return _PAGES[response]


class LaravelPaginator(BaseAPIPaginator[PageToken | None]):
    """Follows Laravel's next page (or cursor) until the list says it has no more."""

    def __init__(self) -> None:
        """Start at page 1."""
        super().__init__(FIRST_PAGE)

    @override
    def has_more(self, response: requests.Response) -> bool:
        return page_of(response).next_token is not None

    @override
    def get_next(self, response: requests.Response) -> PageToken | None:
        return page_of(response).next_token

    @override
    def continue_if_empty(self, response: requests.Response) -> bool:
        # A page can be empty after de-duplication yet still point at more pages.
        return self.has_more(response)
