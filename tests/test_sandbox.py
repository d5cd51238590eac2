"""Focused tests of the sandbox (the local Outlign API) over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import json
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tap_outlign.sandbox import SandboxConfig, SandboxServer

if TYPE_CHECKING:
    from pathlib import Path

CLIENT = SandboxConfig()


@pytest.fixture
def server():
    with SandboxServer(SandboxConfig(companies=57)) as running:
        yield running


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


def bearer(server: SandboxServer) -> dict[str, str]:
    token = server.issue_tokens()["access_token"]
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


def refresh(http: requests.Session, server: SandboxServer, token: str) -> requests.Response:
    form = {
        "grant_type": "refresh_token",
        "client_id": CLIENT.client_id,
        "client_secret": CLIENT.client_secret,
        "refresh_token": token,
    }
    return http.post(f"{server.url}/oauth/token", data=form, timeout=5)


def test_refresh_rotates_and_revokes_the_used_token(server, http):
    seed = server.issue_tokens()
    first = refresh(http, server, seed["refresh_token"])
    assert first.status_code == 200
    pair = first.json()
    assert pair["token_type"] == "Bearer"  # noqa: S105
    assert pair["expires_in"] == 3600
    assert pair["access_token"].startswith("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.")
    assert pair["refresh_token"].startswith("def50200")
    assert pair["refresh_token"] != seed["refresh_token"]

    again = refresh(http, server, seed["refresh_token"])
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert again.json()["hint"] == "Token has been revoked"
    old = http.get(
        f"{server.url}/api/v1/me",
        headers={"Authorization": f"Bearer {seed['access_token']}"},
        timeout=5,
    )
    assert old.status_code == 401  # the used pair's access token died with it
    me = http.get(
        f"{server.url}/api/v1/me",
        headers={"Authorization": f"Bearer {pair['access_token']}"},
        timeout=5,
    )
    assert me.json() == {"id": 123, "email": "user@example.com", "name": "John Doe"}

    bad_client = http.post(
        f"{server.url}/oauth/token",
        data={"grant_type": "refresh_token", "client_id": CLIENT.client_id,
              "client_secret": "nope", "refresh_token": pair["refresh_token"]},
        timeout=5,
    )  # fmt: skip
    assert bad_client.status_code == 401
    assert bad_client.json()["error"] == "invalid_client"
    counts = server.state()["counts"]
    assert counts["refresh_grants"] == 1
    assert counts["invalid_grant"] == 1
    assert counts["token_requests"] == 3
    assert all(s in server.secrets()["all"] for s in (seed["refresh_token"], CLIENT.client_secret))


@pytest.mark.parametrize("shape", ["resource", "paginate", "simple", "cursor"])
def test_each_paginated_shape_walks_every_company_once(server, http, shape):
    server.configure(shape=shape)
    headers = bearer(server)
    url: str | None = f"{server.url}/api/v1/companies?per_page=10"
    seen: list[int] = []
    while url:
        assert "per_page" not in url or not seen  # Laravel's links omit per_page
        answer = http.get(url, headers=headers, params={"per_page": 10}, timeout=5)
        assert answer.status_code == 200
        assert answer.headers["Content-Type"] == "application/json"
        body = answer.json()
        assert len(body["data"]) <= 10
        seen += [company["id"] for company in body["data"]]
        url = body["links"]["next"] if shape == "resource" else body["next_page_url"]
        assert len(seen) <= 57
    assert seen == [company["id"] for company in server.companies()]
    assert seen == list(range(1, 58))


def test_unpaginated_shapes_and_past_the_end(server, http):
    headers = bearer(server)
    past = http.get(f"{server.url}/api/v1/companies?page=99", headers=headers, timeout=5).json()
    assert past["data"] == []
    assert past["meta"]["total"] == 57
    assert past["meta"]["last_page"] == 4
    assert past["links"]["next"] is None
    for shape in ("array", "data"):
        server.configure(shape=shape)
        body = http.get(f"{server.url}/api/v1/companies", headers=headers, timeout=5).json()
        records = body if shape == "array" else body["data"]
        assert records == server.companies()
    assert all("lifecycle_stage" in company for company in records)


def test_api_requires_a_valid_bearer_token(server, http):
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        answer = http.get(f"{server.url}/api/v1/companies", headers=headers, timeout=5)
        assert answer.status_code == 401
        assert answer.json() == {"message": "Unauthenticated."}
        assert "X-RateLimit-Remaining" in answer.headers


def test_fault_every_and_mutate(server, http):
    headers = bearer(server)
    server.configure(
        faults=[
            {"path": "/api/v1/companies", "nth": [2], "action": "mutate", "delete": 3},
            {"path": "/api/v1/companies", "every": 3, "action": "status", "status": 503,
             "retry_after": 1},
        ]
    )  # fmt: skip
    statuses = []
    for page in range(1, 7):
        url = f"{server.url}/api/v1/companies?page={page}&per_page=5"
        answer = http.get(url, headers=headers, timeout=5)
        statuses.append(answer.status_code)
        if answer.status_code == 503:
            assert answer.headers["Retry-After"] == "1"
    assert statuses == [200, 200, 503, 200, 200, 503]
    assert server.state()["companies"] == 54
    assert [c["id"] for c in server.companies()][:2] == [4, 5]  # the three lowest went
    log = server.log()
    assert [entry["fault"] for entry in log] == [None, "mutate", "status", None, None, "status"]
    assert log[2]["retry_after"] == 1


def test_reset_fault_and_mutate_endpoint(server, http):
    headers = bearer(server)
    server.configure(faults=[{"nth": [1], "action": "reset"}])
    with pytest.raises(requests.ConnectionError):
        http.get(f"{server.url}/api/v1/me", headers=headers, timeout=5)
    assert http.get(f"{server.url}/api/v1/me", headers=headers, timeout=5).status_code == 200

    before = max(c["updated_at"] for c in server.companies())
    changed = http.post(
        f"{server.url}/_sandbox/mutate", json={"update": [5], "create": 2}, timeout=5
    ).json()
    assert changed == {"updated": [5], "deleted": [], "created": [58, 59]}
    companies = {c["id"]: c for c in server.companies()}
    assert companies[5]["updated_at"] > before
    assert companies[58]["updated_at"] >= companies[5]["updated_at"]


def test_rate_limit_answers_429_with_retry_after(server, http):
    server.configure(rate_limit={"limit": 3, "window": 30})
    headers = bearer(server)
    answers = [http.get(f"{server.url}/api/v1/me", headers=headers, timeout=5) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    limited = answers[-1]
    assert limited.json() == {"message": "Too Many Attempts."}
    assert 1 <= int(limited.headers["Retry-After"]) <= 30
    assert int(limited.headers["X-RateLimit-Reset"]) >= int(time.time())
    assert server.state()["counts"]["status"]["429"] == 1


def test_pkce_code_flow_and_single_use_codes(server, http):
    verifier = "v" * 20 + "-._~" + "V" * 30
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    redirect = "http://127.0.0.1:9999/callback"
    answer = http.get(
        f"{server.url}/oauth/authorize",
        params={"client_id": CLIENT.client_id, "redirect_uri": redirect, "response_type": "code",
                "scope": "outlign:all", "state": "xyz/=+", "code_challenge": challenge,
                "code_challenge_method": "S256"},
        allow_redirects=False,
        timeout=5,
    )  # fmt: skip
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(redirect + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["xyz/=+"]
    form = {"grant_type": "authorization_code", "client_id": CLIENT.client_id,
            "client_secret": CLIENT.client_secret, "code": query["code"][0],
            "redirect_uri": redirect}  # fmt: skip
    wrong = http.post(
        f"{server.url}/oauth/token", data={**form, "code_verifier": "x" * 43}, timeout=5
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    good = http.post(
        f"{server.url}/oauth/token", data={**form, "code_verifier": verifier}, timeout=5
    )
    assert good.status_code == 200
    assert good.json()["refresh_token"].startswith("def50200")
    reused = http.post(
        f"{server.url}/oauth/token", data={**form, "code_verifier": verifier}, timeout=5
    )
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    assert server.state()["counts"]["code_grants"] == 1
    assert query["code"][0] in server.secrets()["authorization_codes"]


def test_cli_writes_a_private_tap_config_and_stops_on_sigterm(tmp_path: Path):
    ready, config_path = tmp_path / "ready.json", tmp_path / "tap.json"
    command = [sys.executable, "-m", "tap_outlign.sandbox", "--port", "0", "--companies", "12",
               "--ready-file", str(ready), "--write-config", str(config_path)]  # fmt: skip
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as process:
        try:
            deadline = time.monotonic() + 10
            while not ready.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            url = json.loads(ready.read_text())["url"]
            config = json.loads(config_path.read_text())
            assert config_path.stat().st_mode & 0o777 == 0o600
            assert config["api_url"] == url
            assert set(config) == {"api_url", "client_id", "client_secret", "refresh_token"}
            with requests.Session() as http:
                form = {"grant_type": "refresh_token", **{k: config[k] for k in
                        ("client_id", "client_secret", "refresh_token")}}  # fmt: skip
                assert http.post(f"{url}/oauth/token", data=form, timeout=5).status_code == 200
                secrets = http.get(f"{url}/_sandbox/secrets", timeout=5).json()["all"]
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert stderr.strip() == f"sandbox listening on {url} (12 companies, shape resource)"
    assert not any(secret in stderr for secret in secrets)
