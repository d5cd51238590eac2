"""No secret ever reaches stdout or stderr, at any log level (runs last: `zz`).

Its own test drives every command at LOGLEVEL=DEBUG, including refreshes, a 401, failures
with tracebacks in the debug log, and both login modes; the session test then checks
everything the other tests' processes printed against every secret their sandboxes issued.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import run_tap
from tests.test_login import browser_login, free_port, login_config, run_auth

if TYPE_CHECKING:
    from pathlib import Path

#: Public, fixed parts of tokens (Passport's refresh-token prefix, the JWT header).
_PUBLIC_PREFIXES = ("def50200", "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.", "sandbox-secret-")
_FRAGMENT = 20


def fragments(secret: str) -> set[str]:
    """The secret and pieces of it, so a truncated or sliced secret is caught too."""
    found = {secret}
    random_part = secret
    if random_part.count(".") == 2:  # a JWT: its payload starts with public claims
        random_part = random_part.rsplit(".", 1)[1]
    for prefix in _PUBLIC_PREFIXES:
        random_part = random_part.removeprefix(prefix)
    if len(random_part) <= _FRAGMENT:
        found.add(random_part)
        return found
    middle = len(random_part) // 2 - _FRAGMENT // 2
    found.update(
        {
            random_part[:_FRAGMENT],
            random_part[middle : middle + _FRAGMENT],
            random_part[-_FRAGMENT:],
        }
    )
    return found


def leaks(texts: list[str], secrets: set[str]) -> list[str]:
    """Descriptions (never the secret itself) of every secret found in `texts`."""
    return [
        f"output #{index}: a secret of length {len(secret)}"
        for index, text in enumerate(texts)
        for secret in secrets
        if any(piece in text for piece in fragments(secret))
    ]


def _session_collections() -> tuple[list[str], set[str]]:
    """CAPTURED_OUTPUT and ISSUED_SECRETS of every loaded copy of the conftest module.

    Without tests/__init__.py pytest loads conftest.py as `conftest` (whose `sandbox`
    fixture fills ISSUED_SECRETS) while test modules import `tests.conftest` (whose
    `run_tap` fills CAPTURED_OUTPUT): two module objects, two sets of globals.
    """
    output: list[str] = []
    secrets: set[str] = set()
    for name in ("conftest", "tests.conftest"):
        module = sys.modules.get(name)
        if module is not None:
            output.extend(getattr(module, "CAPTURED_OUTPUT", []))
            secrets.update(getattr(module, "ISSUED_SECRETS", set()))
    return output, secrets


def test_every_command_at_debug_level_keeps_secrets_out_of_the_output(
    sandbox: Any, tap_config: dict[str, Any], tmp_path: Path
) -> None:
    outputs: list[str] = []
    sandbox.configure(token_lifetime=2, latency_ms=200)
    config = {**tap_config, "max_concurrency": 1}

    sync = run_tap(config, tmp_path)  # refreshes mid-sync
    outputs += [sync.stdout, sync.stderr]
    assert sync.returncode == 0, sync.stderr
    assert sandbox.state()["counts"]["refresh_grants"] >= 2
    sandbox.configure(latency_ms=0, token_lifetime=3600)

    discover = run_tap(config, tmp_path, "--discover")
    outputs += [discover.stdout, discover.stderr]
    assert discover.returncode == 0, discover.stderr

    check = run_auth(config, tmp_path, "check")
    outputs += [check.stdout, check.stderr]
    assert check.returncode == 0, check.stderr

    sandbox.configure(
        faults=[{"path": "/api/v1/companies", "action": "status", "status": 401, "nth": [2]}]
    )
    after_401 = run_tap(config, tmp_path)
    outputs += [after_401.stdout, after_401.stderr]
    assert after_401.returncode == 0, after_401.stderr

    (tmp_path / "login").mkdir()
    login, _, _ = browser_login(sandbox, tmp_path / "login")
    outputs += [login.stdout, login.stderr]
    assert login.returncode == 0, login.stderr
    pasted_config = login_config(sandbox, tmp_path / "login", free_port())
    pasted = run_auth(
        pasted_config,
        tmp_path / "login",
        "login",
        "--no-browser",
        "--timeout",
        "5",
        stdin=f"{pasted_config['redirect_uri']}?code=def50200{'ab' * 40}&state=wrong\n",
    )
    outputs += [pasted.stdout, pasted.stderr]
    assert pasted.returncode == 1  # state mismatch, with a debug traceback

    # Failures: the debug log carries their tracebacks.
    sandbox.configure(faults=[{"path": "/oauth/token", "action": "drop_after", "nth": [1]}])
    fresh = {
        **config,
        "refresh_token": sandbox.issue_tokens()["refresh_token"],
        "token_store_path": str(tmp_path / "other-store" / "tokens.json"),
    }
    lost = run_tap(fresh, tmp_path)
    outputs += [lost.stdout, lost.stderr]
    assert lost.returncode == 1
    sandbox.configure(faults=[])
    sandbox.revoke()
    revoked = run_tap(config, tmp_path)
    outputs += [revoked.stdout, revoked.stderr]
    assert revoked.returncode == 1
    revoked_check = run_auth(config, tmp_path, "check")
    outputs += [revoked_check.stdout, revoked_check.stderr]
    assert revoked_check.returncode == 1
    bad_client = run_tap({**fresh, "client_secret": "wrong-" + "x" * 30}, tmp_path)
    outputs += [bad_client.stdout, bad_client.stderr]
    assert bad_client.returncode == 1

    assert any("DEBUG" in text for text in outputs), "the runs must log at DEBUG level"
    assert any("Traceback" in text for text in outputs), "failures must log tracebacks"
    secrets = set(sandbox.secrets()["all"])
    assert secrets
    assert not leaks(outputs, secrets)


def test_no_output_of_the_whole_session_holds_a_secret() -> None:
    output, secrets = _session_collections()
    if not output:
        pytest.skip("no other test ran a process in this session")
    assert secrets, "the sandbox fixture must have recorded the secrets it issued"
    assert not leaks(output, secrets)


def test_the_leak_check_finds_a_truncated_secret() -> None:
    """The checker itself: it finds a planted secret's slice, not the public prefixes."""
    secret = "def50200" + "0123456789abcdef" * 6
    planted = [f"refresh_token={secret[:30]}..."]
    assert leaks(planted, {secret})
    assert not leaks(["def50200 eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9."], {secret})
