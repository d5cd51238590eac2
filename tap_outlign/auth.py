"""OAuth2 refresh-token authentication for Outlign, with rotation that survives runs.

Outlign's token server (Laravel Passport, assumed) revokes each refresh token when it is
used. This authenticator keeps the rotated token, saves it to the token store *before* the
new access token is used, shares one login between threads and processes, and never
re-sends a refresh token the server may already have rotated.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import requests
from singer_sdk.authenticators import OAuthAuthenticator
from typing_extensions import override

from tap_outlign.errors import LOGIN_HINT, LoginExpiredError, OutlignAPIError
from tap_outlign.token_store import StoredTokens, TokenStore

if TYPE_CHECKING:
    from collections.abc import Mapping


LOGGER = logging.getLogger("tap-outlign.auth")

#: Refresh this long before the access token expires (capped at a tenth of its lifetime).
EXPIRY_MARGIN_SECONDS = 60.0
#: Waits between tries of a refresh whose request surely changed nothing (connect errors, 5xx).
SAFE_RETRY_WAITS = (1.0, 2.0, 4.0)
_HTTP_TOO_MANY_REQUESTS = 429
_HTTP_SERVER_ERROR = 500


def _jwt_claims(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:  # noqa: PLR2004 - header.payload.signature
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}


def _number_claim(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def jwt_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT access token (Passport issues RS256 JWTs), if readable."""
    return _number_claim(_jwt_claims(token), "exp")


def jwt_lifetime(token: str) -> float | None:
    """`exp - iat` of a JWT access token: how long it was issued for, if readable."""
    claims = _jwt_claims(token)
    issued, expiry = _number_claim(claims, "iat"), _number_claim(claims, "exp")
    return expiry - issued if issued is not None and expiry is not None else None


