"""Record shaping prepared once per schema: field deselection and type conformance.

singer-sdk walks every record generically against the schema and the selection mask, twice
(deselection, then conformance), which is ~40% of its per-record cost. For records decoded
from JSON against our schemas, almost all of that walk is a no-op. A `RecordShape` works out
once what can change (deselected fields; values of boolean-only properties, which the SDK
turns from 0/1 into booleans; properties of objects that forbid extra ones) and per record
does only that: usually nothing at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    Record = dict[str, Any]


def _types(schema: Mapping[str, Any]) -> set[str]:
    kind = schema.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def _is_object(schema: Mapping[str, Any]) -> bool:
    return "object" in _types(schema) and "properties" in schema


def _as_boolean(value: Any) -> Any:
    return None if value is None else value != 0


@dataclass
class RecordShape:
    """What to do to each record of one stream; built by `prepare`."""

    drop: frozenset[str] = frozenset()
    keep_only: frozenset[str] | None = None
    convert: dict[str, Callable[[Any], Any]] = field(default_factory=dict)
    nested: dict[str, RecordShape] = field(default_factory=dict)

    @property
    def is_identity(self) -> bool:
        """Whether shaping changes nothing (the usual case for our schemas)."""
        return not (self.drop or self.keep_only is not None or self.convert or self.nested)

    def apply(self, record: Record) -> Record:
        """Shape one record in place and return it."""
        for name in self.drop.intersection(record):
            del record[name]
        if self.keep_only is not None:
            for name in record.keys() - self.keep_only:
                del record[name]
        for name, convert in self.convert.items():
            if name in record:
                record[name] = convert(record[name])
        for name, shape in self.nested.items():
            value = record.get(name)
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, dict):
                    shape.apply(item)
        return record


def prepare(
    schema: Mapping[str, Any],
    is_selected: Callable[[tuple[str, ...]], bool],
    breadcrumb: tuple[str, ...] = (),
) -> RecordShape:
    """Work out, once, how records of `schema` must change under the selection mask."""
    properties: Mapping[str, Any] = schema.get("properties", {})
    drop: set[str] = set()
    convert: dict[str, Callable[[Any], Any]] = {}
    nested: dict[str, RecordShape] = {}
    for name, prop in properties.items():
        crumb = (*breadcrumb, "properties", name)
        if not is_selected(crumb):
            drop.add(name)
            continue
        kinds = _types(prop)
        if "boolean" in kinds and not kinds & {"integer", "number", "string"}:
            convert[name] = _as_boolean
        item_schema = prop.get("items", {}) if "array" in kinds else None
        if _is_object(prop):
            inner = prepare(prop, is_selected, crumb)
        elif item_schema is not None and _is_object(item_schema):
            inner = prepare(item_schema, lambda _crumb: True)
        else:
            continue
        if not inner.is_identity:
            nested[name] = inner
    keep_only = None if schema.get("additionalProperties", False) else frozenset(properties)
    return RecordShape(frozenset(drop), keep_only, convert, nested)
