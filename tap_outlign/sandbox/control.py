"""The `/_sandbox/*` control API: lets tests, benchmarks and the demo steer a running sandbox."""

from __future__ import annotations

import ipaddress
import json
from typing import TYPE_CHECKING, Any

from tap_outlign.sandbox.wire import Reply, Request, json_reply

if TYPE_CHECKING:
    from collections.abc import Callable

    from tap_outlign.sandbox.core import Sandbox

PREFIX = "/_sandbox"


def is_loopback(host: str) -> bool:
    """Whether `host` names the loopback interface (an IP literal or `localhost`)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _body(request: Request) -> dict[str, Any]:
    if not request.body.strip():
        return {}
    value = json.loads(request.body)
    if not isinstance(value, dict):
        msg = "the body must be a JSON object"
        raise ValueError(msg)  # noqa: TRY004 - reported to the client as a 400
    return value


def _mutate(sandbox: Sandbox, body: dict[str, Any]) -> Any:
    unknown = set(body) - {"update", "delete", "create"}
    if unknown:
        msg = f"unknown mutate key(s): {sorted(unknown)}"
        raise ValueError(msg)
    return sandbox.mutate(**body)


def _revoke(sandbox: Sandbox, body: dict[str, Any]) -> Any:
    return {"revoked": sandbox.revoke(body.get("refresh_token"))}


def _clear(sandbox: Sandbox, _: dict[str, Any]) -> Any:
    sandbox.clear_log()
    return {"cleared": True}


def _reset(sandbox: Sandbox, _: dict[str, Any]) -> Any:
    sandbox.reset()
    return sandbox.state()


_GET: dict[str, Callable[[Sandbox], Any]] = {
    "/state": lambda s: s.state(),
    "/log": lambda s: s.log(),
    "/config": lambda s: s.config.to_dict(redact=True),
    "/secrets": lambda s: s.secrets(),
}
_POST: dict[str, Callable[[Sandbox, dict[str, Any]], Any]] = {
    "/config": lambda s, body: s.configure(body),
    "/tokens": lambda s, _: s.issue_tokens(),
    "/revoke": _revoke,
    "/mutate": _mutate,
    "/log/clear": _clear,
    "/reset": _reset,
}


def handle_control(sandbox: Sandbox, request: Request) -> Reply:
    """Answer a control request; only loopback clients are served."""
    if not is_loopback(request.client):
        return json_reply(403, {"error": "the control API is loopback-only"})
    route = request.path[len(PREFIX) :].rstrip("/")
    try:
        if request.method == "GET" and route == "/companies":
            return Reply(200, sandbox.companies_json())
        if request.method == "GET" and route in _GET:
            return json_reply(200, _GET[route](sandbox))
        if request.method == "POST" and route in _POST:
            return json_reply(200, _POST[route](sandbox, _body(request)))
    except (ValueError, TypeError) as error:
        return json_reply(400, {"error": str(error)})
    return json_reply(404, {"error": f"no control endpoint {request.method} {request.path}"})
