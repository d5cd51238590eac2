"""`tap-outlign-auth`: log in once (authorization code + PKCE) and check the connection.

`login` opens Outlign's authorize page, receives the redirect on a one-shot server bound to
127.0.0.1, checks `state`, exchanges the code and saves the tokens to the token store, where
the tap finds them. `--no-browser` is for headless servers: open the printed URL anywhere,
then paste the address the browser was sent to. `check` shows who the tap is connected as.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import secrets
import select
import sys
import threading
import time
import webbrowser
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from tap_outlign.cli import run_reporting_errors
from tap_outlign.errors import ConfigError, LoginExpiredError, OutlignAPIError
from tap_outlign.input_checks import read_config_file
from tap_outlign.settings import is_loopback
from tap_outlign.tap import TapOutlign
from tap_outlign.token_store import StoredTokens, fingerprint

if TYPE_CHECKING:
    from collections.abc import Sequence

SCOPE = "outlign:all"


def pkce_pair() -> tuple[str, str]:
    """A PKCE verifier and its S256 challenge (RFC 7636)."""
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def load_tap(config_files: Sequence[str]) -> TapOutlign:
    """The tap's settings from config files and TAP_OUTLIGN_* variables, as the tap reads them."""
    settings: dict[str, Any] = {}
    for path in config_files:
        settings |= read_config_file(path)
    return TapOutlign(
        config=settings,
        parse_env_config=True,
        validate_config=True,
        setup_mapper=False,
    )


class _CallbackHandler(BaseHTTPRequestHandler):
    """Answers the browser's redirect with a short page; remembers the query it carried."""

    callback_path: ClassVar[str] = "/"
    expected_state: ClassVar[str | None] = None
    received: ClassVar[dict[str, str] | None] = None
    # One request at a time: a connection that never sends (a browser's speculative
    # preconnect) must not hold the login for longer than this.
    timeout = 10

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != self.callback_path:
            self.send_error(404)
            return
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        type(self).received = query
        expected = type(self).expected_state
        ok = "code" in query and (
            expected is None or secrets.compare_digest(query.get("state", ""), expected)
        )
        body = (
            "tap-outlign received the login. You can close this tab; the terminal shows the result."
            if ok
            else "tap-outlign login failed; see the terminal."
        ).encode()
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silence the default access log: the query holds the authorization code."""


def _redirect_target(redirect_uri: str) -> tuple[int, str]:
    parts = urlsplit(redirect_uri)
    if parts.scheme != "http" or not is_loopback(parts.hostname) or not parts.port:
        msg = (
            "setting `redirect_uri` must be a loopback address with a port, such as "
            "http://127.0.0.1:8976/callback, for the browser login (or use --no-browser)"
        )
        raise ConfigError(msg)
    return parts.port, parts.path or "/"


class _OneShotServer(HTTPServer):
    """The login's callback server: quiet about clients that hang up."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser closing its tab early is not worth a traceback on the user's terminal."""


def _open_browser(authorize_url: str) -> None:
    # A text browser (lynx, w3m over SSH) set as BROWSER returns only when it is closed:
    # run it beside the callback server, not before it, or the redirect would never land.
    if not webbrowser.open(authorize_url):
        sys.stderr.write("Could not open a browser: open the address above yourself.\n")


def receive_redirect(
    redirect_uri: str, authorize_url: str, timeout: float, state: str | None = None
) -> dict[str, str]:
    """Open the browser and wait for one redirect on 127.0.0.1 only; then close the server."""
    port, path = _redirect_target(redirect_uri)
    handler: type[_CallbackHandler] = type(
        "CallbackHandler",
        (_CallbackHandler,),
        {"callback_path": path, "expected_state": state, "received": None},
    )
    try:
        server = _OneShotServer(("127.0.0.1", port), handler)
    except OSError as exc:
        msg = f"cannot listen on 127.0.0.1:{port} for the login redirect: {exc.strerror}"
        raise ConfigError(msg) from exc
    with server:
        sys.stderr.write(f"Opening your browser to log in to Outlign:\n  {authorize_url}\n")
        sys.stderr.flush()
        threading.Thread(
            target=_open_browser, args=(authorize_url,), name="browser", daemon=True
        ).start()
        deadline = time.monotonic() + timeout
        while (received := handler.received) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                msg = f"no login redirect arrived within {timeout:.0f} s; run login again"
                raise ConfigError(msg)
            server.timeout = remaining
            server.handle_request()
        return received


def read_pasted_redirect(authorize_url: str, timeout: float) -> dict[str, str]:
    """Headless login: print the URL, read back the address the browser was sent to."""
    sys.stderr.write(
        "Open this address in any browser and log in to Outlign:\n"
        f"  {authorize_url}\n"
        "The browser then lands on an address that may not load; copy it from the address "
        "bar and paste it here:\n"
    )
    sys.stderr.flush()
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    line = sys.stdin.readline().strip() if ready else ""
    if not line:
        msg = f"no redirect address was pasted within {timeout:.0f} s; run login again"
        raise ConfigError(msg)
    return {key: values[0] for key, values in parse_qs(urlsplit(line).query).items()}


def exchange_code(
    tap: TapOutlign,
    *,
    code: str,
    verifier: str,
) -> dict[str, Any]:
    """Trade the authorization code for tokens (the grant Outlign's docs describe)."""
    config = tap.config
    response = requests.post(
        f"{config['api_url'].rstrip('/')}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "client_id": config["client_id"],
            "client_secret": config["client_secret"],
            "code": code,
            "redirect_uri": config["redirect_uri"],
            "code_verifier": verifier,
        },
        headers={"Accept": "application/json", "User-Agent": tap.user_agent},
        timeout=float(config["request_timeout"]),
    )
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if response.ok and isinstance(answer, dict) and answer.get("refresh_token"):
        return answer
    error = answer.get("error_description") or answer.get("message") if answer else None
    msg = f"Outlign refused the authorization code ({response.status_code}: {error}); log in again"
    raise LoginExpiredError(msg)


