"""The credential lifecycle over real HTTP: rotation, the token store, concurrency, failures.

The sandbox rotates refresh tokens like Laravel Passport (assumed for Outlign): every
refresh revokes the token it used, so sending an old one shows up as `invalid_grant`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tap_outlign.token_store import StoredTokens, TokenStore, fingerprint
from tests.conftest import (
    TAP,
    TapRun,
    assert_each_once,
    parse_messages,
    remember_output,
    run_tap,
    tap_env,
    write_config,
)

LOGIN_HINT = "tap-outlign-auth login"
#: Companies / page size / latency chosen so a sync takes ~7 s: longer than a 3 s token.
SLOW_SYNC = {"page_size": 10, "max_concurrency": 2}


def counts(sandbox: Any) -> dict[str, Any]:
    """The sandbox's counters (refresh_grants, invalid_grant, status, ...)."""
    result: dict[str, Any] = sandbox.state()["counts"]
    return result


def store_of(config: dict[str, Any]) -> TokenStore:
    """The token store the tap with `config` uses."""
    return TokenStore(
        config["token_store_path"], api_url=config["api_url"], client_id=config["client_id"]
    )


def assert_one_login_error(run: TapRun | subprocess.CompletedProcess[str]) -> str:
    """Exactly one `tap-outlign: error:` line naming the login command, no traceback."""
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if ": error: " in line]
    assert len(lines) == 1, run.stderr
    [line] = lines
    assert line.startswith("tap-outlign: error: ")
    assert LOGIN_HINT in line
    return line


def test_refreshes_mid_sync_and_the_next_run_continues_from_the_store(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path, companies_ids: list[int]
) -> None:
    sandbox.configure(token_lifetime=3, latency_ms=500)
    config = {**tap_config, **SLOW_SYNC}

    started = time.monotonic()
    first = run_tap(config, tmp_path)
    took = time.monotonic() - started

    assert first.returncode == 0, first.stderr
    assert took > 5, "the sync must outlive one access token"
    assert_each_once(first.records("companies"), companies_ids)
    after_first = counts(sandbox)
    assert after_first["refresh_grants"] >= 3  # the seed, then at least two mid-sync
    # Refreshed ahead of expiry: no request was sent with an expired token.
    assert "401" not in after_first["status"], after_first["status"]

    sandbox.configure(latency_ms=0)
    second = run_tap(config, tmp_path)  # the same config: its seed token is revoked by now

    assert second.returncode == 0, second.stderr
    assert_each_once(second.records("companies"), companies_ids)
    assert counts(sandbox)["invalid_grant"] == 0
    stored = store_of(config).load()
    assert stored is not None
    assert stored.descends_from(config["refresh_token"])


