"""Walk every page of a list once, in page order, even while the list changes under us.

Offset pages (``?page=N``) shift when records are deleted mid-sync: a record that moved
from page N to page N-1 after we read N-1 would be skipped. Outlign lists in ascending
`id` order (assumed; checked on every page), so the walk keeps a watermark (the highest id
emitted): a record at or below it is a duplicate, and when a page's `total` differs from the
previous page's, the walk re-reads earlier pages, going back until one starts with a record
already emitted. Cursor pages do not shift.

Known limits: `simplePaginate()` pages carry no total, so deletions there go unseen; and
deletions exactly offset by creations between two page reads leave the total unchanged, so
the records they shift are missed by this run (and, if unchanged, by incremental runs
after it: a full refresh reconciles).

When the first page tells how many pages there are, the rest are fetched concurrently
(bounded in flight and in look-ahead) and still handed out in page order.
"""

from __future__ import annotations

import itertools
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from tap_outlign.pagination import FIRST_PAGE, Page, PageToken

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Generator, Iterator

    Records = list[dict[str, Any]]


class _Watermark:
    """Drops records already emitted, while the list keeps its ascending-id order."""

    def __init__(self, logger: logging.Logger) -> None:
        self.highest: int | None = None
        self.trusted = True
        self._logger = logger

    def fresh(self, page: Page, *, rereading: bool) -> Records:
        """The page's records not emitted yet (all of them once the order is not by id)."""
        if not self.trusted:
            return page.records
        ids = [record.get("id") for record in page.records]
        if not all(isinstance(i, int) for i in ids) or any(
            b <= a  # type: ignore[operator]
            for a, b in itertools.pairwise(ids)
        ):
            self._distrust("records are not in ascending id order")
            return page.records
        if not ids:
            return []
        highest = self.highest
        if highest is not None and ids[0] <= highest:  # type: ignore[operator]
            if not rereading and page.total is None:
                # Without totals, an overlap can only mean the order is not by id.
                self._distrust("pages overlap")
                return page.records
            records = [r for r in page.records if r["id"] > highest]
        else:
            records = page.records
        self.highest = max(highest or 0, ids[-1])  # type: ignore[type-var]
        return records

    def _distrust(self, why: str) -> None:
        self.trusted = False
        self._logger.warning(
            "Outlign's list is not in ascending id order (%s): records created or deleted "
            "during this sync may be missed or repeated",
            why,
        )


class PageWalk:
    """Fetches pages through `fetch` and hands out each page's new records, in order."""

    def __init__(
        self,
        fetch: Callable[[PageToken | None], Page],
        *,
        paginated: bool,
        concurrency: int,
        logger: logging.Logger,
    ) -> None:
        """`fetch` must retry on its own; `concurrency` bounds requests in flight."""
        self._fetch = fetch
        self._paginated = paginated
        self._concurrency = max(1, concurrency)
        self._watermark = _Watermark(logger)
        self._logger = logger
        self._previous: Page | None = None

    def pages(self) -> Iterator[Records]:
        """Each page's records that were not handed out before, in page order."""
        if not self._paginated:
            yield self._fetch(None).records
            return
        first = self._fetch(FIRST_PAGE)
        yield from self._accept(first, FIRST_PAGE)
        token = first.next_token
        if token is None:
            return
        if token.page is not None and first.total is None:
            self._logger.warning(
                "Outlign's pages carry no total (simplePaginate): records deleted during "
                "this sync can shift others onto pages already read, unseen"
            )
        if self._concurrency > 1 and token.page is not None and first.last_page:
            token = yield from self._concurrent(token.page, first.last_page)
        while token is not None:
            page = self._fetch(token)
            yield from self._accept(page, token)
            token = page.next_token

    def _concurrent(self, start: int, last: int) -> Generator[Records, None, PageToken | None]:
        """Pages `start..last` fetched in parallel, accepted in order; returns what follows."""
        look_ahead = 2 * self._concurrency
        pending: deque[tuple[PageToken, Future[Page]]] = deque()
        next_page = start
        tail: PageToken | None = None
        with ThreadPoolExecutor(self._concurrency, thread_name_prefix="outlign-page") as pool:
            try:
                while pending or next_page <= last:
                    while next_page <= last and len(pending) < look_ahead:
                        token = PageToken(page=next_page)
                        pending.append((token, pool.submit(self._fetch, token)))
                        next_page += 1
                    token, future = pending.popleft()
                    page = future.result()
                    yield from self._accept(page, token)
                    tail = page.next_token
            finally:
                for _, future in pending:
                    future.cancel()
        return tail

    def _accept(self, page: Page, token: PageToken) -> Iterator[Records]:
        """Hand out a page, first re-reading earlier pages if the list changed size."""
        previous = self._previous
        if (
            token.page is not None
            and token.page > 1
            and previous is not None
            and previous.total is not None
            and page.total is not None
            and page.total != previous.total
            and self._watermark.trusted
        ):
            yield from self._reread_before(token.page, previous.total, page.total)
        self._previous = page
        yield self._watermark.fresh(page, rereading=False)

    def _reread_before(self, number: int, before: int, after: int) -> Iterator[Records]:
        """Re-read the pages before `number` that deletions may have shifted records into.

        A change of total can hide more deletions than it shows (some offset by creations),
        so the walk goes back page by page until a page starts with a record it already
        handed out: every record before that one was handed out (or deleted) too.
        """
        highest = self._watermark.highest
        reread: list[Page] = []
        for back in range(number - 1, 0, -1):
            earlier = self._fetch(PageToken(page=back))
            reread.append(earlier)
            first = earlier.records[0].get("id") if earlier.records else None
            if highest is None or (isinstance(first, int) and first <= highest):
                break
        self._logger.info(
            "The list changed from %d to %d records during the sync; re-read page(s) %d-%d "
            "before page %d so no record shifted onto them is missed.",
            before,
            after,
            number - len(reread),
            number - 1,
            number,
        )
        for earlier in reversed(reread):
            yield self._watermark.fresh(earlier, rereading=True)
