"""Transport-neutral request/reply records shared by the sandbox logic and the HTTP handler."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

JSON_TYPE = "application/json"
HTML_TYPE = "text/html; charset=UTF-8"


def dump(value: Any) -> bytes:
    """Compact UTF-8 JSON (non-ASCII left unescaped, as the spec allows)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass
class Request:
    """What the sandbox needs to know about one HTTP request."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes = b""
    client: str = "127.0.0.1"
    base_url: str = "http://127.0.0.1"
    authorization: str | None = None
    content_type: str | None = None
    user_agent: str | None = None
    accept: str | None = None

    def arg(self, name: str) -> str | None:
        """Last value of a query parameter (PHP keeps the last one too)."""
        values = self.query.get(name)
        return values[-1] if values else None

    def args(self) -> dict[str, str]:
        """Query parameters with their last values."""
        return {key: values[-1] for key, values in self.query.items() if values}


@dataclass
class Reply:
    """An answer, plus transport instructions: a delay, a broken ending, work after sending."""

    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay: float = 0.0
    after: str | None = None  # "reset" | "drop_after" (no answer) | "truncate" (half a body)
    prefetch: Callable[[], None] | None = None  # run after the answer went out

    @property
    def delivered(self) -> bool:
        """Whether the client receives a status line at all."""
        return self.after not in ("reset", "drop_after")

    def header(self, name: str) -> str | None:
        """First value of a reply header (case-insensitive)."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)


def json_reply(status: int, value: Any, headers: list[tuple[str, str]] | None = None) -> Reply:
    """A JSON reply."""
    return Reply(status, dump(value), JSON_TYPE, list(headers or []))
