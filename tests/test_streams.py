"""The two streams over HTTP: every paginator shape, both `me` shapes, headers, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tap_outlign.sandbox import SHAPES
from tests.conftest import assert_each_once, run_tap


@pytest.mark.parametrize("shape", SHAPES)
def test_every_paginator_shape_emits_each_company_once(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Any, shape: str
) -> None:
    sandbox.configure(shape=shape)
    expected = [c["id"] for c in sandbox.companies()]

    run = run_tap(tap_config, tmp_path)

    assert run.returncode == 0, run.stderr
    assert_each_once(run.records("companies"), expected)
    assert len(run.records("me")) == 1
    per_page = {e["query"].get("per_page") for e in sandbox.log() if "companies" in e["path"]}
    if shape not in {"array", "data"}:
        assert per_page == {"25"}, "page_size must be re-sent on every page"


@pytest.mark.parametrize("me_shape", ["bare", "wrapped"])
def test_me_in_both_shapes(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Any, me_shape: str
) -> None:
    sandbox.configure(me_shape=me_shape)

    run = run_tap(tap_config, tmp_path)

    assert run.returncode == 0, run.stderr
    assert run.records("me") == [{"id": 123, "email": "user@example.com", "name": "John Doe"}]


def test_records_match_the_api_including_undocumented_fields(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Any
) -> None:
    run = run_tap(tap_config, tmp_path)

    assert run.returncode == 0, run.stderr
    by_id = {r["id"]: r for r in run.records("companies")}
    for company in sandbox.companies():
        assert by_id[company["id"]] == company  # lifecycle_stage included, nulls kept
    assert any("lifecycle_stage" in r for r in by_id.values())
    assert any(any(ord(ch) > 127 for ch in str(r.get("name"))) for r in by_id.values())


def test_requests_carry_auth_accept_and_user_agent(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Any
) -> None:
    run = run_tap({**tap_config, "user_agent": "acme-elt/2.0"}, tmp_path)
    assert run.returncode == 0, run.stderr
    default = run_tap(tap_config, tmp_path)
    assert default.returncode == 0, default.stderr

    api = [e for e in sandbox.log() if e["path"].startswith("/api/v1/")]
    assert api
    assert all(e["status"] == 200 for e in api)  # so each carried a valid Bearer token
    assert all(e["accept"] == "application/json" for e in api)
    agents = {e["user_agent"] for e in api}
    assert "acme-elt/2.0" in agents
    assert any(a.startswith("tap-outlign/") for a in agents)


@pytest.mark.parametrize(
    ("status", "message"),
    [(401, "Unauthenticated."), (403, "This action is unauthorized.")],
)
def test_auth_errors_end_the_run_with_one_clear_line(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Any, status: int, message: str
) -> None:
    sandbox.configure(
        faults=[{"path": "/api/v1/companies", "always": True, "action": "status", "status": status}]
    )

    run = run_tap(tap_config, tmp_path, env={"LOGLEVEL": "INFO"})

    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    [line] = run.error_lines()
    assert "companies" in line
    assert str(status) in line
    assert message in line
    for secret in (tap_config["client_secret"], tap_config["refresh_token"]):
        assert secret not in run.stderr + run.stdout


def _catalog_with(run_discover: Any, *, deselect: list[list[str]]) -> dict[str, Any]:
    catalog = run_discover
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == [] or (
                stream["tap_stream_id"] == "companies" and entry["breadcrumb"] in deselect
            ):
                entry["metadata"]["selected"] = entry["breadcrumb"] == []
    return catalog


def test_deselected_fields_are_left_out_and_the_rest_kept(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Any
) -> None:
    discovered = run_tap(tap_config, tmp_path, "--discover")
    assert discovered.returncode == 0, discovered.stderr
    catalog = _catalog_with(
        json.loads(discovered.stdout),
        deselect=[["properties", "description"], ["properties", "owner", "properties", "email"]],
    )
    catalog_file = tmp_path / "catalog.json"
    catalog_file.write_text(json.dumps(catalog))

    run = run_tap(tap_config, tmp_path, "--catalog", str(catalog_file))

    assert run.returncode == 0, run.stderr
    by_id = {r["id"]: r for r in run.records("companies")}
    for company in sandbox.companies():
        record = by_id[company["id"]]
        assert "description" not in record
        expected_owner = company["owner"] and {
            k: v for k, v in company["owner"].items() if k != "email"
        }
        assert record["owner"] == expected_owner
        assert record["lifecycle_stage"] == company["lifecycle_stage"]
        assert record["name"] == company["name"]


def test_concurrent_pages_are_emitted_in_page_order(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Any
) -> None:
    # Page 2 answers last of the first batch in flight, so pages finish out of order.
    sandbox.configure(
        latency_ms=20,
        faults=[{"path": "/api/v1/companies", "nth": [2], "action": "slow", "delay": 0.6}],
    )

    run = run_tap({**tap_config, "max_concurrency": 4}, tmp_path)

    assert run.returncode == 0, run.stderr
    ids = [r["id"] for r in run.records("companies")]
    assert ids == sorted(c["id"] for c in sandbox.companies())
    requests = [e for e in sandbox.log() if e["path"] == "/api/v1/companies"]
    [slow] = [e for e in requests if e["fault"]]
    overtaking = [
        e
        for e in requests
        if int(e["query"]["page"]) > int(slow["query"]["page"]) and e["t"] < slow["t"] + 0.5
    ]
    assert overtaking, "later pages should be fetched while the slow one is pending"
