"""The API's throttle: stay inside it, learn its window, cope without its headers."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tap_outlign.pacing import RateLimitPacer, WaitBeyondDeadlineError
from tap_outlign.sandbox import SandboxConfig
from tap_outlign.tap import TapOutlign
from tests.conftest import assert_each_once, run_tap

if TYPE_CHECKING:
    from pathlib import Path

LIMIT, WINDOW = 10, 2
PAGE_SIZE = 25
COMPANIES_PATH = "/api/v1/companies"


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    """39 pages of companies + `me`: 40 API requests, 4 windows of 10 requests per 2 s."""
    return SandboxConfig(companies=39 * PAGE_SIZE, rate_limit={"limit": LIMIT, "window": WINDOW})


def api_entries(sandbox: Any) -> list[dict[str, Any]]:
    return [e for e in sandbox.log() if e["path"].startswith("/api/v1/")]


@pytest.mark.parametrize("concurrency", [1, 4])
def test_sync_stays_inside_the_rate_limit(
    sandbox: Any,
    tap_config: dict[str, Any],
    tmp_path: Path,
    concurrency: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """At most one 429 to learn the window (and one spare); wall time is printed, not asserted.

    The window's length is not in Laravel's headers: the pacer learns it from its first
    429 (Retry-After), then waits for each window to free up instead of hitting it.
    """
    config = {**tap_config, "page_size": PAGE_SIZE, "max_concurrency": concurrency}

    started = time.monotonic()
    run = run_tap(config, tmp_path, env={"LOGLEVEL": "INFO"}, timeout=60)
    wall = time.monotonic() - started

    assert run.returncode == 0, run.stderr[-3000:]
    assert_each_once(run.records("companies"), [c["id"] for c in sandbox.companies()])
    log = api_entries(sandbox)
    throttled = [e for e in log if e["status"] == 429]
    assert len(throttled) <= 2, f"{len(throttled)} answers of 429"
    successes = sum(e["status"] == 200 for e in log)
    minimum = (math.ceil(successes / LIMIT) - 1) * WINDOW
    span = log[-1]["t"] - log[0]["t"]
    with capsys.disabled():
        print(  # noqa: T201 - a measured figure, reported on purpose
            f"\n[rate limit {LIMIT}/{WINDOW}s, concurrency {concurrency}] {successes} requests, "
            f"{len(throttled)} x 429: wall {wall:.2f} s (process), API span {span:.2f} s, "
            f"limit imposes >= {minimum} s: {wall / minimum:.2f}x wall, {span / minimum:.2f}x span"
        )


def test_sync_completes_without_rate_limit_headers(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path, companies_ids: list[int]
) -> None:
    """No X-RateLimit-* headers at all; 429s with only Retry-After, and one with nothing."""
    sandbox.configure(
        rate_limit=None,
        faults=[
            {"path": COMPANIES_PATH, "nth": [7], "action": "status", "status": 429},
            {
                "path": COMPANIES_PATH,
                "every": 5,
                "action": "status",
                "status": 429,
                "retry_after": 1,
            },
        ],
    )

    run = run_tap({**tap_config, "page_size": 100}, tmp_path, env={"LOGLEVEL": "INFO"})

    assert run.returncode == 0, run.stderr[-3000:]
    assert_each_once(run.records("companies"), companies_ids)
    assert sum(e["status"] == 429 for e in api_entries(sandbox)) >= 2
    token = sandbox.issue_tokens()["access_token"]
    probe = requests.get(
        sandbox.url + COMPANIES_PATH, headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert probe.status_code == 200
    assert not any(name.lower().startswith("x-ratelimit") for name in probe.headers)


def answer(status: int, **headers: str) -> requests.Response:
    """A bare response carrying only a status and headers (for the pacer alone)."""
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers)
    return response


def throttle(remaining: int) -> requests.Response:
    return answer(200, **{"X-RateLimit-Limit": str(LIMIT), "X-RateLimit-Remaining": str(remaining)})


def test_pacer_reads_concurrent_answers_out_of_order_as_one_window() -> None:
    """An earlier-sent request answered late shows more remaining: not a new window."""
    pacer = RateLimitPacer()
    first = pacer.wait_turn()
    second = pacer.wait_turn()
    pacer.record(throttle(1), sent_at=second)  # the later request, answered first
    pacer.record(throttle(2), sent_at=first)  # the earlier one, answered late
    pacer.wait_turn(deadline=time.monotonic())  # the one left in this window goes at once
    with pytest.raises(WaitBeyondDeadlineError):
        # None left, and the window length is not known yet: only a lone probe may go.
        pacer.wait_turn(deadline=time.monotonic() + 0.2)


def test_pacer_sees_a_new_window_after_a_reset() -> None:
    """A request sent after the lowest count arrived, showing more: the window reset."""
    pacer = RateLimitPacer()
    sent = pacer.wait_turn()
    pacer.record(throttle(0), sent_at=sent)
    probe = pacer.wait_turn()
    pacer.record(throttle(LIMIT - 1), sent_at=probe)
    assert pacer.wait_turn(deadline=time.monotonic()) > 0  # goes at once


def test_pacer_waits_retry_after_and_refuses_a_wait_past_the_deadline() -> None:
    pacer = RateLimitPacer()
    sent = pacer.wait_turn()
    pacer.record(answer(429, **{"Retry-After": "3600"}), sent_at=sent)
    with pytest.raises(WaitBeyondDeadlineError) as raised:
        pacer.wait_turn(deadline=time.monotonic() + 5)
    assert raised.value.wait > 3500


def test_one_pacer_per_tap() -> None:
    config = {"client_id": "c", "client_secret": "s", "api_url": "http://127.0.0.1:9"}
    tap, other = TapOutlign(config=config), TapOutlign(config=config)
    me, companies = tap.streams["me"], tap.streams["companies"]
    assert me.pacer is companies.pacer is tap.pacer  # type: ignore[attr-defined]
    assert other.streams["me"].pacer is not tap.pacer  # type: ignore[attr-defined]
