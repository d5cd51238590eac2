"""`tap-outlign-auth login` and `check` as real processes against the sandbox.

The browser is played by a small script set as `BROWSER` (Python's `webbrowser` honours
it): it asks the sandbox's authorize endpoint for a code and follows the redirect to the
login's callback server, as a real browser would.
"""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.conftest import (
    AUTH,
    assert_each_once,
    remember_output,
    run_command,
    run_tap,
    tap_env,
    write_config,
)

LOGIN_TIMEOUT = 60

FAKE_BROWSER = """\
#!{python}
# Plays the user's browser: authorize (auto-approved), then follow the redirect.
import json, os, socket, sys
from urllib.parse import parse_qsl, urlencode, urlsplit

import psutil
import requests

url = sys.argv[1]
mode = os.environ.get("FAKE_BROWSER_MODE", "follow")
report = {{}}
answer = requests.get(url, allow_redirects=False, timeout=10)
location = answer.headers["Location"]
parts = urlsplit(location)
port = parts.port
report["listeners"] = sorted(
    c.laddr.ip
    for c in psutil.net_connections("inet")
    if c.status == psutil.CONN_LISTEN and c.laddr.port == port
)
reachable = {{}}
for addresses in psutil.net_if_addrs().values():
    for address in addresses:
        if address.family != socket.AF_INET or address.address.startswith("127."):
            continue
        try:
            socket.create_connection((address.address, port), timeout=2).close()
            reachable[address.address] = True
        except OSError:
            reachable[address.address] = False
report["non_loopback_reachable"] = reachable
if mode == "bad_state":
    query = dict(parse_qsl(parts.query))
    query["state"] = "forged-" + query.get("state", "")
    location = parts._replace(query=urlencode(query)).geturl()
    final = requests.get(location, timeout=10)
else:
    final = requests.get(url, allow_redirects=True, timeout=10)
report["status"] = final.status_code
report["body"] = final.text
with open(os.environ["FAKE_BROWSER_REPORT"], "w") as handle:
    json.dump(report, handle)
"""


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_refuses(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:`port`."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def login_config(sandbox: Any, tmp_path: Path, port: int) -> dict[str, Any]:
    """Settings for a first login: no refresh token yet, a loopback redirect URI."""
    return {
        "api_url": sandbox.url,
        "client_id": sandbox.config.client_id,
        "client_secret": sandbox.config.client_secret,
        "redirect_uri": f"http://127.0.0.1:{port}/callback",
        "token_store_path": str(tmp_path / "store" / "tokens.json"),
        "page_size": 50,
        "request_timeout": 10,
    }


def fake_browser(tmp_path: Path) -> Path:
    """Write the fake browser script; returns its path (usable as BROWSER)."""
    script = tmp_path / "fake-browser"
    script.write_text(FAKE_BROWSER.format(python=sys.executable))
    script.chmod(0o700)
    return script


def run_auth(
    config: dict[str, Any],
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = LOGIN_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run `tap-outlign-auth --config <file> <args>`, remembering its output for leak checks."""
    config_file = write_config(config, tmp_path, "auth-config.json")
    return run_command(
        [AUTH, "--config", str(config_file), *args], env=env, stdin=stdin, timeout=timeout
    )


def browser_login(
    sandbox: Any,
    tmp_path: Path,
    *,
    mode: str = "follow",
    env: dict[str, str] | None = None,
    settings: dict[str, Any] | None = None,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], dict[str, Any]]:
    """Log in with the fake browser; returns the process, the config and the browser's report."""
    port = free_port()
    config = {**login_config(sandbox, tmp_path, port), **(settings or {})}
    report = tmp_path / "browser-report.json"
    proc = run_auth(
        config,
        tmp_path,
        "login",
        "--timeout",
        "30",
        env={
            "BROWSER": str(fake_browser(tmp_path)),
            "FAKE_BROWSER_MODE": mode,
            "FAKE_BROWSER_REPORT": str(report),
            **(env or {}),
        },
    )
    seen = json.loads(report.read_text()) if report.exists() else {}
    return proc, config, seen


def assert_private_store(path: Path) -> dict[str, Any]:
    """The store is 0600 in a 0700 directory and holds valid JSON; returns it."""
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def test_browser_login_saves_tokens_that_the_tap_then_uses(
    sandbox: Any, tmp_path: Path, companies_ids: list[int]
) -> None:
    proc, config, seen = browser_login(sandbox, tmp_path)

    assert proc.returncode == 0, proc.stderr
    assert seen["status"] == 200, seen
    assert "received the login" in seen["body"]
    store = Path(config["token_store_path"])
    document = assert_private_store(store)
    [chain] = document["credentials"].values()
    assert chain["refresh_token"] in sandbox.secrets()["refresh_tokens"]
    assert "Next steps" in proc.stdout
    assert sandbox.state()["counts"]["code_grants"] == 1
    # The callback server listened on loopback only, and is gone once the login is done.
    port = urlsplit(config["redirect_uri"]).port
    assert port is not None
    assert seen["listeners"] == ["127.0.0.1"]
    assert not any(seen["non_loopback_reachable"].values()), seen["non_loopback_reachable"]
    assert port_refuses(port)

    run = run_tap(config, tmp_path)  # no refresh_token in the config: the store only

    assert run.returncode == 0, run.stderr
    assert_each_once(run.records("companies"), companies_ids)
    assert sandbox.state()["counts"]["invalid_grant"] == 0


def test_login_rejects_a_forged_state(sandbox: Any, tmp_path: Path) -> None:
    proc, config, seen = browser_login(sandbox, tmp_path, mode="bad_state")

    assert proc.returncode == 1
    assert seen["status"] == 400
    [line] = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert line.startswith("tap-outlign-auth: error: ")
    assert "state" in line
    assert "Traceback" not in proc.stderr
    assert not Path(config["token_store_path"]).exists()
    assert sandbox.state()["counts"]["code_grants"] == 0  # the code was never exchanged


def test_login_without_a_browser_reads_the_pasted_redirect(
    sandbox: Any, tmp_path: Path, companies_ids: list[int]
) -> None:
    config = login_config(sandbox, tmp_path, free_port())
    config_file = write_config(config, tmp_path, "auth-config.json")
    process = subprocess.Popen(
        [AUTH, "--config", str(config_file), "login", "--no-browser", "--timeout", "30"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=tap_env(),
    )
    try:
        assert process.stderr is not None
        assert process.stdin is not None
        authorize_url = ""
        deadline = time.monotonic() + 20
        while not authorize_url and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            if "/oauth/authorize?" in line:
                authorize_url = line.strip()
        assert authorize_url, "the login never printed the authorize URL"
        query = parse_qs(urlsplit(authorize_url).query)
        assert query["code_challenge_method"] == ["S256"]
        assert query["scope"] == ["outlign:all"]
        answer = requests.get(authorize_url, allow_redirects=False, timeout=10)
        location = answer.headers["Location"]
        assert location.startswith(config["redirect_uri"] + "?")
        stdout, stderr = process.communicate(location + "\n", timeout=LOGIN_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    remember_output(stdout, stderr, authorize_url)

    assert process.returncode == 0, stderr
    assert_private_store(Path(config["token_store_path"]))
    run = run_tap(config, tmp_path)
    assert run.returncode == 0, run.stderr
    assert_each_once(run.records("companies"), companies_ids)


def test_login_times_out_with_one_line(sandbox: Any, tmp_path: Path) -> None:
    config = login_config(sandbox, tmp_path, free_port())

    proc = run_auth(config, tmp_path, "login", "--no-browser", "--timeout", "1", stdin="")

    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    [line] = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert "login again" in line or "run login again" in line


def test_check_names_the_user(sandbox: Any, tap_config: dict[str, Any], tmp_path: Path) -> None:
    proc = run_auth(tap_config, tmp_path, "check")

    assert proc.returncode == 0, proc.stderr
    assert "John Doe" in proc.stdout
    assert "user@example.com" in proc.stdout
    assert "Rate limit" in proc.stdout
    # check rotated the seed: the store holds the chain, and the tap continues from it.
    run = run_tap(tap_config, tmp_path)
    assert run.returncode == 0, run.stderr
    assert sandbox.state()["counts"]["invalid_grant"] == 0


def test_check_with_a_revoked_login_fails_in_one_line(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path
) -> None:
    sandbox.revoke()

    proc = run_auth(tap_config, tmp_path, "check", env={"LOGLEVEL": "INFO"})

    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    [line] = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert line.startswith("tap-outlign-auth: error: ")
    assert "tap-outlign-auth login" in line


@pytest.mark.parametrize("variable", ["TAP_OUTLIGN_CLIENT_SECRET"])
def test_check_reads_settings_from_the_environment(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path, variable: str
) -> None:
    partial = {k: v for k, v in tap_config.items() if k != "client_secret"}

    proc = run_auth(partial, tmp_path, "check", env={variable: tap_config["client_secret"]})

    assert proc.returncode == 0, proc.stderr
    assert "John Doe" in proc.stdout


def test_login_refuses_a_non_loopback_redirect_uri(sandbox: Any, tmp_path: Path) -> None:
    config = {
        **login_config(sandbox, tmp_path, free_port()),
        "redirect_uri": "https://x.example/cb",
    }

    proc = run_auth(config, tmp_path, "login", "--timeout", "5", env={"BROWSER": "/bin/false"})

    assert proc.returncode == 1
    [line] = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert "redirect_uri" in line
    assert not Path(config["token_store_path"]).exists()


def test_a_login_wins_over_an_older_refresh_token_left_in_the_config(
    sandbox: Any, tmp_path: Path, companies_ids: list[int]
) -> None:
    """After `login`, a refresh_token still in the (Meltano) config is older, not newer."""
    old_seed = sandbox.issue_tokens()["refresh_token"]  # still valid on the server
    proc, config, _ = browser_login(sandbox, tmp_path, settings={"refresh_token": old_seed})
    assert proc.returncode == 0, proc.stderr
    document = assert_private_store(Path(config["token_store_path"]))
    [logged_in] = document["credentials"].values()

    run = run_tap(config, tmp_path)  # the same config, old refresh_token and all

    assert run.returncode == 0, run.stderr
    assert_each_once(run.records("companies"), companies_ids)
    [chain] = json.loads(Path(config["token_store_path"]).read_text())["credentials"].values()
    assert chain["refresh_token"] == logged_in["refresh_token"]  # the login's access token
    assert sandbox.state()["counts"]["refresh_grants"] == 0  # was still valid: no refresh
