"""The token store: rotated OAuth tokens kept between runs, safe across processes.

Outlign (Laravel Passport, assumed) revokes a refresh token the moment it is used, so the
token a refresh returns is the only one that works next time. Meltano writes a fresh config
for every run, so the current token lives here instead: one JSON file, keyed by
``(api_url, client_id)``, replaced atomically (temp file, fsync, rename; mode 0600) and
guarded by a lock file so that processes sharing one login refresh one at a time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import filelock

from tap_outlign.errors import TokenStoreError

if TYPE_CHECKING:
    from collections.abc import Iterator

#: How many past refresh tokens (as hashes) a chain remembers, to recognise a configured
#: seed token that the chain has already rotated past.
LINEAGE_LIMIT = 200
#: Longest wait for another process's refresh before giving up.
LOCK_TIMEOUT_SECONDS = 120.0
_FORMAT_VERSION = 1


def default_store_path() -> Path:
    """Where tokens live when `token_store_path` is not set: the XDG state directory."""
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "tap-outlign" / "tokens.json"


def fingerprint(token: str) -> str:
    """A one-way name for a token, so the store can recognise tokens it no longer holds."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class StoredTokens:
    """The current state of one login: the live refresh token and the newest access token."""

    refresh_token: str
    access_token: str | None = None
    access_expires_at: float | None = None
    lineage: list[str] = field(default_factory=list)
    updated_at: float = 0.0

    def descends_from(self, refresh_token: str) -> bool:
        """Whether `refresh_token` is one this chain held (so the chain is newer than it)."""
        return fingerprint(refresh_token) in self.lineage

    def rotated(
        self,
        *,
        refresh_token: str,
        access_token: str,
        expires_at: float | None,
    ) -> StoredTokens:
        """The chain after a refresh: the new pair, with the new token added to the lineage."""
        return StoredTokens(
            refresh_token=refresh_token,
            access_token=access_token,
            access_expires_at=expires_at,
            lineage=_trimmed([*self.lineage, fingerprint(refresh_token)]),
            updated_at=time.time(),
        )

    def remembering(self, spent_refresh_token: str) -> StoredTokens:
        """This chain, also recognising `spent_refresh_token` (one the server refused)."""
        if self.descends_from(spent_refresh_token):
            return self
        lineage = _trimmed([*self.lineage, fingerprint(spent_refresh_token)])
        return dataclasses.replace(self, lineage=lineage)

    @classmethod
    def new_chain(
        cls, seed_refresh_token: str, *, superseding: list[str] | None = None
    ) -> StoredTokens:
        """A chain that starts at a configured (or freshly logged-in) refresh token.

        `superseding` lists fingerprints of older tokens this login replaces (the previous
        chain, the `refresh_token` still in the config), so none of them wins over it later.
        """
        lineage = [*(superseding or []), fingerprint(seed_refresh_token)]
        return cls(refresh_token=seed_refresh_token, lineage=_trimmed(lineage))


def _trimmed(lineage: list[str]) -> list[str]:
    """At most LINEAGE_LIMIT fingerprints; the first (the chain's seed) is always kept.

    The seed is what a configured `refresh_token` usually is; forgetting it would make the
    tap take that long-spent token for a new login and send it again on every run.
    """
    if len(lineage) <= LINEAGE_LIMIT:
        return lineage
    return [lineage[0], *lineage[-(LINEAGE_LIMIT - 1) :]]


class TokenStore:
    """A JSON file of token chains keyed by ``(api_url, client_id)``."""

    def __init__(self, path: Path | str | None, *, api_url: str, client_id: str) -> None:
        """Bind the store to one file and one login key."""
        self.path = Path(path).expanduser() if path else default_store_path()
        self.key = f"{api_url.rstrip('/')} {client_id}"
        self._lock = filelock.FileLock(
            str(self.path) + ".lock",
            timeout=LOCK_TIMEOUT_SECONDS,
            mode=0o600,
        )

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the cross-process lock: one refresh at a time for everyone sharing the file."""
        self._ensure_directory()
        try:
            with self._lock:
                yield
        except filelock.Timeout as exc:
            msg = (
                f"token store {self.path} stayed locked for {LOCK_TIMEOUT_SECONDS:.0f} s; "
                f"if no other tap-outlign is running, delete {self._lock.lock_file}"
            )
            raise TokenStoreError(msg) from exc

    def load(self) -> StoredTokens | None:
        """The chain stored under this key, or None when there is none yet."""
        entry = self._read_all().get("credentials", {}).get(self.key)
        if entry is None:
            return None
        try:
            return StoredTokens(**entry)
        except TypeError as exc:
            msg = f"token store {self.path} has an unreadable entry; delete it and log in again"
            raise TokenStoreError(msg) from exc

    def save(self, tokens: StoredTokens) -> None:
        """Replace this key's chain atomically; a crash at any point leaves a valid file."""
        document = self._read_all()
        document["version"] = _FORMAT_VERSION
        document.setdefault("credentials", {})[self.key] = asdict(tokens)
        self._write_atomically(json.dumps(document, indent=2, sort_keys=True).encode())

    def _ensure_directory(self) -> None:
        directory = self.path.parent
        if not directory.exists():
            try:
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                msg = f"cannot create the token store directory {directory}: {exc.strerror}"
                raise TokenStoreError(msg) from exc

    def _read_all(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            msg = f"cannot read the token store {self.path}: {exc.strerror}"
            raise TokenStoreError(msg) from exc
        try:
            document = json.loads(raw)
        except ValueError as exc:
            msg = (
                f"token store {self.path} is not valid JSON; delete it, then log in again "
                "or set refresh_token"
            )
            raise TokenStoreError(msg) from exc
        if not isinstance(document, dict):
            msg = f"token store {self.path} is not a tap-outlign token store; delete it"
            raise TokenStoreError(msg)
        return document

    def _write_atomically(self, content: bytes) -> None:
        self._ensure_directory()
        directory = self.path.parent
        try:
            handle, temp_name = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".tmp", dir=directory
            )
            with os.fdopen(handle, "wb") as temp_file:
                os.fchmod(temp_file.fileno(), 0o600)
                temp_file.write(content)
                temp_file.flush()
                os.fsync(temp_file.fileno())
            Path(temp_name).replace(self.path)
            directory_handle = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(directory_handle)
            finally:
                os.close(directory_handle)
        except OSError as exc:
            with contextlib.suppress(OSError, UnboundLocalError):
                Path(temp_name).unlink(missing_ok=True)
            msg = f"cannot write the token store {self.path}: {exc.strerror}"
            raise TokenStoreError(msg) from exc
