"""Request pacing: honour `Retry-After` and stay inside the API's rate-limit window.

Laravel's API throttle (assumed) counts requests in a fixed window that starts at the
first request, sends `X-RateLimit-Limit` / `X-RateLimit-Remaining` on every response, and
answers 429 with `Retry-After` once the window is spent. The window's length is not sent,
so the pacer learns it from the first 429 (when the window opened and when it frees up)
and from then on waits for the window to free instead of hitting the limit again.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests

#: Extra wait after a predicted window reset, for clock granularity on either side.
RESET_SAFETY_SECONDS = 0.05


class WaitBeyondDeadlineError(Exception):
    """The API asks us to hold off longer than the time left for this request."""

    def __init__(self, wait: float) -> None:
        """Keep how long the wait would have been."""
        super().__init__(f"the next request may only be sent in {wait:.1f} s")
        self.wait = wait


def header_seconds(response: requests.Response, name: str) -> float | None:
    """A header holding a number of seconds (as `Retry-After` does), if present and sane."""
    value = response.headers.get(name, "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _header_int(response: requests.Response, name: str) -> int | None:
    value = response.headers.get(name, "").strip()
    return int(value) if value.isdigit() else None


class RateLimitPacer:
    """Shared by every request of a tap (all streams and threads): when the next may go.

    Laravel throttles per user, not per endpoint, so one tap (one login) has one pacer.
    """

    def __init__(self) -> None:
        """Start knowing nothing about the limit: requests go at once until headers arrive."""
        self._cond = threading.Condition()
        self._not_before = 0.0
        self._in_flight = 0
        self._limit: int | None = None
        self._remaining: int | None = None
        self._window_opened: float | None = None
        self._window_length: float | None = None
        # When the answer that set `_remaining` arrived: a request sent after it that shows
        # as many or more remaining was counted in a new window, not answered out of order.
        self._remaining_seen_at = 0.0
        # Answers to requests sent before this were counted in a window we wrote off.
        self._stale_before = 0.0

    def wait_turn(self, deadline: float | None = None) -> float:
        """Block until a request may be sent; return the monotonic time it is sent at.

        A wait that would end after `deadline` (monotonic) raises `WaitBeyondDeadlineError`
        at once: a `Retry-After` of an hour must not hold a run with a 5 s retry budget.
        """
        with self._cond:
            while (wait := self._wait_needed(now := time.monotonic())) > 0:
                if deadline is not None and now + wait > deadline:
                    raise WaitBeyondDeadlineError(wait)
                self._cond.wait(wait)
            self._in_flight += 1
            return time.monotonic()

    def record(self, response: requests.Response | None, *, sent_at: float) -> None:
        """Learn from a response (or a request that failed without one)."""
        now = time.monotonic()
        with self._cond:
            self._in_flight -= 1
            if response is not None:
                self._learn(response, sent_at=sent_at, now=now)
            self._cond.notify_all()

    def _wait_needed(self, now: float) -> float:
        if self._not_before > now:
            return self._not_before - now
        if self._remaining is None or self._remaining - self._in_flight > 0:
            return 0.0
        if self._window_length is None or self._window_opened is None:
            # Window length unknown: let one request probe; a 429 will teach us.
            return 0.0 if self._in_flight == 0 else 0.05
        frees_at = self._window_opened + self._window_length + RESET_SAFETY_SECONDS
        if frees_at > now:
            return frees_at - now
        self._start_new_window()
        return 0.0

    def _start_new_window(self) -> None:
        self._remaining = self._limit
        self._window_opened = None
        self._stale_before = time.monotonic()

    def _learn(self, response: requests.Response, *, sent_at: float, now: float) -> None:
        retry_after = header_seconds(response, "Retry-After")
        if retry_after is not None and response.status_code in {429, 503}:
            frees_at = now + retry_after
            self._not_before = max(self._not_before, frees_at)
            if response.status_code == 429:  # noqa: PLR2004
                if self._window_opened is not None and sent_at >= self._stale_before:
                    self._window_length = max(frees_at - self._window_opened, 0.1)
                self._remaining = 0
                self._window_opened = None
                self._stale_before = now
            return
        limit = _header_int(response, "X-RateLimit-Limit")
        remaining = _header_int(response, "X-RateLimit-Remaining")
        if limit is None or remaining is None:
            return
        self._limit = limit
        if sent_at < self._stale_before:
            return
        if (
            self._window_opened is None
            or self._remaining is None
            or (sent_at >= self._remaining_seen_at and remaining >= self._remaining)
        ):
            # The first answer of a (new) window: it opened when this request was sent.
            self._window_opened = sent_at
            self._remaining = remaining
            self._remaining_seen_at = now
        elif remaining < self._remaining:
            # Answers of concurrent requests arrive in any order: the lowest is the latest.
            self._remaining = remaining
            self._remaining_seen_at = now
