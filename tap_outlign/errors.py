"""Errors that end a run with one clear line instead of a traceback."""

from __future__ import annotations

LOGIN_HINT = (
    "log in again with `tap-outlign-auth login --config <your config>` "
    "(with Meltano: `meltano invoke tap-outlign:login`)"
)


class OutlignError(Exception):
    """A failure the user can act on; its message is the whole story, so no traceback."""


class ConfigError(OutlignError):
    """A setting, catalog or state file is unusable."""


class LoginExpiredError(OutlignError):
    """The refresh token was revoked or expired: only a new login helps."""


class TokenStoreError(OutlignError):
    """The token store cannot be read or written."""


class OutlignAPIError(OutlignError):
    """The API answered in a way retries cannot fix (or retries ran out)."""
