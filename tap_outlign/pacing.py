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
    """Shared by every request of a stream (threads included): decides when the next may go."""

    def __init__(self) -> None:
        """Start knowing nothing about the limit: requests go at once until headers arrive."""
        self._cond = threading.Condition()
        self._not_before = 0.0
        self._in_flight = 0
        self._limit: int | None = None
        self._remaining: int | None = None
        self._window_opened: float | None = None
        self._window_length: float | None = None

    def wait_turn(self) -> float:
        """Block until a request may be sent; return the monotonic time it is sent at."""
        with self._cond:
            while (wait := self._wait_needed(time.monotonic())) > 0:
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

    def _learn(self, response: requests.Response, *, sent_at: float, now: float) -> None:
        retry_after = header_seconds(response, "Retry-After")
        if retry_after is not None and response.status_code in {429, 503}:
            frees_at = now + retry_after
            self._not_before = max(self._not_before, frees_at)
            if response.status_code == 429:  # noqa: PLR2004
                if self._window_opened is not None:
                    self._window_length = max(frees_at - self._window_opened, 0.1)
                self._remaining = 0
                self._window_opened = None
            return
        limit = _header_int(response, "X-RateLimit-Limit")
        remaining = _header_int(response, "X-RateLimit-Remaining")
        if limit is None or remaining is None:
            return
        self._limit = limit
        if self._window_opened is None or self._remaining is None or remaining > self._remaining:
            # The first answer of a (new) window: it opened when this request was sent.
            self._window_opened = sent_at
            self._remaining = remaining
        else:
            self._remaining = min(self._remaining, remaining)
