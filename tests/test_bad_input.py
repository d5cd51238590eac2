"""Bad settings, bad catalog/state files and odd API answers: one clear line, no traceback.

Each case runs the real `tap-outlign` at the default log level (INFO), checks the exit
status, that exactly one line reports the error, that no traceback is printed, and that
no secret value is echoed.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import TAP, TapRun, run_command, run_tap

if TYPE_CHECKING:
    from pathlib import Path

COMPANIES_PATH = "/api/v1/companies"
SECRET_SETTINGS = ("client_secret", "refresh_token", "access_token")
#: cli.py's last-resort line for an exception nobody turned into a clear message.
GENERIC = re.compile(r"error: unexpected [A-Za-z]+(Error|Exception)\b")


def error_lines(run: TapRun) -> list[str]:
    """Lines reporting an error: ours (`tap-outlign: error: …`) or click's (`Error: …`)."""
    return [line for line in run.stderr.splitlines() if "error:" in line.lower()]


def assert_one_clear_line(run: TapRun, config: dict[str, Any], *needles: str) -> str:
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    lines = error_lines(run)
    assert len(lines) == 1, run.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not GENERIC.search(lines[0]), f"the generic fallback, not a clear line: {lines[0]}"
    for name in SECRET_SETTINGS:
        value = config.get(name)
        if isinstance(value, str) and value:
            assert value not in run.stdout + run.stderr, f"{name} echoed"
    return lines[0]


# -- settings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"page_size": "a hundred"}, "page_size"),
        ({"page_size": 0}, "page_size"),
        ({"client_id": None}, "client_id"),
        ({"client_secret": 12345678}, "client_secret"),
        ({"api_url": "http://go.outlign.co"}, "api_url"),
        ({"api_url": "ftp://127.0.0.1"}, "api_url"),
        ({"max_concurrency": 1000}, "max_concurrency"),
        pytest.param({"start_date": "last tuesday"}, "start_date"),
    ],
    ids=[
        "page_size-type",
        "page_size-zero",
        "client_id-missing",
        "secret-type",
        "http-non-loopback",
        "ftp",
        "concurrency-range",
        "start_date",
    ],
)
def test_bad_setting(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path, patch: dict[str, Any], needle: str
) -> None:
    config = {**tap_config, **patch}
    config = {k: v for k, v in config.items() if v is not None}

    run = run_tap(config, tmp_path, env={"LOGLEVEL": "INFO"}, timeout=30)

    assert_one_clear_line(run, tap_config, needle)
    assert not run.messages
    assert not [e for e in sandbox.log() if e["path"].startswith("/api/")]


def test_a_wrong_secret_value_is_not_echoed(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path
) -> None:
    """A secret of the wrong type is named, its value never shown."""
    config = {**tap_config, "refresh_token": ["def50200-not-a-string-secret"]}

    run = run_tap(config, tmp_path, env={"LOGLEVEL": "INFO"}, timeout=30)

    assert_one_clear_line(run, tap_config, "refresh_token")
    assert "def50200-not-a-string-secret" not in run.stdout + run.stderr


# -- config, catalog and state files ----------------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


BAD_DOCUMENTS = {
    "not-json": "{oops",
    "not-an-object": "[1, 2]",
    "empty": "",
}
BAD_CATALOGS = {
    "streams-not-a-list": '{"streams": {"companies": {}}}',
    "stream-not-an-object": '{"streams": [1]}',
    "stream-id-not-a-string": '{"streams": [{"tap_stream_id": 5}]}',
    "metadata-not-a-list": '{"streams": [{"tap_stream_id": "companies", "metadata": {}}]}',
}
BAD_STATES = {
    "bookmarks-not-an-object": '{"bookmarks": []}',
    "bookmark-not-an-object": '{"bookmarks": {"companies": 7}}',
    "bookmark-not-a-timestamp": json.dumps(
        {"bookmarks": {"companies": {"replication_key": "updated_at", "replication_key_value": 5}}}
    ),
}


@pytest.mark.parametrize("kind", ["catalog", "state"])
@pytest.mark.parametrize("text", BAD_DOCUMENTS.values(), ids=BAD_DOCUMENTS.keys())
def test_unusable_catalog_or_state_file(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path, kind: str, text: str
) -> None:
    path = write(tmp_path, f"{kind}.json", text)

    run = run_tap(tap_config, tmp_path, f"--{kind}", path, env={"LOGLEVEL": "INFO"}, timeout=30)

    assert_one_clear_line(run, tap_config, kind, path)


