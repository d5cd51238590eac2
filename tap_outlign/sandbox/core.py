"""The sandbox's state and request logic, independent of HTTP plumbing and guarded by one lock."""

from __future__ import annotations

import base64
import binascii
import json
import math
import threading
import time
from collections import Counter, deque
from typing import Any
from urllib.parse import parse_qs

from tap_outlign.sandbox.config import SandboxConfig
from tap_outlign.sandbox.data import Dataset
from tap_outlign.sandbox.faults import FaultBook, FaultRule, parse_rules
from tap_outlign.sandbox.oauth import USER, OAuthServer
from tap_outlign.sandbox.pages import COMPANIES_PATH, PageCache, PageKey, render
from tap_outlign.sandbox.wire import HTML_TYPE, Reply, Request, json_reply

API_PREFIX = "/api/v1/"
LOG_LIMIT = 200_000
_COUNTERS = ("requests", "api_requests", "token_requests", "refresh_grants", "code_grants",
             "invalid_grant", "dropped")  # fmt: skip
_MESSAGES = {
    401: "Unauthenticated.",
    403: "This action is unauthorized.",
    404: "Not Found",
    429: "Too Many Attempts.",
    500: "Server Error",
    503: "Service Unavailable",
}
_BAD_GATEWAY = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_HTML_PAGE = (
    b'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Outlign</title>'
    b"</head><body><h1>Outlign</h1><p>Please log in to continue.</p></body></html>"
)
USER_KEY = f"user:{USER['id']}"  # the throttle is per user; the sandbox has one
_API_HEADERS = [("Cache-Control", "no-cache, private")]


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _not_allowed(request: Request, method: str) -> Reply:
    route = request.path.strip("/")
    message = (
        f"The {request.method} method is not supported for route {route}. "
        f"Supported methods: {method}."
    )
    return json_reply(405, {"message": message}, [("Allow", method)])


def _int_arg(raw: str | None, default: int) -> int:
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        return default
    return value if value >= 1 else default


