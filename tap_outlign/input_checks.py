"""Checks on what the user hands us (settings, state, catalog), worded as one clear line."""

from __future__ import annotations

import io
import json
from typing import IO, Any

from jsonschema import validators

from tap_outlign.errors import ConfigError


def describe_config_errors(schema: dict[str, Any], config: dict[str, Any]) -> str:
    """Name the first invalid setting and why, never echoing a secret's value."""
    validator = validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda error: list(error.path))
    if not errors:
        return "the settings are invalid"
    first = errors[0]
    if first.validator == "required":
        text = f"missing setting: {first.message.split(' is a required')[0]}"
    else:
        name = ".".join(str(part) for part in first.path) or "(settings)"
        prop = schema.get("properties", {}).get(str(first.path[0]) if first.path else "", {})
        reason = "has an invalid value" if prop.get("secret") else first.message
        text = f"setting `{name}`: {reason}"
        expected = prop.get("type")
        if prop.get("secret") and expected:
            text += f" (expected {expected})"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{text}{more}; fix the tap's settings (config file or environment) and run again"


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
    if not isinstance(document, dict):
        msg = f"{kind} file {name} must hold a JSON object; fix or remove it and run again"
        raise ConfigError(msg)
    if kind == "catalog" and not isinstance(document.get("streams"), list):
        msg = f"catalog file {name} has no `streams` list; regenerate it with --discover"
        raise ConfigError(msg)
    return io.StringIO(json.dumps(document))
