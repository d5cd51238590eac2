"""Shared fixtures: a sandbox Outlign API on loopback, a tap config for it, and a tap runner.

The tap runs as a real `tap-outlign` process (the way Meltano runs it), so tests see its
exit status, its stdout Singer messages and its stderr exactly as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tap_outlign.sandbox import SandboxConfig, SandboxServer

BIN = Path(sys.executable).parent
TAP = str(BIN / "tap-outlign")
AUTH = str(BIN / "tap-outlign-auth")

#: Every secret any test's sandbox handed out, so the leak check can look for all of them.
ISSUED_SECRETS: set[str] = set()
#: Everything the tap printed in any test, for the session-wide leak check.
CAPTURED_OUTPUT: list[str] = []


@dataclass
class TapRun:
    """What one tap process did: its exit status, messages and log."""

    returncode: int
    stdout: str
    stderr: str
    messages: list[dict[str, Any]] = field(default_factory=list)

    def records(self, stream: str) -> list[dict[str, Any]]:
        """The RECORD payloads of one stream, in order."""
        return [
            m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream
        ]

    def states(self) -> list[dict[str, Any]]:
        """Every STATE value, in order."""
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    def error_lines(self) -> list[str]:
        """The stderr lines that report an error: the tap's own line and any ERROR log."""
        return [
            line for line in self.stderr.splitlines() if ": error: " in line or "| ERROR" in line
        ]


def parse_messages(stdout: str) -> list[dict[str, Any]]:
    """Singer messages from a tap's stdout (every line must be one JSON message)."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def remember_output(*texts: str) -> None:
    """Keep process output for the session-wide secret leak check."""
    CAPTURED_OUTPUT.extend(texts)


def tap_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment tap processes run in: DEBUG logging, so leaks would show."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_OUTLIGN_")}
    env["LOGLEVEL"] = os.environ.get("TEST_TAP_LOGLEVEL", "DEBUG")
    env.update(extra or {})
    return env


def run_command(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run one of our commands as a user would, keeping its output for the leak check."""
    proc = subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=tap_env(env),
        check=False,
    )
    remember_output(proc.stdout, proc.stderr)
    return proc


def run_tap(
    config: dict[str, Any],
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> TapRun:
    """Run `tap-outlign --config <config>` with extra args; parse what it printed."""
    config_file = write_config(config, tmp_path)
    proc = run_command([TAP, "--config", str(config_file), *args], env=env, timeout=timeout)
    if {"--discover", "--about"} & set(args):
        messages = []  # a catalog or a description, not Singer messages
    elif proc.returncode == 0:
        messages = parse_messages(proc.stdout)
    else:
        messages = parse_complete_lines(proc.stdout)
    return TapRun(proc.returncode, proc.stdout, proc.stderr, messages)


def parse_complete_lines(stdout: str) -> list[dict[str, Any]]:
    """Messages up to the first line cut short (by a kill or a failure)."""
    messages = []
    for line in stdout.splitlines():
        try:
            messages.append(json.loads(line))
        except ValueError:
            break
    return messages


def write_config(config: dict[str, Any], tmp_path: Path, name: str = "config.json") -> Path:
    """Write a tap config file the way Meltano does (a fresh file per run)."""
    path = tmp_path / name
    path.write_text(json.dumps(config))
    return path


def assert_each_once(records: list[dict[str, Any]], expected_ids: list[int]) -> None:
    """Every expected id arrived exactly once, and nothing else did."""
    counts = Counter(r["id"] for r in records)
    duplicates = {i: n for i, n in counts.items() if n > 1}
    missing = sorted(set(expected_ids) - set(counts))
    unexpected = sorted(set(counts) - set(expected_ids))
    assert not duplicates, f"emitted more than once: {duplicates}"
    assert not missing, f"missing {len(missing)} records, e.g. {missing[:10]}"
    assert not unexpected, f"unexpected records: {unexpected[:10]}"


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    """The sandbox's starting configuration; tests may override this fixture or configure."""
    return SandboxConfig(companies=250)


@pytest.fixture
def sandbox(sandbox_config: SandboxConfig) -> Any:
    """A running sandbox Outlign API on 127.0.0.1, one per test."""
    with SandboxServer(sandbox_config) as server:
        yield server
        ISSUED_SECRETS.update(_flatten(server.secrets()))


def _flatten(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _flatten(v)]
    if isinstance(value, list):
        return [s for v in value for s in _flatten(v)]
    return []


@pytest.fixture
def tap_config(sandbox: Any, tmp_path: Path) -> dict[str, Any]:
    """Settings for a tap logged in to the sandbox, with its own token store."""
    tokens = sandbox.issue_tokens()
    return {
        "api_url": sandbox.url,
        "client_id": sandbox.config.client_id,
        "client_secret": sandbox.config.client_secret,
        "refresh_token": tokens["refresh_token"],
        "token_store_path": str(tmp_path / "store" / "tokens.json"),
        "page_size": 25,
        "request_timeout": 10,
        "max_request_attempts": 6,
        "retry_budget_seconds": 60,
    }


@pytest.fixture
def companies_ids(sandbox: Any) -> list[int]:
    """The ids of every company the sandbox holds right now."""
    return [c["id"] for c in sandbox.companies()]