def _safe_to_retry(error: requests.RequestException) -> bool:
    """Whether the token request surely never reached the server (so no rotation happened)."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    if isinstance(error, requests.ConnectionError) and error.args:
        reason = getattr(error.args[0], "reason", None)
        return type(reason).__name__ in {"NewConnectionError", "NameResolutionError"}
    return False


class _RetrySafeRefresh(Exception):  # noqa: N818 - internal control flow, never escapes
    """A refresh attempt that failed before the server could rotate anything."""

    def __init__(self, wait: float | None = None) -> None:
        super().__init__("retryable token request")
        self.wait = wait


class OutlignAuthenticator(OAuthAuthenticator):
    """Refresh-token grant against `{api_url}/oauth/token`, with Passport-style rotation."""

    def __init__(  # noqa: PLR0913 - these are the settings a login consists of
        self,
        *,
        api_url: str,
        client_id: str,
        client_secret: str,
        refresh_token: str | None,
        access_token: str | None,
        store: TokenStore,
        user_agent: str,
        timeout: float,
    ) -> None:
        """Set up the login; nothing is requested until the first API call needs a token."""
        super().__init__(
            auth_endpoint=f"{api_url.rstrip('/')}/oauth/token",
            client_id=client_id,
            client_secret=client_secret,
        )
        # The SDK's session retries POSTs after read errors, which could re-send a
        # refresh token the server already rotated; ours never retries on its own.
        self._session = requests.Session()
        self._store = store
        self._user_agent = user_agent
        self._timeout = timeout
        self._configured_refresh_token = refresh_token
        self._thread_lock = threading.RLock()
        self._expires_at: float | None = None
        self._lifetime: float | None = None
        self._rejected: set[str] = set()
        self._refresh_after_rejection = False
        self._token_from_rejection: str | None = None
        self.refresh_token = refresh_token
        if access_token:
            expiry, lifetime = jwt_expiry(access_token), jwt_lifetime(access_token)
            if expiry is None or expiry - self._margin(expiry, lifetime) > time.time():
                self.access_token = access_token
                self._expires_at, self._lifetime = expiry, lifetime

    # -- what the SDK asks of an OAuth authenticator -------------------------------------

    @property
    @override
    def oauth_request_body(self) -> dict[str, Any]:
        return {
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": self.refresh_token,
        }

    @override
    def is_token_valid(self) -> bool:
        if not self.access_token or self.access_token in self._rejected:
            return False
        if self._expires_at is None:
            return True
        return self._expires_at - self._margin(self._expires_at, self._lifetime) > time.time()

    @override
    def authenticate_request(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        with self._thread_lock:
            if not self.is_token_valid():
                self.update_access_token()
            request.headers["Authorization"] = f"Bearer {self.access_token}"
        return request

    @override
    def update_access_token(self) -> None:
        """Get a valid access token: from the store if another process refreshed, else refresh."""
        with self._thread_lock, self._store.locked():
            stored = self._store.load()
            chain = self._choose_chain(stored)
            if self._adopt_stored_access_token(chain):
                return
            self._refresh(chain, fallback=stored if chain is not stored else None)

    # -- what the streams tell us -------------------------------------------------------

    def reject(self, access_token: str) -> bool:
        """Note that the API answered 401 to `access_token`; True if a refresh may fix it.

        Refresh once per 401 and retry; a token fresh from such a refresh that is refused
        again means the login itself is no longer accepted.
        """
        with self._thread_lock:
            if access_token == self._token_from_rejection:
                return False
            self._rejected.add(access_token)
            if access_token == self.access_token:
                self._refresh_after_rejection = True
            return True

    @property
    def store(self) -> TokenStore:
        """Where this login's rotated tokens are kept."""
        return self._store

    @property
    def expires_at(self) -> float | None:
        """When the current access token expires (epoch seconds), if known."""
        return self._expires_at

    def ensure_token(self) -> str:
        """A valid access token, refreshing if needed (for `tap-outlign-auth check`)."""
        with self._thread_lock:
            if not self.is_token_valid():
                self.update_access_token()
            assert self.access_token is not None  # noqa: S101 - set by a successful update
            return self.access_token

    # -- the refresh itself -------------------------------------------------------------

    @staticmethod
    def _margin(expires_at: float | None, lifetime: float | None) -> float:
        """How long before `expires_at` to refresh: a tenth of the token's lifetime, <= 60 s.

        `lifetime` is how long the token was issued for (not how long it has left, which
        would shrink the margin to nothing as expiry nears).
        """
        if lifetime is None or lifetime <= 0:
            if expires_at is None:
                return EXPIRY_MARGIN_SECONDS
            lifetime = max(expires_at - time.time(), 0.0)
        return min(EXPIRY_MARGIN_SECONDS, lifetime / 10 + 0.5)

    def _choose_chain(self, stored: StoredTokens | None) -> StoredTokens:
        """The store's chain, unless the configured token is new (the user logged in again)."""
        configured = self._configured_refresh_token
        if stored is not None and (not configured or stored.descends_from(configured)):
            return stored
        if configured:
            if stored is not None:
                LOGGER.info("Configured refresh_token is newer than the token store; using it.")
            return StoredTokens.new_chain(configured)
        msg = f"no refresh token: set `refresh_token` or {LOGIN_HINT}"
        raise LoginExpiredError(msg)

    def _adopt_stored_access_token(self, chain: StoredTokens) -> bool:
        """Use the chain's access token if another process refreshed it moments ago."""
        self.refresh_token = chain.refresh_token
        token, expires_at = chain.access_token, chain.access_expires_at
        if token is None or token in self._rejected:
            return False
        # The chain was saved right after the token was issued: that is its lifetime.
        lifetime = expires_at - chain.updated_at if expires_at and chain.updated_at else None
        if (
            expires_at is not None
            and expires_at - self._margin(expires_at, lifetime) <= time.time()
        ):
            return False
        if token != self.access_token:
            LOGGER.debug("Using the access token another run refreshed.")
        self.access_token, self._expires_at, self._lifetime = token, expires_at, lifetime
        return True

    def _refresh(self, chain: StoredTokens, *, fallback: StoredTokens | None) -> None:
        try:
            answer = self._grant(chain.refresh_token)
        except LoginExpiredError:
            if fallback is None:
                raise
            LOGGER.warning("Configured refresh_token was refused; using the token store's.")
            # Remember the refused token as spent, so later runs do not send it again.
            chain = fallback.remembering(chain.refresh_token)
            answer = self._grant(chain.refresh_token)
        new_refresh = answer.get("refresh_token") or chain.refresh_token
        access = answer.get("access_token")
        if not isinstance(access, str) or not isinstance(new_refresh, str):
            msg = "Outlign's token endpoint answered without an access token; try again later"
            raise OutlignAPIError(msg)
        lifetime = answer.get("expires_in", 3600)
        expires_at = time.time() + float(lifetime) if lifetime else None
        # Save first: the old refresh token is already revoked, the new one lives only here.
        self._store.save(
            chain.rotated(refresh_token=new_refresh, access_token=access, expires_at=expires_at)
        )
        self.refresh_token, self.access_token, self._expires_at = new_refresh, access, expires_at
        self._lifetime = float(lifetime) if lifetime else None
        self.last_refreshed = None
        if self._refresh_after_rejection:
            self._token_from_rejection = access
            self._refresh_after_rejection = False
        LOGGER.info("Refreshed the Outlign access token (valid for %s s).", lifetime)

    def _grant(self, refresh_token: str) -> Mapping[str, Any]:
        """POST the refresh grant; retry only attempts the server cannot have processed."""
        for wait in (*SAFE_RETRY_WAITS, None):
            try:
                return self._post_grant(refresh_token)
            except _RetrySafeRefresh as retry:
                if wait is None:
                    break
                time.sleep(retry.wait if retry.wait is not None else wait)
            except requests.RequestException as exc:
                return self._after_ambiguous_failure(refresh_token, exc)
        msg = "Outlign's token endpoint kept failing; check its status and try again later"
        raise OutlignAPIError(msg)

    def _post_grant(self, refresh_token: str) -> Mapping[str, Any]:
        body = {**self.oauth_request_body, "refresh_token": refresh_token}
        try:
            response = self._session.post(
                self.auth_endpoint,
                data=body,
                headers={"Accept": "application/json", "User-Agent": self._user_agent},
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            if _safe_to_retry(exc):
                LOGGER.warning("Could not reach Outlign's token endpoint (%s); retrying.", exc)
                raise _RetrySafeRefresh from exc
            raise
        return self._read_grant_answer(response)

    def _read_grant_answer(self, response: requests.Response) -> Mapping[str, Any]:
        status = response.status_code
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if status == _HTTP_TOO_MANY_REQUESTS or status >= _HTTP_SERVER_ERROR:
            retry_after = response.headers.get("Retry-After", "")
            LOGGER.warning("Outlign's token endpoint answered %s; retrying.", status)
            raise _RetrySafeRefresh(float(retry_after) if retry_after.isdigit() else None)
        if not isinstance(answer, dict):
            msg = f"Outlign's token endpoint answered {status} with no JSON; try again later"
            raise OutlignAPIError(msg)
        error = answer.get("error")
        if status == requests.codes.ok and not error:
            return answer
        if error == "invalid_grant":
            msg = f"Outlign login has expired (refresh token revoked or expired): {LOGIN_HINT}"
            raise LoginExpiredError(msg)
        if error == "invalid_client":
            msg = (
                "Outlign rejected the OAuth client: check `client_id` and `client_secret` "
                "against the OAuth client registered in Outlign"
            )
            raise LoginExpiredError(msg)
        description = answer.get("error_description") or answer.get("message") or error
        msg = f"Outlign's token endpoint answered {status}: {description}"
        raise OutlignAPIError(msg)

    def _after_ambiguous_failure(
        self,
        refresh_token: str,
        error: requests.RequestException,
    ) -> Mapping[str, Any]:
        """The answer to a sent refresh was lost: the server may or may not have rotated.

        Try the same token once more; if the server says it is spent, another process may
        have finished the rotation, so look in the store before declaring the login lost.
        """
        LOGGER.warning("Lost the answer of Outlign's token endpoint (%s); retrying once.", error)
        try:
            return self._post_grant(refresh_token)
        except LoginExpiredError:
            stored = self._store.load()
            rotated_elsewhere = (
                stored is not None
                and stored.refresh_token != refresh_token
                and stored.descends_from(refresh_token)
            )
            if stored is not None and rotated_elsewhere:  # another process finished it
                return self._post_grant(stored.refresh_token)
            msg = (
                "Outlign may have rotated the refresh token while its answer was lost in a "
                f"network failure, so the login cannot continue: {LOGIN_HINT}"
            )
            raise LoginExpiredError(msg) from None
        except (requests.RequestException, _RetrySafeRefresh):
            # Twice no answer: an outage, not (yet) a lost login. The next run tries the
            # same token; the server tells it then whether the login survived.
            msg = (
                "Outlign's token endpoint did not answer a refresh twice; run again later. "
                f"If that run reports the login expired, {LOGIN_HINT}"
            )
            raise OutlignAPIError(msg) from None
