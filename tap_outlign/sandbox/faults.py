"""Fault rules: which request gets which failure, counted per rule so tests are deterministic."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ACTIONS = ("status", "reset", "truncate", "not_json", "slow", "drop_after", "mutate")
_KEYS = {
    "action", "path", "method", "name", "every", "nth", "always",
    "status", "retry_after", "body", "delay", "update", "delete", "create",
}  # fmt: skip


def _fail(message: str) -> ValueError:
    return ValueError(f"bad fault rule: {message}")


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"{what} must be a positive integer"
        raise _fail(msg)
    return value


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        msg = f"{what} must be a non-negative number"
        raise _fail(msg)
    return float(value)


def _mutation(raw: dict[str, Any]) -> dict[str, Any]:
    """The update/delete/create part of a rule: lists of ids or counts (create: a count)."""
    mutation: dict[str, Any] = {k: raw[k] for k in ("update", "delete", "create") if k in raw}
    for key, value in mutation.items():
        is_ids = key != "create" and isinstance(value, list)
        if is_ids and all(isinstance(i, int) and not isinstance(i, bool) for i in value):
            continue
        if not isinstance(value, bool) and isinstance(value, int) and value >= 0:
            continue
        msg = f"{key} must be a count{'' if key == 'create' else ' or a list of ids'}"
        raise _fail(msg)
    return mutation


@dataclass(frozen=True)
class FaultRule:
    """One rule: a path prefix, a trigger (every / nth / always) and an action."""

    action: str
    name: str
    path: str = "/api/v1/"
    method: str | None = None
    every: int | None = None
    nth: frozenset[int] = frozenset()
    always: bool = False
    status: int = 500
    retry_after: float | None = None
    body: Any = None
    delay: float = 0.0
    mutation: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Any) -> FaultRule:
        """Validate one JSON rule; a rule without a trigger fires always."""
        if not isinstance(raw, dict):
            msg = "each rule must be an object"
            raise _fail(msg)
        unknown = set(raw) - _KEYS
        if unknown:
            msg = f"unknown key(s) {sorted(unknown)}"
            raise _fail(msg)
        action = raw.get("action")
        if action not in ACTIONS:
            msg = f"action must be one of {', '.join(ACTIONS)}"
            raise _fail(msg)
        nth = raw.get("nth") or []
        if not isinstance(nth, list):
            msg = "nth must be a list of 1-based indexes"
            raise _fail(msg)
        every = raw.get("every")
        status = _positive_int(raw.get("status", 500), "status")
        retry_after = raw.get("retry_after")
        method = raw.get("method")
        return cls(
            action=str(action),
            name=str(raw.get("name") or action),
            path=str(raw.get("path", "/api/v1/")),
            method=str(method).upper() if method else None,
            every=None if every is None else _positive_int(every, "every"),
            nth=frozenset(_positive_int(n, "nth") for n in nth),
            always=bool(raw.get("always", every is None and not nth)),
            status=status,
            retry_after=None if retry_after is None else _number(retry_after, "retry_after"),
            body=raw.get("body"),
            delay=_number(raw.get("delay", 0), "delay"),
            mutation=_mutation(raw),
        )

    def matches(self, method: str, path: str) -> bool:
        """Whether a request is one this rule counts."""
        return path.startswith(self.path) and self.method in (None, method)

    def fires(self, count: int) -> bool:
        """Whether the rule triggers on its `count`-th matching request (1-based)."""
        if self.always or count in self.nth:
            return True
        return self.every is not None and count % self.every == 0


def parse_rules(raw: Any) -> list[FaultRule]:
    """Validate a config's `faults` list."""
    if not isinstance(raw, list):
        msg = "faults must be a list"
        raise _fail(msg)
    return [FaultRule.from_dict(item) for item in raw]


class FaultBook:
    """The active rules and their own request counters (reset when the rules change)."""

    def __init__(self, rules: list[FaultRule]) -> None:
        """Start every rule's counter at zero."""
        self.rules = rules
        self.counts = [0] * len(rules)

    def match(self, method: str, path: str) -> FaultRule | None:
        """Count the request in every matching rule; return the first rule that fires."""
        chosen: FaultRule | None = None
        for index, rule in enumerate(self.rules):
            if rule.matches(method, path):
                self.counts[index] += 1
                if chosen is None and rule.fires(self.counts[index]):
                    chosen = rule
        return chosen
