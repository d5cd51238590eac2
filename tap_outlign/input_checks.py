"""Checks on what the user hands us (settings, state, catalog), worded as one clear line."""

from __future__ import annotations

import io
import json
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from jsonschema import validators

from tap_outlign.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import PurePath


def describe_config_errors(schema: dict[str, Any], config: dict[str, Any]) -> str:
    """Name the missing or first invalid setting and why, never echoing a secret's value."""
    validator = validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda error: list(error.path))
    missing = sorted(
        {
            name
            for error in errors
            if error.validator == "required"
            for name in (error.validator_value if isinstance(error.validator_value, list) else [])
            if isinstance(error.instance, dict) and name not in error.instance
        }
    )
    invalid = [error for error in errors if error.validator != "required" and error.path]
    if missing:
        text = f"missing setting(s): {', '.join(missing)}"
    elif invalid:
        first = invalid[0]
        name = ".".join(str(part) for part in first.path)
        prop = schema.get("properties", {}).get(str(first.path[0]), {})
        if prop.get("secret"):
            text = f"setting `{name}` has an invalid value (expected {prop.get('type')})"
        else:
            text = f"setting `{name}`: {first.message}"
        if len(invalid) > 1:
            text += f" (and {len(invalid) - 1} more problem(s))"
    else:
        text = "the settings are not valid"
    return f"{text}; fix the tap's settings (config file or environment) and run again"


def read_json_document(handle: IO[str] | None, *, kind: str) -> IO[str] | None:
    """Read a --state or --catalog file up front, so a bad one fails with a clear line."""
    if handle is None:
        return None
    name = getattr(handle, "name", kind)
    try:
        document = json.loads(handle.read())
    except (ValueError, UnicodeDecodeError) as exc:
        msg = f"{kind} file {name} is not valid JSON ({exc}); fix or remove it and run again"
        raise ConfigError(msg) from None
    except OSError as exc:
        msg = f"{kind} file {name} cannot be read ({exc.strerror or exc}); fix it and run again"
        raise ConfigError(msg) from None
    if not isinstance(document, dict):
        msg = f"{kind} file {name} must hold a JSON object; fix or remove it and run again"
        raise ConfigError(msg)
    problem = _catalog_problem(document) if kind == "catalog" else _state_problem(document)
    if problem:
        advice = "regenerate it with --discover" if kind == "catalog" else "fix or remove it"
        msg = f"{kind} file {name}: {problem}; {advice} and run again"
        raise ConfigError(msg)
    return io.StringIO(json.dumps(document))


def read_config_file(path: str | PurePath) -> dict[str, Any]:
    """A --config file's settings, or a `ConfigError` naming the file and what is wrong."""
    try:
        with open(path, encoding="utf-8") as handle:  # noqa: PTH123 - a user-given path
            document = json.load(handle)
    except FileNotFoundError:
        msg = f"config file {path} does not exist; check the --config path"
        raise ConfigError(msg) from None
    except OSError as exc:
        msg = f"config file {path} cannot be read ({exc.strerror or exc}); check the --config path"
        raise ConfigError(msg) from None
    except (ValueError, UnicodeDecodeError) as exc:
        # The message names a position, never the file's content (it holds secrets).
        where = (
            f"line {exc.lineno} column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else "its encoding"
        )
        msg = f"config file {path} is not valid JSON (at {where}); fix it and run again"
        raise ConfigError(msg) from None
    if not isinstance(document, dict):
        msg = f"config file {path} must hold a JSON object of settings; fix it and run again"
        raise ConfigError(msg)
    return document


def _catalog_problem(document: dict[str, Any]) -> str | None:
    streams = document.get("streams")
    if not isinstance(streams, list):
        return "no `streams` list"
    for index, stream in enumerate(streams):
        where = f"streams[{index}]"
        if not isinstance(stream, dict) or not isinstance(stream.get("tap_stream_id"), str):
            return f"{where} is not a stream object with a `tap_stream_id`"
        if not isinstance(stream.get("schema", {}), dict):
            return f"{where} has a `schema` that is not an object"
        metadata = stream.get("metadata", [])
        if not isinstance(metadata, list) or not all(
            isinstance(entry, dict)
            and isinstance(entry.get("breadcrumb", []), list)
            and isinstance(entry.get("metadata", {}), dict)
            for entry in metadata
        ):
            return f"{where} has a `metadata` that is not a list of breadcrumb entries"
    return None


def _state_problem(document: dict[str, Any]) -> str | None:
    bookmarks = document.get("bookmarks", {})
    if not isinstance(bookmarks, dict):
        return "`bookmarks` is not an object"
    for stream, bookmark in bookmarks.items():
        if not isinstance(bookmark, dict):
            return f"the bookmark of stream '{stream}' is not an object"
        for key in ("replication_key_value", "starting_replication_value"):
            value = bookmark.get(key)
            if value is not None and not _is_timestamp(value):
                # Every incremental Outlign stream is keyed on a timestamp (`updated_at`).
                return f"the bookmark of stream '{stream}' has a `{key}` that is not a timestamp"
    return None


def _is_timestamp(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
