"""Failing pages, throttling and a killed process: every record arrives, state never runs ahead.

Everything runs over real HTTP against the sandbox, with the tap as a subprocess. Timing
claims are checked against the sandbox's own clock (its request log), never the test's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from typing import TYPE_CHECKING, Any

import pytest

from tap_outlign.sandbox import SandboxConfig
from tests.conftest import (
    TAP,
    TapRun,
    assert_each_once,
    parse_complete_lines,
    remember_output,
    run_tap,
    tap_env,
    write_config,
)

if TYPE_CHECKING:
    from pathlib import Path

COMPANIES = "/api/v1/companies"
#: Every fault in one list: 429 on every 4th companies request, and single 5xx / reset.
MIXED_FAULTS = [
    {"path": COMPANIES, "every": 4, "action": "status", "status": 429, "retry_after": 1},
    {"path": COMPANIES, "nth": [2], "action": "status", "status": 503},
    {"path": COMPANIES, "nth": [5], "action": "status", "status": 502},
    {"path": COMPANIES, "nth": [7], "action": "status", "status": 500},
    {"path": COMPANIES, "nth": [10], "action": "reset"},
]
#: By when (s after the server sent a 429 held 50 ms) the tap has surely seen it: the
#: latency, plus ample slack for a loaded CI machine.
SEEN_BY = 0.05 + 0.25


def api_log(sandbox: Any) -> list[dict[str, Any]]:
    """The sandbox's log of /api/v1 requests, in arrival order."""
    return sorted(
        (e for e in sandbox.log() if e["path"].startswith("/api/v1/")), key=lambda e: e["t"]
    )