class Sandbox:
    """One Outlign account: companies, OAuth tokens, throttle, faults, counters and a log."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        """Fresh state for `config` (defaults if None)."""
        self.lock = threading.RLock()
        self.config = config or SandboxConfig()
        self._client_secrets = [self.config.client_secret]
        self.oauth = OAuthServer()
        self._reset()

    def _reset(self) -> None:
        issued = self.oauth.issued
        self.oauth = OAuthServer()
        self.oauth.issued = issued  # secrets ever issued survive resets (leak checks)
        self.dataset = Dataset.initial(self.config.companies)
        self.faults = FaultBook(parse_rules(self.config.faults))
        self.counts: Counter[str] = Counter(dict.fromkeys(_COUNTERS, 0))
        self.status_counts: Counter[str] = Counter()
        self.entries: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
        self.windows: dict[str, tuple[float, int]] = {}
        self.cache = PageCache()

    # -- control (all thread-safe) ------------------------------------------------------------

    def reset(self) -> None:
        """Fresh data, tokens, counters and log with the current config."""
        with self.lock:
            self._reset()

    def configure(self, patch: dict[str, Any]) -> dict[str, Any]:
        """Apply a config patch (ValueError/TypeError if invalid); return the new config.

        New `faults` restart the rules' counters; a new `companies` count rebuilds the data.
        """
        with self.lock:
            old, new = self.config, self.config.patched(patch)
            self.config = new
            if "faults" in patch:
                self.faults = FaultBook(parse_rules(new.faults))
            if new.companies != old.companies:
                self._set_dataset(Dataset.initial(new.companies))
            if new.client_secret not in self._client_secrets:
                self._client_secrets.append(new.client_secret)
            return new.to_dict(redact=True)

    def state(self) -> dict[str, Any]:
        """Config (secret redacted), counters and the live company count."""
        with self.lock:
            counts: dict[str, Any] = dict(self.counts)
            counts["status"] = dict(self.status_counts)
            return {
                "config": self.config.to_dict(redact=True),
                "counts": counts,
                "companies": len(self.dataset),
                "fault_counts": list(self.faults.counts),
            }

    def log(self) -> list[dict[str, Any]]:
        """Every logged (non-control) request, oldest first."""
        with self.lock:
            return list(self.entries)

    def clear_log(self) -> None:
        """Forget the request log (counters stay)."""
        with self.lock:
            self.entries.clear()

    def issue_tokens(self) -> dict[str, Any]:
        """A fresh token pair, as if the user had just logged in."""
        with self.lock:
            pair = self.oauth.issue_pair(self.config)
            return {k: pair[k] for k in ("access_token", "refresh_token", "expires_in")}

    def revoke(self, refresh_token: str | None = None) -> int:
        """Revoke every token, or one refresh token and its access token."""
        with self.lock:
            return self.oauth.revoke(refresh_token)

    def mutate(self, update: Any = None, delete: Any = None, create: Any = None) -> dict[str, Any]:
        """Update/delete/create companies; return the ids touched."""
        with self.lock:
            dataset, touched = self.dataset.mutate(update=update, delete=delete, create=create)
            self._set_dataset(dataset)
            return touched

    def companies(self) -> list[dict[str, Any]]:
        """All current companies, ascending id."""
        with self.lock:
            dataset = self.dataset
        return dataset.records(dataset.ids)

    def companies_json(self) -> bytes:
        """All current companies as a JSON array (no parse/dump round trip)."""
        with self.lock:
            dataset = self.dataset
        return dataset.json_array(dataset.ids).encode()

    def secrets(self) -> dict[str, Any]:
        """Every secret the sandbox holds or ever issued."""
        with self.lock:
            return self.oauth.secrets(list(self._client_secrets))

    def _set_dataset(self, dataset: Dataset) -> None:
        if dataset is not self.dataset:
            self.dataset = dataset
            self.cache = PageCache()

    # -- serving ---------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        """Answer one (non-control) request: faults first, then the emulated API; log it."""
        arrived = time.monotonic()
        with self.lock:
            rule = self.faults.match(request.method, request.path)
            if rule is not None and rule.action == "mutate":
                self._set_dataset(self.dataset.mutate(**rule.mutation)[0])
            if rule is not None and rule.action in ("status", "reset", "not_json"):
                reply = self._fault_reply(rule, request)
            else:
                reply = self._route(request)
                if rule is not None:
                    reply.delay += rule.delay if rule.action == "slow" else 0.0
                    if rule.action in ("truncate", "drop_after"):
                        reply.after = rule.action
            if request.path.startswith(API_PREFIX):
                reply.delay += self.config.latency_ms / 1000
            self._record(request, reply, arrived, rule)
        return reply

    def _record(
        self, request: Request, reply: Reply, arrived: float, rule: FaultRule | None
    ) -> None:
        self.counts["requests"] += 1
        self.counts["api_requests"] += request.path.startswith(API_PREFIX)
        self.counts["token_requests"] += request.path == "/oauth/token"
        if reply.delivered:
            self.status_counts[str(reply.status)] += 1
        else:
            self.counts["dropped"] += 1
        retry_after = reply.header("Retry-After") if reply.delivered else None
        self.entries.append({
            "t": arrived,
            "method": request.method,
            "path": request.path,
            "query": request.args(),
            "status": reply.status if reply.delivered else None,
            "retry_after": float(retry_after) if retry_after is not None else None,
            "user_agent": request.user_agent,
            "accept": request.accept,
            "fault": rule.name if rule is not None else None,
        })  # fmt: skip

    def _fault_reply(self, rule: FaultRule, request: Request) -> Reply:
        if rule.action == "reset":
            return Reply(0, after="reset")
        if rule.action == "not_json":
            return Reply(200, _HTML_PAGE, HTML_TYPE)
        headers: list[tuple[str, str]] = []
        if rule.retry_after is not None:
            headers.append(("Retry-After", _seconds(rule.retry_after)))
        limit = self.config.rate_limit
        if request.path.startswith(API_PREFIX) and limit is not None:
            window = self.windows.get(USER_KEY)
            used = window[1] if window else 0
            remaining = 0 if rule.status == 429 else max(limit["limit"] - used, 0)  # noqa: PLR2004
            headers += [("X-RateLimit-Limit", str(limit["limit"])),
                        ("X-RateLimit-Remaining", str(remaining))]  # fmt: skip
        if isinstance(rule.body, str):
            return Reply(rule.status, rule.body.encode(), HTML_TYPE, headers)
        if rule.body is not None:
            return json_reply(rule.status, rule.body, headers)
        if rule.status == 502:  # noqa: PLR2004 - the proxy in front answers, in HTML
            return Reply(502, _BAD_GATEWAY, "text/html", headers)
        message = _MESSAGES.get(rule.status, "Server Error")
        return json_reply(rule.status, {"message": message}, headers)

    def _route(self, request: Request) -> Reply:
        path = request.path.rstrip("/") or "/"
        if path == "/oauth/authorize":
            return (
                self._authorize(request)
                if request.method == "GET"
                else _not_allowed(request, "GET")
            )
        if path == "/oauth/token":
            return (
                self._token(request) if request.method == "POST" else _not_allowed(request, "POST")
            )
        if path.startswith("/api/v1"):
            return self._api(request, path)
        return json_reply(404, {"message": "Not Found"})

    def _authorize(self, request: Request) -> Reply:
        status, answer = self.oauth.authorize(request.args(), self.config)
        if isinstance(answer, str):
            return Reply(status, b"", headers=[("Location", answer)])
        return json_reply(status, answer)

    def _token(self, request: Request) -> Reply:
        form = self._form(request)
        basic = None
        auth = request.authorization or ""
        if auth[:6].lower() == "basic ":
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                basic = (user, password)
            except (binascii.Error, UnicodeDecodeError):
                basic = None
        result = self.oauth.token(form, basic, self.config)
        self.counts["refresh_grants"] += result.grant == "refresh"
        self.counts["code_grants"] += result.grant == "code"
        self.counts["invalid_grant"] += result.payload.get("error") == "invalid_grant"
        headers = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]
        return json_reply(result.status, result.payload, headers)

    @staticmethod
    def _form(request: Request) -> dict[str, str]:
        """Form fields (Laravel also accepts a JSON body)."""
        text = request.body.decode("utf-8", "replace")
        if "json" in (request.content_type or ""):
            try:
                value = json.loads(text)
            except ValueError:
                return {}
            return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
        return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}

    def _api(self, request: Request, path: str) -> Reply:
        auth = request.authorization or ""
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        authenticated = bool(token) and self.oauth.check_bearer(token)
        headers = list(_API_HEADERS)
        limited = self._throttle(USER_KEY if authenticated else f"ip:{request.client}", headers)
        if limited is not None:
            return limited
        if not authenticated:
            return json_reply(401, {"message": "Unauthenticated."}, headers)
        if request.method != "GET" and path in ("/api/v1/me", COMPANIES_PATH):
            return _not_allowed(request, "GET")
        if path == "/api/v1/me":
            me = dict(USER) if self.config.me_shape == "bare" else {"data": dict(USER)}
            return json_reply(200, me, headers)
        if path == COMPANIES_PATH:
            return self._companies(request, headers)
        message = f"The route {path.strip('/')} could not be found."
        return json_reply(404, {"message": message}, headers)

    def _throttle(self, key: str, headers: list[tuple[str, str]]) -> Reply | None:
        """Laravel's fixed-window throttle; adds X-RateLimit-* headers, or answers 429."""
        limit = self.config.rate_limit
        if limit is None:
            return None
        now = time.monotonic()
        started, hits = self.windows.get(key, (now, 0))
        if now >= started + limit["window"]:
            started, hits = now, 0
        headers.append(("X-RateLimit-Limit", str(limit["limit"])))
        if hits >= limit["limit"]:
            retry = max(1, math.ceil(started + limit["window"] - now))
            headers += [("X-RateLimit-Remaining", "0"), ("Retry-After", str(retry)),
                        ("X-RateLimit-Reset", str(int(time.time()) + retry))]  # fmt: skip
            return json_reply(429, {"message": "Too Many Attempts."}, headers)
        self.windows[key] = (started, hits + 1)
        headers.append(("X-RateLimit-Remaining", str(limit["limit"] - hits - 1)))
        return None

    def _companies(self, request: Request, headers: list[tuple[str, str]]) -> Reply:
        config = self.config
        key = PageKey(config.shape, request.base_url)
        if config.shape not in ("array", "data"):
            per_page = min(_int_arg(request.arg("per_page"), config.per_page_default),
                           config.per_page_max)  # fmt: skip
            if config.shape == "cursor":
                key = PageKey(
                    config.shape, request.base_url, per_page, cursor=request.arg("cursor")
                )
            else:
                key = PageKey(
                    config.shape, request.base_url, per_page, _int_arg(request.arg("page"), 1)
                )
        dataset = self.dataset
        cached = self.cache.get(key)
        if cached is None:
            cached = render(dataset, key)
            self.cache.put(key, cached)
        body, following = cached
        reply = Reply(200, body, headers=headers)
        if following is not None and following not in self.cache:
            reply.prefetch = lambda: self._prefetch(dataset, following)
        return reply

    def _prefetch(self, dataset: Dataset, key: PageKey) -> None:
        """Render the page a client will most likely ask for next, outside the lock."""
        with self.lock:
            if key in self.cache or dataset is not self.dataset:
                return
        entry = render(dataset, key)
        with self.lock:
            if dataset is self.dataset:
                self.cache.put(key, entry)

    def tap_config(self, api_url: str) -> dict[str, str]:
        """A tap config (api_url, client_id, client_secret, a fresh seed refresh_token)."""
        with self.lock:
            pair = self.oauth.issue_pair(self.config)
            return {
                "api_url": api_url,
                "client_id": self.config.client_id,
                "client_secret": self.config.client_secret,
                "refresh_token": pair["refresh_token"],
            }
