"""SandboxConfig: every knob of the sandbox, validated so bad patches fail loudly."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from tap_outlign.sandbox.faults import parse_rules

SHAPES = ("resource", "paginate", "simple", "cursor", "array", "data")
"""Laravel list shapes the companies endpoint can answer with."""
ME_SHAPES = ("bare", "wrapped")
DEFAULT_CLIENT_ID = "sandbox-client"
DEFAULT_CLIENT_SECRET = "sandbox-secret-" + "Zq8Lm3Xv7Rt2Wn5Kp9Hd"  # a fixed, public test secret
DEFAULT_RATE_LIMIT = {"limit": 100_000, "window": 60}
_INT_FIELDS = (
    "companies",
    "per_page_default",
    "per_page_max",
    "token_lifetime",
    "refresh_token_lifetime",
)


def _default_rate_limit() -> dict[str, int] | None:
    return dict(DEFAULT_RATE_LIMIT)


@dataclass
class SandboxConfig:
    """Behaviour of one sandbox; `patched` applies a JSON patch from tests or the control API."""

    companies: int = 250
    shape: str = "resource"
    me_shape: str = "bare"
    per_page_default: int = 15
    per_page_max: int = 1000
    token_lifetime: int = 3600
    refresh_token_lifetime: int = 30 * 24 * 3600
    latency_ms: float = 0.0
    rate_limit: dict[str, int] | None = field(default_factory=_default_rate_limit)
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    deny_authorization: bool = False
    faults: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Validate every field (patches arrive as untyped JSON)."""
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                msg = f"{name} must be a non-negative integer"
                raise ValueError(msg)
        if self.per_page_default < 1 or self.per_page_max < 1 or self.token_lifetime < 1:
            msg = "per_page_default, per_page_max and token_lifetime must be >= 1"
            raise ValueError(msg)
        if self.shape not in SHAPES:
            msg = f"shape must be one of {', '.join(SHAPES)}"
            raise ValueError(msg)
        if self.me_shape not in ME_SHAPES:
            msg = f"me_shape must be one of {', '.join(ME_SHAPES)}"
            raise ValueError(msg)
        if isinstance(self.latency_ms, bool) or not isinstance(self.latency_ms, (int, float)):
            msg = "latency_ms must be a number"
            raise TypeError(msg)
        self._check_rate_limit()
        if not isinstance(self.client_id, str) or not isinstance(self.client_secret, str):
            msg = "client_id and client_secret must be strings"
            raise TypeError(msg)
        if not isinstance(self.deny_authorization, bool):
            msg = "deny_authorization must be a boolean"
            raise TypeError(msg)
        parse_rules(self.faults)  # raises ValueError on a bad rule

    def _check_rate_limit(self) -> None:
        limit = self.rate_limit
        if limit is None:
            return
        ok = isinstance(limit, dict) and set(limit) == {"limit", "window"}
        if not ok or not all(isinstance(v, int) and v >= 1 for v in limit.values()):
            msg = 'rate_limit must be null or {"limit": N, "window": SECONDS} with N, SECONDS >= 1'
            raise ValueError(msg)

    def patched(self, patch: dict[str, Any]) -> SandboxConfig:
        """Return a validated copy with `patch` applied; unknown keys raise ValueError."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(patch) - known)
        if unknown:
            msg = f"unknown config field(s): {', '.join(unknown)}"
            raise ValueError(msg)
        return dataclasses.replace(self, **patch)

    def to_dict(self, *, redact: bool = False) -> dict[str, Any]:
        """JSON-ready view; `redact` hides the client secret (for state dumps)."""
        data = dataclasses.asdict(self)
        if redact:
            data["client_secret"] = "***"  # noqa: S105 - placeholder, not a secret
        return data
