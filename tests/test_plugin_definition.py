"""meltano.yml and the README agree with the tap's own settings and capabilities."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SENSITIVE_KINDS = {"password", "oauth"}
# JSON Schema type (and format) -> the Meltano setting kinds that fit it.
KINDS = {
    "string": {"string", "password", "options", "file", "email", "hidden"},
    "date-time": {"date_iso8601"},
    "integer": {"integer"},
    "number": {"decimal", "integer"},
    "boolean": {"boolean"},
    "array": {"array"},
    "object": {"object"},
}


@pytest.fixture(scope="module")
def meltano_yml() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tap_plugin(meltano_yml) -> dict[str, Any]:
    (plugin,) = [p for p in meltano_yml["plugins"]["extractors"] if p["name"] == "tap-outlign"]
    return plugin


@pytest.fixture(scope="module")
def config_schema() -> dict[str, Any]:
    """CONFIG_SCHEMA as declared, read in a fresh process: the SDK merges its built-in
    settings (stream_maps, flattening_*, ...) into a tap class's schema dict in place."""
    code = "import json; from tap_outlign.settings import CONFIG_SCHEMA as s; print(json.dumps(s))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def about() -> dict[str, Any]:
    result = subprocess.run(
        [str(BIN / "tap-outlign"), "--about", "--format", "json"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return json.loads(result.stdout)


def _json_type(schema: dict[str, Any]) -> str:
    if schema.get("format") == "date-time":
        return "date-time"
    types = schema.get("type", "string")
    types = [types] if isinstance(types, str) else types
    (kind,) = [t for t in types if t != "null"]
    return kind


def test_settings_mirror_config_schema(tap_plugin, config_schema):
    properties = config_schema["properties"]
    settings = {setting["name"]: setting for setting in tap_plugin["settings"]}
    assert list(settings) == list(properties)
    for name, setting in settings.items():
        schema = properties[name]
        assert setting.get("label"), name
        assert setting.get("description"), name
        assert setting.get("kind") in KINDS[_json_type(schema)], name
        secret = bool(schema.get("secret"))
        assert bool(setting.get("sensitive")) is secret, name
        assert (setting["kind"] in SENSITIVE_KINDS) is secret, name
        # Defaults stay in the tap: a value here would reach the tap-outlign-auth commands
        # as an environment variable on every `meltano invoke`.
        assert "value" not in setting, name


def test_settings_groups_name_real_settings(tap_plugin, config_schema):
    groups = tap_plugin["settings_group_validation"]
    assert sorted(map(sorted, groups)) == sorted(
        [sorted(["client_id", "client_secret", "refresh_token"]),
         sorted(["client_id", "client_secret", "token_store_path"])]
    )  # fmt: skip
    assert set().union(*groups) <= set(config_schema["properties"])


def test_capabilities_are_ones_the_tap_reports(tap_plugin, about):
    declared = set(tap_plugin["capabilities"])
    assert {"catalog", "discover", "state"} <= declared
    assert declared <= set(about["capabilities"])


def test_commands_run_the_auth_cli(tap_plugin):
    commands = tap_plugin["commands"]
    assert {name: (c["executable"], c["args"]) for name, c in commands.items()} == {
        "login": ("tap-outlign-auth", "login"),
        "login-headless": ("tap-outlign-auth", "login --no-browser"),
        "check": ("tap-outlign-auth", "check"),
    }


def test_meltano_lists_the_daily_schedule():
    result = subprocess.run(
        [str(BIN / "meltano"), "schedule", "list", "--format=json"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=120,
        env={**_without_meltano_env(), "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false"},
    )  # fmt: skip
    schedules = json.loads(result.stdout)
    (job,) = [s for s in schedules["schedules"]["job"] if s["name"] == "daily-outlign-to-postgres"]
    assert job["interval"] == "@daily"
    assert job["job"]["name"] == "outlign-to-postgres"
    assert job["job"]["tasks"] == ["tap-outlign target-postgres"]


def test_readme_settings_table_is_current():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "update_readme_settings.py"), "--check"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def _without_meltano_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MELTANO_")}


def test_meltano_installs_the_tap_with_the_locked_versions(tap_plugin):
    """The plugin venv is pinned by requirements.lock, which must match uv.lock."""
    assert "--constraint requirements.lock" in tap_plugin["pip_url"]
    exported = subprocess.run(
        [
            str(BIN / "uv"),
            "export",
            "--frozen",
            "--no-dev",
            "--no-emit-project",
            "--no-hashes",
            "--format",
            "requirements-txt",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    pins = [line for line in exported.splitlines() if line and not line.startswith(("#", " "))]
    locked = (ROOT / "requirements.lock").read_text().splitlines()
    assert pins == [line for line in locked if line and not line.startswith(("#", " "))], (
        "requirements.lock is stale: regenerate it with `uv export --frozen --no-dev "
        "--no-emit-project --no-hashes --format requirements-txt -o requirements.lock`"
    )
