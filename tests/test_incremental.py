"""Incremental companies: only changes after the bookmark, which advances only on success."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import assert_each_once, run_tap


def _bookmark(state: dict[str, Any]) -> str | None:
    return state.get("bookmarks", {}).get("companies", {}).get("replication_key_value")


def test_second_run_emits_only_changed_companies(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Any
) -> None:
    first = run_tap(tap_config, tmp_path)
    assert first.returncode == 0, first.stderr
    assert_each_once(first.records("companies"), [c["id"] for c in sandbox.companies()])
    state = first.states()[-1]
    bookmark = _bookmark(state)
    assert bookmark == max(c["updated_at"] for c in sandbox.companies())

    changed = sandbox.mutate(update=[3, 40, 77, 150, 201])["updated"]
    at_bookmark = [c["id"] for c in sandbox.companies() if c["updated_at"] == bookmark]
    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps(state))

    second = run_tap(tap_config, tmp_path, "--state", str(state_file))

    assert second.returncode == 0, second.stderr
    # Inclusive (>=) bookmark: the company updated exactly at it comes again, by design.
    assert_each_once(second.records("companies"), sorted({*changed, *at_bookmark}))
    by_id = {c["id"]: c for c in sandbox.companies()}
    assert all(r == by_id[r["id"]] for r in second.records("companies"))
    assert _bookmark(second.states()[-1]) == max(c["updated_at"] for c in sandbox.companies())


def test_start_date_bounds_the_first_run(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Any
) -> None:
    companies = sorted(sandbox.companies(), key=lambda c: c["updated_at"])
    start = companies[len(companies) // 2]["updated_at"]

    run = run_tap({**tap_config, "start_date": start}, tmp_path)

    assert run.returncode == 0, run.stderr
    expected = [c["id"] for c in companies if c["updated_at"] >= start]
    assert_each_once(run.records("companies"), expected)


def test_full_table_through_the_catalog_emits_everything(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Any
) -> None:
    discovered = run_tap(tap_config, tmp_path, "--discover")
    catalog = json.loads(discovered.stdout)
    for stream in catalog["streams"]:
        stream["replication_method"] = "FULL_TABLE"
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = True
                entry["metadata"]["forced-replication-method"] = "FULL_TABLE"
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    future = {"bookmarks": {"companies": {"replication_key_value": "2999-01-01T00:00:00Z"}}}
    (tmp_path / "state.json").write_text(json.dumps(future))

    run = run_tap(
        {**tap_config, "start_date": "2999-01-01T00:00:00Z"},
        tmp_path,
        "--catalog",
        str(tmp_path / "catalog.json"),
        "--state",
        str(tmp_path / "state.json"),
    )

    assert run.returncode == 0, run.stderr
    assert_each_once(run.records("companies"), [c["id"] for c in sandbox.companies()])


def test_a_failed_sync_does_not_advance_the_bookmark(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Any
) -> None:
    old = "2000-01-01T00:00:00.000000Z"
    (tmp_path / "state.json").write_text(
        json.dumps({"bookmarks": {"companies": {"replication_key_value": old}}})
    )
    sandbox.configure(
        faults=[{"path": "/api/v1/companies", "nth": [4], "action": "status", "status": 404}]
    )

    run = run_tap(tap_config, tmp_path, "--state", str(tmp_path / "state.json"))

    assert run.returncode != 0
    assert run.records("companies"), "the pages before the failure were emitted"
    assert all(_bookmark(s) in {old, None} for s in run.states())