def login(tap: TapOutlign, *, browser: bool, timeout: float) -> None:
    """The whole authorization-code flow, ending with the tokens in the token store."""
    config = tap.config
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(24)
    query = urlencode(
        {
            "client_id": config["client_id"],
            "redirect_uri": config["redirect_uri"],
            "response_type": "code",
            "scope": SCOPE,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    authorize_url = f"{config['api_url'].rstrip('/')}/oauth/authorize?{query}"
    if browser:
        answer = receive_redirect(config["redirect_uri"], authorize_url, timeout, state)
    else:
        answer = read_pasted_redirect(authorize_url, timeout)
    if not secrets.compare_digest(answer.get("state", ""), state):
        msg = "the login answer's `state` does not match this login (possible CSRF); aborted"
        raise LoginExpiredError(msg)
    if "code" not in answer:
        msg = f"Outlign did not grant access ({answer.get('error', 'no code')}); log in again"
        raise LoginExpiredError(msg)
    tokens = exchange_code(tap, code=answer["code"], verifier=verifier)
    store = tap.authenticator.store
    expires_in = tokens.get("expires_in")
    with store.locked():
        # This login is newer than the stored chain and than a refresh_token still in the
        # config: record them as superseded, or the tap would take the configured one for
        # a newer login than this and go back to it.
        previous = store.load()
        superseded = list(previous.lineage) if previous else []
        if config.get("refresh_token"):
            superseded.append(fingerprint(config["refresh_token"]))
        chain = StoredTokens.new_chain(tokens["refresh_token"], superseding=superseded)
        chain.access_token = tokens.get("access_token")
        chain.access_expires_at = time.time() + float(expires_in) if expires_in else None
        chain.updated_at = time.time()
        store.save(chain)
    sys.stdout.write(
        f"Logged in to {config['api_url']}. Tokens saved to {store.path} (mode 0600).\n"
        "Next steps:\n"
        "  - Run the tap with the same settings; it reads and rotates the tokens in that "
        "file, so no refresh_token setting is needed.\n"
        "  - With Meltano: `meltano config tap-outlign set token_store_path "
        f"{store.path}` and `meltano run tap-outlign <target>`.\n"
        "  - On a server: run this login there with --no-browser, or copy the file to the "
        "server (keep it mode 0600) and point token_store_path at it. Use one token store "
        "per login: Outlign revokes each refresh token once it is used.\n"
    )


def check(tap: TapOutlign) -> None:
    """Refresh if needed, ask Outlign who we are, and report the token and rate limit."""
    authenticator = tap.authenticator
    token = authenticator.ensure_token()
    response = requests.get(
        f"{tap.config['api_url'].rstrip('/')}/api/v1/me",
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": tap.user_agent,
        },
        timeout=float(tap.config["request_timeout"]),
    )
    try:
        body = response.json()
    except ValueError:
        body = None
    if not response.ok or not isinstance(body, dict):
        message = body.get("message") if isinstance(body, dict) else response.reason
        msg = f"Outlign answered {response.status_code} ({message}) to GET /api/v1/me"
        raise OutlignAPIError(msg)
    user = body.get("data", body)
    expires_at = authenticator.expires_at
    valid = (
        dt.datetime.fromtimestamp(expires_at, tz=dt.timezone.utc).isoformat(timespec="seconds")
        if expires_at
        else "unknown"
    )
    limit = response.headers.get("X-RateLimit-Limit", "?")
    remaining = response.headers.get("X-RateLimit-Remaining", "?")
    sys.stdout.write(
        f"Connected to {tap.config['api_url']} as {user.get('name')} <{user.get('email')}> "
        f"(user id {user.get('id')}).\n"
        f"Access token valid until {valid}.\n"
        f"Rate limit: {remaining} of {limit} requests left in the current window.\n"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tap-outlign-auth",
        description="Log tap-outlign in to Outlign, or check its connection.",
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        help="tap config file (repeatable); TAP_OUTLIGN_* environment variables also apply",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    login_parser = commands.add_parser("login", help="log in with your browser")
    login_parser.add_argument(
        "--no-browser",
        action="store_true",
        help="print the login address and read the redirect address from stdin",
    )
    login_parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for the login"
    )
    commands.add_parser("check", help="show who the tap is connected as")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point for `tap-outlign-auth`."""
    arguments = _parser().parse_args(argv)

    def run() -> None:
        tap = load_tap(arguments.config)
        if arguments.command == "login":
            login(tap, browser=not arguments.no_browser, timeout=arguments.timeout)
        else:
            check(tap)

    run_reporting_errors(run, prog="tap-outlign-auth")
