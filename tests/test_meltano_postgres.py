"""End to end: sandbox -> `meltano run tap-outlign target-postgres` -> PostgreSQL, twice.

Real processes, real HTTP, a real database: the project's Meltano installs the plugins from
meltano.yml, the second run must load exactly what changed and take its bookmark from
Meltano's state. Needs PostgreSQL at 127.0.0.1:5432 (database `test`, user `postgres`);
skipped without it, except under CI=true where that is a failure.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tap_outlign.sandbox import SandboxConfig, SandboxServer
from tap_outlign.sandbox.oauth import USER

ROOT = Path(__file__).resolve().parent.parent
MELTANO = Path(sys.executable).parent / "meltano"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}
COMPANIES = 120
INSTALL_TIMEOUT = 900
RUN_TIMEOUT = 300
TAP_METRIC = re.compile(r"\btap-outlign\s+METRIC: (\{.*\})")  # Meltano prefixes lines
COMPARED_FIELDS = (
    "id", "name", "domain", "website", "industry", "employee_count", "country", "city",
    "linkedin_url", "description",
)  # fmt: skip


def _connect() -> psycopg.Connection[Any]:
    password = os.environ.get("TARGET_POSTGRES_PASSWORD")
    return psycopg.connect(**PG, password=password, connect_timeout=5, autocommit=True)


@pytest.fixture(scope="module")
def database() -> psycopg.Connection[Any]:
    try:
        connection = _connect()
    except psycopg.OperationalError as error:
        reason = f"PostgreSQL at 127.0.0.1:5432 (database test, user postgres) unreachable: {error}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with connection:
        yield connection


def _meltano(*args: str, env: dict[str, str] | None = None, timeout: float = RUN_TIMEOUT):
    result = subprocess.run(
        [str(MELTANO), *args],
        cwd=ROOT,
        env=env or _base_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"meltano {' '.join(args)} exited {result.returncode}:\n{result.stderr[-4000:]}"
        )
    return result


def _base_env() -> dict[str, str]:
    """This process's environment without settings that would leak into the plugins."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TAP_OUTLIGN_", "TARGET_POSTGRES_", "MELTANO_"))
    }
    env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    if "TARGET_POSTGRES_PASSWORD" in os.environ:
        env["TARGET_POSTGRES_PASSWORD"] = os.environ["TARGET_POSTGRES_PASSWORD"]
    return env


@pytest.fixture(scope="module")
def meltano_installed(database) -> None:
    _meltano("install", "tap-outlign", "target-postgres", timeout=INSTALL_TIMEOUT)


@pytest.fixture
def schema(database):
    name = f"test_outlign_{uuid.uuid4().hex[:12]}"
    yield name
    database.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _emitted(stderr: str, stream: str) -> int:
    """Records the tap reported sending for `stream` (sum of its record_count METRIC lines)."""
    total = 0
    for match in TAP_METRIC.finditer(stderr):
        metric = json.loads(match.group(1))
        if metric.get("metric") == "record_count" and metric["tags"].get("stream") == stream:
            total += int(metric["value"])
    return total


def _rows(database, schema: str, table: str) -> list[dict[str, Any]]:
    query = sql.SQL("SELECT * FROM {}.{} ORDER BY id").format(
        sql.Identifier(schema), sql.Identifier(table)
    )
    with database.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        return cursor.execute(query).fetchall()


def _assert_loaded(rows: list[dict[str, Any]], companies: list[dict[str, Any]]) -> None:
    assert [row["id"] for row in rows] == [company["id"] for company in companies]  # no dupes
    for row, company in zip(rows, companies, strict=True):
        for field in COMPARED_FIELDS:
            assert row[field] == company[field], (company["id"], field)
        assert _parse_time(row["updated_at"]) == _parse_time(company["updated_at"])
        if company["annual_revenue"] is None:
            assert row["annual_revenue"] is None
        else:
            assert float(row["annual_revenue"]) == pytest.approx(company["annual_revenue"])


def test_meltano_run_loads_postgres_then_only_changes(
    meltano_installed, database, schema, tmp_path
):
    suffix = f"pytest-{uuid.uuid4().hex[:12]}"
    state_id = f"dev:tap-outlign-to-target-postgres:{suffix}"
    with SandboxServer(SandboxConfig(companies=COMPANIES)) as sandbox:
        env = _base_env()
        env.update({
            "TAP_OUTLIGN_API_URL": sandbox.url,
            "TAP_OUTLIGN_CLIENT_ID": sandbox.config.client_id,
            "TAP_OUTLIGN_CLIENT_SECRET": sandbox.config.client_secret,
            "TAP_OUTLIGN_REFRESH_TOKEN": sandbox.issue_tokens()["refresh_token"],
            "TAP_OUTLIGN_TOKEN_STORE_PATH": str(tmp_path / "tokens.json"),
            "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": schema,
        })  # fmt: skip
        run = ("run", "--state-id-suffix", suffix, "tap-outlign", "target-postgres")
        try:
            # First run: everything.
            first = _meltano(*run, env=env)
            companies = sandbox.companies()
            assert len(companies) == COMPANIES
            assert any(not c["name"].isascii() for c in companies)  # the data covers these
            assert any(c["industry"] is None for c in companies)
            assert _emitted(first.stderr, "companies") == COMPANIES
            _assert_loaded(_rows(database, schema, "companies"), companies)
            first_loaded = max(
                row["_sdc_batched_at"] for row in _rows(database, schema, "companies")
            )
            me = _rows(database, schema, "me")
            assert [(r["id"], r["email"], r["name"]) for r in me] == [
                (USER["id"], USER["email"], USER["name"])
            ]

            # The bookmark is in Meltano's state.
            bookmark = max(_parse_time(c["updated_at"]) for c in companies)
            state = json.loads(_meltano("state", "get", state_id, env=env).stdout)
            companies_state = state["singer_state"]["bookmarks"]["companies"]
            assert companies_state["replication_key"] == "updated_at"
            assert _parse_time(companies_state["replication_key_value"]) == bookmark

            # Second run: only what changed (and the company at exactly the old bookmark,
            # since the tap emits updated_at >= bookmark).
            changes = sandbox.mutate(update=5, create=2)
            at_bookmark = {c["id"] for c in companies if _parse_time(c["updated_at"]) == bookmark}
            expected = set(changes["updated"]) | set(changes["created"]) | at_bookmark
            second = _meltano(*run, env=env)
            started_from = re.search(
                r"sync of 'companies' with bookmark value: (\S+)", second.stderr
            )
            assert started_from is not None
            assert _parse_time(started_from.group(1)) == bookmark  # handed over by Meltano
            assert _emitted(second.stderr, "companies") == len(expected)
            companies = sandbox.companies()
            assert len(companies) == COMPANIES + 2
            rows = _rows(database, schema, "companies")
            _assert_loaded(rows, companies)
            reloaded = {row["id"] for row in rows if row["_sdc_batched_at"] > first_loaded}
            assert reloaded == expected
            new_state = json.loads(_meltano("state", "get", state_id, env=env).stdout)
            new_bookmark = new_state["singer_state"]["bookmarks"]["companies"]
            assert _parse_time(new_bookmark["replication_key_value"]) == max(
                _parse_time(c["updated_at"]) for c in companies
            )
        finally:
            subprocess.run(
                [str(MELTANO), "state", "clear", "--force", state_id],
                cwd=ROOT, env=env, capture_output=True, timeout=RUN_TIMEOUT, check=False,
            )  # fmt: skip
