"""OAuth2 server emulating Laravel Passport (league/oauth2-server): codes, PKCE, rotation.

Assumption: Outlign runs Passport, so tokens look like Passport's (an RS256 JWT access token,
a `def50200...` refresh token), every refresh rotates the refresh token, and errors carry
league/oauth2-server's JSON texts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

if TYPE_CHECKING:
    from tap_outlign.sandbox.config import SandboxConfig

USER = {"id": 123, "email": "user@example.com", "name": "John Doe"}
CODE_LIFETIME = 600.0
_JWT_HEADER = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9"
_PKCE = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
_GRANT_TEXT = (
    "The provided authorization grant (e.g., authorization code, resource owner credentials) "
    "or refresh token is invalid, expired, revoked, does not match the redirection URI used "
    "in the authorization request, or was issued to another client."
)
_REQUEST_TEXT = (
    "The request is missing a required parameter, includes an invalid parameter value, "
    "includes a parameter more than once, or is otherwise malformed."
)
_CLIENT_TEXT = "Client authentication failed"
_REFRESH_TEXT = "The refresh token is invalid."


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def oauth_error(error: str, description: str, hint: str | None = None) -> dict[str, Any]:
    """A league/oauth2-server error payload (Passport adds `message` for compatibility)."""
    payload: dict[str, Any] = {"error": error, "error_description": description}
    if hint:
        payload["hint"] = hint
    payload["message"] = description
    return payload


def _invalid_request(parameter: str, hint: str | None = None) -> tuple[int, dict[str, Any]]:
    return 400, oauth_error(
        "invalid_request", _REQUEST_TEXT, hint or f"Check the `{parameter}` parameter"
    )


def _invalid_grant(hint: str) -> tuple[int, dict[str, Any]]:
    return 400, oauth_error("invalid_grant", _GRANT_TEXT, hint)


def _invalid_refresh(hint: str) -> tuple[int, dict[str, Any]]:
    return 400, oauth_error("invalid_grant", _REFRESH_TEXT, hint)


INVALID_CLIENT = oauth_error("invalid_client", _CLIENT_TEXT)


@dataclass
class AccessToken:
    """An issued access token; `refresh_token` is its pair (revoked together)."""

    client_id: str
    expires_at: float
    refresh_token: str | None
    revoked: bool = False


@dataclass
class RefreshToken:
    """An issued refresh token and the access token issued with it."""

    client_id: str
    access_token: str
    expires_at: float
    revoked: bool = False


@dataclass
class AuthCode:
    """An authorization code with what it was issued for (redirect URI, PKCE challenge)."""

    client_id: str
    redirect_uri: str
    challenge: str | None
    method: str
    expires_at: float
    used: bool = False


@dataclass
class GrantResult:
    """The answer to a token request, plus what the counters need to know."""

    status: int
    payload: dict[str, Any]
    grant: str | None = None  # "refresh" or "code" when a grant succeeded


class OAuthServer:
    """Holds every code and token; not thread-safe on its own (the Sandbox lock guards it)."""

    def __init__(self) -> None:
        """Start with no codes and no tokens."""
        self.access: dict[str, AccessToken] = {}
        self.refresh: dict[str, RefreshToken] = {}
        self.codes: dict[str, AuthCode] = {}
        # every secret ever minted, by kind, for leak checks (kept across sandbox resets)
        self.issued: dict[str, list[str]] = {
            "access_tokens": [],
            "refresh_tokens": [],
            "authorization_codes": [],
        }

    # -- issuing -----------------------------------------------------------------------------

    def _access_token(self, client_id: str, lifetime: int) -> str:
        now = int(time.time())
        claims = {
            "aud": client_id,
            "jti": secrets.token_hex(40),
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "sub": str(USER["id"]),
            "scopes": ["outlign:all"],
        }
        payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
        return f"{_JWT_HEADER}.{payload}.{_b64url(secrets.token_bytes(256))}"

    def issue_pair(self, config: SandboxConfig) -> dict[str, Any]:
        """Mint an access + refresh token pair; the answer is Passport's token JSON."""
        now = time.monotonic()
        access = self._access_token(config.client_id, config.token_lifetime)
        refresh = "def50200" + secrets.token_hex(100)
        self.access[access] = AccessToken(config.client_id, now + config.token_lifetime, refresh)
        self.refresh[refresh] = RefreshToken(
            config.client_id, access, now + config.refresh_token_lifetime
        )
        self.issued["access_tokens"].append(access)
        self.issued["refresh_tokens"].append(refresh)
        return {
            "token_type": "Bearer",
            "expires_in": config.token_lifetime,
            "access_token": access,
            "refresh_token": refresh,
        }

    def check_bearer(self, token: str) -> bool:
        """Whether `token` is a known, unrevoked, unexpired access token."""
        found = self.access.get(token)
        return found is not None and not found.revoked and found.expires_at > time.monotonic()

    def revoke(self, refresh_token: str | None = None) -> int:
        """Revoke one refresh token and its access token, or everything; return how many."""
        targets = [refresh_token] if refresh_token is not None else list(self.refresh)
        revoked = 0
        for token in targets:
            found = self.refresh.get(token)
            if found is None:
                continue
            revoked += int(not found.revoked)
            found.revoked = True
            if found.access_token in self.access:
                self.access[found.access_token].revoked = True
        if refresh_token is None:
            for access in self.access.values():
                access.revoked = True
        return revoked

    # -- /oauth/authorize ----------------------------------------------------------------------

    def authorize(
        self, query: dict[str, str], config: SandboxConfig
    ) -> tuple[int, dict[str, Any] | str]:
        """Auto-approve: (302, Location) with a code, or (400, error JSON)."""
        if query.get("client_id") != config.client_id:
            return 400, INVALID_CLIENT
        redirect_uri = query.get("redirect_uri")
        if not redirect_uri:
            return _invalid_request("redirect_uri")
        if query.get("response_type") != "code":
            return 400, oauth_error(
                "unsupported_response_type",
                "The authorization server does not support obtaining an access token using "
                "this method.",
            )
        challenge = query.get("code_challenge")
        method = query.get("code_challenge_method") or "plain"
        if challenge is not None and (
            method not in ("plain", "S256") or not _PKCE.match(challenge)
        ):
            return _invalid_request(
                "code_challenge", "Code challenge must follow the specifications of RFC-7636."
            )
        params: dict[str, str]
        if config.deny_authorization:
            text = "The resource owner or authorization server denied the request."
            hint = "The user denied the request"
            params = {
                "error": "access_denied",
                "error_description": text,
                "hint": hint,
                "message": text,
            }
        else:
            code = "def50200" + secrets.token_hex(160)
            self.codes[code] = AuthCode(
                config.client_id, redirect_uri, challenge, method, time.monotonic() + CODE_LIFETIME
            )
            self.issued["authorization_codes"].append(code)
            params = {"code": code}
        if "state" in query:
            params["state"] = query["state"]
        joiner = "&" if "?" in redirect_uri else "?"
        return 302, redirect_uri + joiner + urlencode(params)

    # -- /oauth/token --------------------------------------------------------------------------

    def token(
        self, form: dict[str, str], basic: tuple[str, str] | None, config: SandboxConfig
    ) -> GrantResult:
        """Answer a token request (authorization_code or refresh_token grant)."""
        grant_type = form.get("grant_type")
        if grant_type not in ("authorization_code", "refresh_token"):
            if not grant_type:
                return GrantResult(*_invalid_request("grant_type"))
            return GrantResult(
                400,
                oauth_error(
                    "unsupported_grant_type",
                    "The authorization grant type is not supported by the authorization server.",
                    "Check that all required parameters have been provided",
                ),
            )
        client_id, client_secret = basic or (form.get("client_id"), form.get("client_secret"))
        if not client_id:
            return GrantResult(*_invalid_request("client_id"))
        if client_id != config.client_id or not hmac.compare_digest(
            (client_secret or "").encode(), config.client_secret.encode()
        ):
            return GrantResult(401, INVALID_CLIENT)
        if grant_type == "refresh_token":
            return self._refresh_grant(form, config)
        return self._code_grant(form, config)

    def _refresh_grant(self, form: dict[str, str], config: SandboxConfig) -> GrantResult:
        token = form.get("refresh_token")
        if not token:
            return GrantResult(*_invalid_request("refresh_token"))
        found = self.refresh.get(token)
        if found is None:
            return GrantResult(*_invalid_refresh("Cannot decrypt the refresh token"))
        if found.client_id != config.client_id:
            return GrantResult(*_invalid_refresh("Token is not linked to client"))
        if found.expires_at <= time.monotonic():
            return GrantResult(*_invalid_refresh("Token has expired"))
        if found.revoked:
            return GrantResult(*_invalid_refresh("Token has been revoked"))
        self.revoke(token)  # Passport rotation: the used pair dies, a new pair is issued
        return GrantResult(200, self.issue_pair(config), grant="refresh")

    def _code_grant(self, form: dict[str, str], config: SandboxConfig) -> GrantResult:  # noqa: PLR0911 - one return per Passport error
        code = form.get("code")
        if not code:
            return GrantResult(*_invalid_request("code"))
        found = self.codes.get(code)
        if found is None:
            return GrantResult(*_invalid_grant("Cannot decrypt the authorization code"))
        if found.used:
            return GrantResult(*_invalid_grant("Authorization code has been revoked"))
        if found.expires_at <= time.monotonic():
            return GrantResult(*_invalid_grant("Authorization code has expired"))
        if found.client_id != config.client_id:
            return GrantResult(*_invalid_grant("Authorization code was not issued to this client"))
        redirect_uri = form.get("redirect_uri")
        if not redirect_uri:
            return GrantResult(*_invalid_request("redirect_uri"))
        if redirect_uri != found.redirect_uri:
            return GrantResult(*_invalid_grant("Invalid redirect URI"))
        if found.challenge is not None:
            failure = self._check_pkce(found, form.get("code_verifier"))
            if failure is not None:
                return failure
        found.used = True  # single use
        return GrantResult(200, self.issue_pair(config), grant="code")

    @staticmethod
    def _check_pkce(code: AuthCode, verifier: str | None) -> GrantResult | None:
        if not verifier:
            return GrantResult(*_invalid_request("code_verifier"))
        if not _PKCE.match(verifier):
            hint = "Code Verifier must follow the specifications of RFC-7636."
            return GrantResult(*_invalid_request("code_verifier", hint))
        expected = code.challenge or ""
        if code.method == "S256":
            computed = _b64url(hashlib.sha256(verifier.encode("ascii")).digest())
        else:
            computed = verifier
        if not hmac.compare_digest(computed.encode(), expected.encode()):
            return GrantResult(*_invalid_grant("Failed to verify `code_verifier`."))
        return None

    def secrets(self, client_secrets: list[str]) -> dict[str, Any]:
        """Every secret held or ever issued, grouped, plus a flat `all` list.

        `client_secrets` lists every client secret ever configured, the current one last.
        """
        grouped: dict[str, Any] = {"client_secrets": client_secrets, **self.issued}
        flat = [secret for group in grouped.values() for secret in group]
        return {"client_secret": client_secrets[-1], **grouped, "all": flat}