@pytest.mark.parametrize("stored_access", ["absent", "expired"])
def test_three_processes_at_once_share_one_refresh(
    sandbox: Any,
    tap_config: dict[str, Any],
    tmp_path: Path,
    companies_ids: list[int],
    stored_access: str,
) -> None:
    store = store_of(tap_config)
    if stored_access == "expired":
        warm_up = run_tap(tap_config, tmp_path)
        assert warm_up.returncode == 0, warm_up.stderr
        chain = store.load()
        assert chain is not None
        with store.locked():
            store.save(dataclasses.replace(chain, access_expires_at=time.time() - 60))
    before = counts(sandbox)["refresh_grants"]
    config_file = write_config(tap_config, tmp_path, "shared-config.json")

    processes = [
        subprocess.Popen(
            [TAP, "--config", str(config_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=tap_env(),
        )
        for _ in range(3)
    ]
    try:
        outputs = [process.communicate(timeout=120) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
    for stdout, stderr in outputs:
        remember_output(stdout, stderr)

    for process, (stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
        records = [
            m["record"]
            for m in parse_messages(stdout)
            if m["type"] == "RECORD" and m["stream"] == "companies"
        ]
        assert_each_once(records, companies_ids)
    assert counts(sandbox)["invalid_grant"] == 0
    assert counts(sandbox)["refresh_grants"] - before == 1, "one refresh serves all three"


def test_a_new_login_in_the_config_wins_over_the_stored_chain(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path, companies_ids: list[int]
) -> None:
    first = run_tap(tap_config, tmp_path)
    assert first.returncode == 0, first.stderr
    old_chain = store_of(tap_config).load()
    assert old_chain is not None
    # The user logs in again (a new seed); the old chain's token is revoked meanwhile, so
    # only the new seed can make this run work.
    new_seed = sandbox.issue_tokens()["refresh_token"]
    sandbox.revoke(old_chain.refresh_token)

    run = run_tap({**tap_config, "refresh_token": new_seed}, tmp_path)

    assert run.returncode == 0, run.stderr
    assert_each_once(run.records("companies"), companies_ids)
    assert counts(sandbox)["invalid_grant"] == 0
    chain = store_of(tap_config).load()
    assert chain is not None
    assert chain.descends_from(new_seed)
    assert not chain.descends_from(tap_config["refresh_token"])


def test_a_refused_configured_token_falls_back_to_the_store_once(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path, companies_ids: list[int]
) -> None:
    first = run_tap(tap_config, tmp_path)
    assert first.returncode == 0, first.stderr
    chain = store_of(tap_config).load()
    assert chain is not None
    with store_of(tap_config).locked():  # make the next run refresh
        store_of(tap_config).save(dataclasses.replace(chain, access_expires_at=time.time() - 1))
    # A refresh token the store never held and that the server refuses (e.g. a stale
    # value pasted into the config): the run goes on with the store's chain.
    stale = sandbox.issue_tokens()["refresh_token"]
    sandbox.revoke(stale)
    config = {**tap_config, "refresh_token": stale}

    second = run_tap(config, tmp_path)
    third = run_tap(config, tmp_path, env={"LOGLEVEL": "INFO"})

    for run in (second, third):
        assert run.returncode == 0, run.stderr
        assert_each_once(run.records("companies"), companies_ids)
    assert counts(sandbox)["invalid_grant"] == 1, "a refused token is not sent again"


def test_a_revoked_login_ends_the_run_with_one_line(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path
) -> None:
    sandbox.revoke()

    started = time.monotonic()
    run = run_tap(tap_config, tmp_path, env={"LOGLEVEL": "INFO"}, timeout=60)

    assert time.monotonic() - started < 30
    line = assert_one_login_error(run)
    assert "expired" in line or "revoked" in line
    assert counts(sandbox)["invalid_grant"] == 1, "a refused token is not retried"


def test_a_revoked_stored_chain_ends_the_run_with_one_line(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path
) -> None:
    sandbox.configure(token_lifetime=3)
    first = run_tap(tap_config, tmp_path)
    assert first.returncode == 0, first.stderr
    sandbox.revoke()  # the user revoked the app in Outlign

    started = time.monotonic()
    run = run_tap(tap_config, tmp_path, env={"LOGLEVEL": "INFO"}, timeout=60)

    assert time.monotonic() - started < 30
    assert_one_login_error(run)


def test_store_survives_sigkill_mid_sync(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path, companies_ids: list[int]
) -> None:
    sandbox.configure(token_lifetime=3, latency_ms=300)
    config = {**tap_config, **SLOW_SYNC, "max_concurrency": 1}
    config_file = write_config(config, tmp_path)
    process = subprocess.Popen(
        [TAP, "--config", str(config_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=tap_env({"LOGLEVEL": "WARNING"}),
    )
    try:
        # Kill once a refresh has been saved and pages are flowing (between refreshes).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = counts(sandbox)
            if state["refresh_grants"] >= 1 and state["api_requests"] >= 3:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the sync ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL

    path = Path(config["token_store_path"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    json.loads(path.read_text())
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]

    sandbox.configure(latency_ms=0)
    rerun = run_tap(config, tmp_path)

    assert rerun.returncode == 0, rerun.stderr
    assert_each_once(rerun.records("companies"), companies_ids)
    assert counts(sandbox)["invalid_grant"] == 0


def test_an_answer_lost_after_rotation_fails_clearly(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path
) -> None:
    """The server rotates, then the connection drops before the answer arrives.

    The new refresh token never reached the tap, and Passport has revoked the one it sent:
    only a new login helps. The tap retries the same token once (in case the request never
    arrived), then re-reads the store (in case another process finished the rotation), then
    stops with one line that says how to log in again; it does not hang or loop.
    """
    sandbox.configure(faults=[{"path": "/oauth/token", "action": "drop_after", "nth": [1]}])

    started = time.monotonic()
    run = run_tap(tap_config, tmp_path, env={"LOGLEVEL": "INFO"}, timeout=60)

    assert time.monotonic() - started < 30
    line = assert_one_login_error(run)
    assert "rotated" in line
    assert counts(sandbox)["refresh_grants"] == 1
    assert counts(sandbox)["token_requests"] == 2  # the send, and one retry
    assert counts(sandbox)["invalid_grant"] == 1


@pytest.mark.parametrize(
    "fault",
    [
        {"action": "reset", "nth": [1]},  # connection reset before the server did anything
        {"action": "status", "status": 503, "retry_after": 0, "nth": [1]},
        {"action": "status", "status": 429, "retry_after": 1, "nth": [1]},
    ],
    ids=["reset", "503", "429"],
)
def test_token_requests_the_server_did_not_process_are_retried(
    sandbox: Any,
    tap_config: dict[str, Any],
    tmp_path: Path,
    companies_ids: list[int],
    fault: dict[str, Any],
) -> None:
    sandbox.configure(faults=[{"path": "/oauth/token", **fault}])

    run = run_tap(tap_config, tmp_path)

    assert run.returncode == 0, run.stderr
    assert_each_once(run.records("companies"), companies_ids)
    assert counts(sandbox)["invalid_grant"] == 0
    assert counts(sandbox)["refresh_grants"] == 1


def test_a_401_mid_sync_refreshes_once_and_retries(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path, companies_ids: list[int]
) -> None:
    sandbox.configure(
        faults=[{"path": "/api/v1/companies", "action": "status", "status": 401, "nth": [3]}]
    )

    run = run_tap({**tap_config, "max_concurrency": 1}, tmp_path)

    assert run.returncode == 0, run.stderr
    assert_each_once(run.records("companies"), companies_ids)
    assert counts(sandbox)["refresh_grants"] == 2  # the seed, then once for the 401
    assert counts(sandbox)["invalid_grant"] == 0


def test_a_configured_access_token_is_used_while_valid(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path, companies_ids: list[int]
) -> None:
    pair = sandbox.issue_tokens()
    config = {**tap_config, "access_token": pair["access_token"]}

    run = run_tap(config, tmp_path)

    assert run.returncode == 0, run.stderr
    assert_each_once(run.records("companies"), companies_ids)
    assert counts(sandbox)["refresh_grants"] == 0


def test_an_expired_configured_access_token_is_not_sent(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path, companies_ids: list[int]
) -> None:
    sandbox.configure(token_lifetime=1)
    stale = sandbox.issue_tokens()["access_token"]
    sandbox.configure(token_lifetime=3600)
    time.sleep(1.1)

    run = run_tap({**tap_config, "access_token": stale}, tmp_path)

    assert run.returncode == 0, run.stderr
    assert_each_once(run.records("companies"), companies_ids)
    assert counts(sandbox)["refresh_grants"] == 1
    assert "401" not in counts(sandbox)["status"]


def test_no_refresh_token_anywhere_names_the_login_command(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path
) -> None:
    config = {k: v for k, v in tap_config.items() if k != "refresh_token"}

    run = run_tap(config, tmp_path, env={"LOGLEVEL": "INFO"})

    assert_one_login_error(run)
    assert counts(sandbox)["token_requests"] == 0


def test_default_store_path_is_under_xdg_state_home(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path
) -> None:
    config = {k: v for k, v in tap_config.items() if k != "token_store_path"}
    state_home = tmp_path / "xdg-state"

    run = run_tap(config, tmp_path, env={"XDG_STATE_HOME": str(state_home)})

    assert run.returncode == 0, run.stderr
    path = state_home / "tap-outlign" / "tokens.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    document = json.loads(path.read_text())
    [chain] = document["credentials"].values()
    assert fingerprint(tap_config["refresh_token"]) in chain["lineage"]
    assert os.environ.get("XDG_STATE_HOME") != str(state_home)


@pytest.mark.parametrize(("seconds_left", "refreshes"), [(30, 1), (600, 0)])
def test_refreshes_a_tenth_of_the_lifetime_ahead_of_expiry(
    sandbox: Any,
    tap_config: dict[str, Any],
    tmp_path: Path,
    seconds_left: float,
    refreshes: int,
) -> None:
    """A 1 h token is refreshed in its last 60 s, not used until it is about to lapse."""
    pair = sandbox.issue_tokens()
    now = time.time()
    store = store_of(tap_config)
    with store.locked():
        store.save(
            StoredTokens(
                refresh_token=pair["refresh_token"],
                access_token=pair["access_token"],
                access_expires_at=now + seconds_left,
                lineage=[fingerprint(pair["refresh_token"])],
                updated_at=now + seconds_left - 3600,
            )
        )
    config = {k: v for k, v in tap_config.items() if k != "refresh_token"}

    run = run_tap(config, tmp_path)

    assert run.returncode == 0, run.stderr
    assert counts(sandbox)["refresh_grants"] == refreshes


def test_a_token_endpoint_that_never_answers_does_not_cost_the_login(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path, companies_ids: list[int]
) -> None:
    """Twice no answer (connection reset before processing): an outage, not a lost login."""
    sandbox.configure(faults=[{"path": "/oauth/token", "action": "reset", "nth": [1, 2]}])

    failed = run_tap(tap_config, tmp_path, env={"LOGLEVEL": "INFO"}, timeout=60)
    rerun = run_tap(tap_config, tmp_path)

    line = assert_one_login_error(failed)
    assert "run again later" in line
    assert rerun.returncode == 0, rerun.stderr
    assert_each_once(rerun.records("companies"), companies_ids)
    assert counts(sandbox)["invalid_grant"] == 0