def throttled(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The log entries answered with a `Retry-After`."""
    return [e for e in log if e["retry_after"] is not None]


def assert_clean_failure(run: TapRun, *, stream: str, secrets: list[str]) -> str:
    """Non-zero exit, exactly one error line naming the stream, no traceback, no secret."""
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    lines = run.error_lines()
    assert len(lines) == 1, run.stderr[-3000:]
    assert f"'{stream}'" in lines[0]
    for secret in secrets:
        assert secret not in run.stdout + run.stderr
    return lines[0]


def assert_state_within_records(run: TapRun, stream: str, carried: str | None = None) -> None:
    """No STATE claims a bookmark past the newest `updated_at` emitted before it.

    `carried` is the bookmark of the state the run started from (it may repeat that).
    """
    newest: str | None = carried
    for message in run.messages:
        if message["type"] == "RECORD" and message["stream"] == stream:
            value = message["record"]["updated_at"]
            newest = value if newest is None or value > newest else newest
        elif message["type"] == "STATE":
            bookmark = message["value"].get("bookmarks", {}).get(stream, {})
            for claims in (bookmark, bookmark.get("progress_markers") or {}):
                claimed = claims.get("replication_key_value")
                if claimed is not None:
                    assert newest is not None, f"STATE claims {claimed} before any record"
                    assert claimed <= newest, f"STATE claims {claimed}, newest emitted {newest}"


# -- 1. throttling and transient failures ------------------------------------------------


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    """2,000 companies: 20 pages of 100."""
    return SandboxConfig(companies=2000)


def test_mixed_faults_sequential_emit_each_once_and_honour_retry_after(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path, companies_ids: list[int]
) -> None:
    """With one request at a time, nothing at all reaches the API before Retry-After passed."""
    sandbox.configure(faults=MIXED_FAULTS)

    config = {**tap_config, "page_size": 100, "max_concurrency": 1}
    run = run_tap(config, tmp_path, env={"LOGLEVEL": "INFO"}, timeout=60)

    assert run.returncode == 0, run.stderr[-3000:]
    assert_each_once(run.records("companies"), companies_ids)
    log = api_log(sandbox)
    statuses = {e["status"] for e in log}
    assert {429, 503, 502, 500, None} <= statuses  # every fault fired (None: the reset)
    assert len(throttled(log)) >= 5
    for entry in throttled(log):
        free_at = entry["t"] + entry["retry_after"]
        early = [e for e in log if entry["t"] < e["t"] < free_at]
        assert not early, f"requests inside Retry-After of the 429 at {entry['t']}: {early}"


def test_mixed_faults_concurrent_emit_each_once_and_retries_wait(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path, companies_ids: list[int]
) -> None:
    """With 4 in flight, requests sent before the tap saw the 429 can't be recalled.

    Every API answer is held 50 ms (`latency_ms`). A request another thread sent before the
    429 reached the tap (or whose answer arrived in the same instant as the 429) may still
    arrive inside the Retry-After window, but only right at its start: nothing arrives
    later than `SEEN_BY` after the 429 until the window is over, and the throttled page
    itself is retried only after the full window.
    """
    sandbox.configure(faults=MIXED_FAULTS, latency_ms=50)

    # Injected 429s land on whichever page is 4th: allow an unlucky page a few more tries.
    config = {**tap_config, "page_size": 100, "max_request_attempts": 12}
    assert "max_concurrency" not in config  # the default: 4
    run = run_tap(config, tmp_path, env={"LOGLEVEL": "INFO"}, timeout=60)

    assert run.returncode == 0, run.stderr[-3000:]
    assert_each_once(run.records("companies"), companies_ids)
    log = api_log(sandbox)
    pages = {e["query"].get("page") for e in log if e["path"] == COMPANIES}
    assert len(pages) == 20
    assert len(throttled(log)) >= 4
    for entry in throttled(log):
        free_at = entry["t"] + entry["retry_after"]
        page = entry["query"].get("page")
        inside = [e for e in log if entry["t"] < e["t"] < free_at]
        late = [e for e in inside if e["t"] >= entry["t"] + SEEN_BY]
        assert not late, f"sent after the tap saw the 429 at {entry['t']}: {late}"
        assert all(e["query"].get("page") != page for e in inside), "the retry did not wait"
        retries = [e for e in log if e["t"] > entry["t"] and e["query"].get("page") == page]
        assert retries, f"page {page} was never asked for again"


# -- 2. broken 200 answers -------------------------------------------------------------------


@pytest.mark.parametrize("action", ["truncate", "not_json"])
def test_a_broken_200_page_is_retried(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path, companies_ids: list[int], action: str
) -> None:
    sandbox.configure(faults=[{"path": COMPANIES, "nth": [3, 4], "action": action}])

    run = run_tap({**tap_config, "page_size": 100}, tmp_path, env={"LOGLEVEL": "INFO"})

    assert run.returncode == 0, run.stderr[-3000:]
    assert_each_once(run.records("companies"), companies_ids)
    faulted = [e for e in sandbox.log() if e["fault"] == action]
    assert len(faulted) == 2


def test_a_page_slower_than_the_timeout_is_retried(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path, companies_ids: list[int]
) -> None:
    # The 2nd companies request answers after 2.5 s; the tap gives up reading at 1 s.
    sandbox.configure(faults=[{"path": COMPANIES, "nth": [2], "action": "slow", "delay": 2.5}])

    run = run_tap(
        {**tap_config, "page_size": 100, "request_timeout": 1, "max_concurrency": 1},
        tmp_path,
        env={"LOGLEVEL": "INFO"},
    )

    assert run.returncode == 0, run.stderr[-3000:]
    assert_each_once(run.records("companies"), companies_ids)
    assert "timed out" in run.stderr.lower()
    pages = [e["query"]["page"] for e in sandbox.log() if e["path"] == COMPANIES]
    assert pages.count("2") == 2, "the timed-out page was asked for again"


# -- 4. an endpoint that never recovers ------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        {"action": "status", "status": 503},
        {"action": "reset"},
        {"action": "status", "status": 429, "retry_after": 3600},
    ],
    ids=["503", "reset", "429-retry-after-an-hour"],
)
def test_a_permanently_failing_endpoint_ends_within_the_budget(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path, fault: dict[str, Any]
) -> None:
    """Pages 1-3 succeed, then the API fails for good: one clear line, state not ahead."""
    sandbox.configure(faults=[{"path": COMPANIES, "nth": list(range(4, 200)), **fault}])
    config = {
        **tap_config,
        "page_size": 100,
        "max_concurrency": 1,
        "max_request_attempts": 4,
        "retry_budget_seconds": 5,
    }

    started = time.monotonic()
    run = run_tap(config, tmp_path, env={"LOGLEVEL": "INFO"}, timeout=60)
    elapsed = time.monotonic() - started

    line = assert_clean_failure(
        run,
        stream="companies",
        secrets=[tap_config["client_secret"], tap_config["refresh_token"]],
    )
    assert "run again" in line
    assert elapsed < 30, f"took {elapsed:.1f} s with a 5 s retry budget"
    failed = [e for e in sandbox.log() if e["fault"] is not None]
    assert 1 <= len(failed) <= 4
    assert len(run.records("companies")) <= 300
    assert_state_within_records(run, "companies")


# -- 5. killed mid-sync, then resumed -------------------------------------------------------


def kill_mid_sync(config: dict[str, Any], tmp_path: Path, *args: str, after_records: int) -> TapRun:
    """Start the tap, SIGKILL it once `after_records` RECORD lines were printed."""
    config_file = write_config(config, tmp_path, "killed-config.json")
    proc = subprocess.Popen(
        [TAP, "--config", str(config_file), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=tap_env({"LOGLEVEL": "INFO"}),
    )
    assert proc.stdout is not None
    lines: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        records = 0
        for line in proc.stdout:
            lines.append(line)
            records += b'"type":"RECORD"' in line
            if records >= after_records or time.monotonic() > deadline:
                break
        os.kill(proc.pid, signal.SIGKILL)
        rest, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    stdout = b"".join(lines).decode() + rest.decode(errors="replace")
    remember_output(stdout, stderr.decode(errors="replace"))
    assert proc.returncode == -signal.SIGKILL, "the tap finished before it could be killed"
    return TapRun(
        proc.returncode, stdout, stderr.decode(errors="replace"), parse_complete_lines(stdout)
    )


def resume_args(killed: TapRun, tmp_path: Path) -> list[str]:
    """`--state <file>` holding the last STATE the killed run emitted (none: no args)."""
    states = killed.states()
    if not states:
        return []
    path = tmp_path / "resume-state.json"
    path.write_text(json.dumps(states[-1]))
    return ["--state", str(path)]


def full_table_catalog(tap_config: dict[str, Any], tmp_path: Path) -> Path:
    """The discovered catalog with companies selected and set to FULL_TABLE."""
    run = run_tap(tap_config, tmp_path, "--discover")
    assert run.returncode == 0, run.stderr[-3000:]
    catalog = json.loads(run.stdout)
    for stream in catalog["streams"]:
        stream["replication_method"] = "FULL_TABLE"
        stream["replication_key"] = None
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = True
                entry["metadata"]["forced-replication-method"] = "FULL_TABLE"
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(catalog))
    return path


@pytest.mark.parametrize("method", ["INCREMENTAL", "FULL_TABLE"])
def test_killed_first_sync_reruns_without_losing_a_company(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path, method: str
) -> None:
    """Killed before any STATE (the SDK writes one every 10,000 records): a full rerun."""
    sandbox.configure(companies=600, latency_ms=100)
    expected = [c["id"] for c in sandbox.companies()]
    config = {**tap_config, "page_size": 50, "max_concurrency": 1}
    catalog_args = (
        ["--catalog", str(full_table_catalog(config, tmp_path))] if method == "FULL_TABLE" else []
    )

    killed = kill_mid_sync(config, tmp_path, *catalog_args, after_records=120)
    first = killed.records("companies")
    assert 0 < len(first) < len(expected)
    assert_state_within_records(killed, "companies")

    sandbox.configure(latency_ms=0)
    resumed = run_tap(config, tmp_path, *catalog_args, *resume_args(killed, tmp_path))

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    second = resumed.records("companies")
    emitted = {r["id"] for r in first} | {r["id"] for r in second}
    assert sorted(emitted) == expected
    assert_each_once(second, [r["id"] for r in second])
    assert_state_within_records(resumed, "companies")


def test_killed_incremental_sync_resumes_from_its_last_state(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path
) -> None:
    """A bookmark exists; companies change; the next sync is killed, then resumed.

    The resume uses the last STATE the killed run printed, or (none printed) the state the
    orchestrator kept from the run before, as Meltano does. Every changed company arrives
    in one of the two runs, and the killed run's STATE never runs ahead of its records.
    """
    sandbox.configure(companies=600)
    config = {**tap_config, "page_size": 50, "max_concurrency": 1}
    baseline = run_tap(config, tmp_path)
    assert baseline.returncode == 0, baseline.stderr[-3000:]
    kept = baseline.states()[-1]
    assert kept["bookmarks"]["companies"]["replication_key_value"]
    changed = sandbox.mutate(update=list(range(5, 600, 6)))["updated"]
    state_file = tmp_path / "kept-state.json"
    state_file.write_text(json.dumps(kept))

    sandbox.configure(latency_ms=100)
    killed = kill_mid_sync(config, tmp_path, "--state", str(state_file), after_records=30)
    first = killed.records("companies")
    assert 0 < len(first) < len(changed)
    assert {r["id"] for r in first} <= set(changed)
    bookmark = kept["bookmarks"]["companies"]["replication_key_value"]
    assert_state_within_records(killed, "companies", carried=bookmark)

    sandbox.configure(latency_ms=0)
    resume = resume_args(killed, tmp_path) or ["--state", str(state_file)]
    resumed = run_tap(config, tmp_path, *resume)

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    second = resumed.records("companies")
    assert_each_once(second, [r["id"] for r in second])
    assert {r["id"] for r in first} | {r["id"] for r in second} >= set(changed)
    assert_state_within_records(resumed, "companies", carried=bookmark)