@pytest.mark.parametrize("text", BAD_CATALOGS.values(), ids=BAD_CATALOGS.keys())
def test_wrong_shape_catalog(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path, text: str
) -> None:
    path = write(tmp_path, "catalog.json", text)

    run = run_tap(tap_config, tmp_path, "--catalog", path, env={"LOGLEVEL": "INFO"}, timeout=30)

    assert_one_clear_line(run, tap_config, "catalog", path, "--discover")


@pytest.mark.parametrize("text", BAD_STATES.values(), ids=BAD_STATES.keys())
def test_wrong_shape_state(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path, text: str
) -> None:
    path = write(tmp_path, "state.json", text)

    run = run_tap(tap_config, tmp_path, "--state", path, env={"LOGLEVEL": "INFO"}, timeout=30)

    assert_one_clear_line(run, tap_config, "state", path)


@pytest.mark.parametrize("kind", ["catalog", "state"])
@pytest.mark.parametrize("problem", ["missing", "a-directory"])
def test_catalog_or_state_path_that_cannot_be_read(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path, kind: str, problem: str
) -> None:
    """(Tests run as root here, so an unreadable file is a directory or a missing path.)"""
    path = tmp_path / "nowhere.json" if problem == "missing" else tmp_path / "a-dir"
    if problem == "a-directory":
        path.mkdir()

    run = run_tap(
        tap_config, tmp_path, f"--{kind}", str(path), env={"LOGLEVEL": "INFO"}, timeout=30
    )

    assert_one_clear_line(run, tap_config, str(path))


def test_a_good_state_file_still_works(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path
) -> None:
    """The checks reject only what is broken: a state the tap itself wrote is accepted."""
    first = run_tap(tap_config, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    path = write(tmp_path, "state.json", json.dumps(first.states()[-1]))

    again = run_tap(tap_config, tmp_path, "--state", path)

    assert again.returncode == 0, again.stderr[-3000:]


def run_with_config_file(path: str) -> TapRun:
    """The tap with only this --config file (run_tap would add a good one too)."""
    proc = run_command([TAP, "--config", path], env={"LOGLEVEL": "INFO"}, timeout=30)
    return TapRun(proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.parametrize(
    "text",
    [None, "{oops", "[]", "", '{"client_secret": "s3cr3t-in-a-broken-file", '],
    ids=["missing", "not-json", "not-an-object", "empty", "truncated-with-secret"],
)
def test_unusable_config_file(tmp_path: Path, text: str | None) -> None:
    """One line, no traceback, and never the file's content (it holds secrets)."""
    path = (
        str(tmp_path / "missing-config.json")
        if text is None
        else write(tmp_path, "broken-config.json", text)
    )

    run = run_with_config_file(path)

    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    [line] = error_lines(run)
    assert path in line, "the line names the file"
    assert "s3cr3t-in-a-broken-file" not in run.stdout + run.stderr


# -- API answers of an unexpected shape ------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (COMPANIES_PATH, {"unexpected": True}),
        (COMPANIES_PATH, {"data": "not a list"}),
        (COMPANIES_PATH, {"data": [1, 2, 3]}),
        ("/api/v1/me", []),
        ("/api/v1/me", {"data": {"no": "id"}}),
    ],
    ids=["object", "data-string", "data-numbers", "me-list", "me-no-id"],
)
def test_api_answer_of_an_unexpected_shape(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path, path: str, body: Any
) -> None:
    """A 200 whose JSON is not a shape we know: not retried, one line naming the stream."""
    sandbox.configure(
        faults=[{"path": path, "always": True, "action": "status", "status": 200, "body": body}]
    )

    run = run_tap(tap_config, tmp_path, env={"LOGLEVEL": "INFO"}, timeout=30)

    stream = "me" if path.endswith("/me") else "companies"
    line = assert_one_clear_line(run, tap_config, f"'{stream}'", "unexpected answer")
    assert "report" in line
    hits = [e for e in sandbox.log() if e["path"] == path]
    assert len(hits) == 1, "an answer that will not change was retried"
