"""HTTP front of the sandbox (stdlib ThreadingHTTPServer, HTTP/1.1 keep-alive) and SandboxServer."""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from tap_outlign.sandbox.control import PREFIX, handle_control, is_loopback
from tap_outlign.sandbox.core import Sandbox
from tap_outlign.sandbox.wire import Reply, Request, json_reply

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

    from tap_outlign.sandbox.config import SandboxConfig

logger = logging.getLogger(__name__)
_JOIN_TIMEOUT = 5.0


class _HTTPServer(ThreadingHTTPServer):
    """Tracks open connections so `stop()` can close them and join their threads."""

    daemon_threads = True
    sandbox: Sandbox
    stopping: threading.Event

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.stopping = threading.Event()
        self.connections: dict[socket.socket, threading.Thread] = {}
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections[request] = threading.current_thread()
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.connections_lock:
                self.connections.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:  # noqa: ARG002
        """Clients hanging up are normal here: note it quietly instead of printing a traceback."""
        logger.debug("connection from %s ended with an error", client_address)

    def close_connections(self) -> None:
        """Unblock every connection thread, then wait for them to finish."""
        with self.connections_lock:
            open_now = list(self.connections.items())
        for sock, _ in open_now:
            with contextlib.suppress(OSError):  # already closed by its thread
                sock.shutdown(socket.SHUT_RDWR)
        for _, thread in open_now:
            if thread is not threading.current_thread():
                thread.join(_JOIN_TIMEOUT)


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP into `Request`s and `Reply`s back into bytes (faults included)."""

    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 120
    server: _HTTPServer

    def do_GET(self) -> None:
        """Serve a GET."""
        self._dispatch()

    def do_POST(self) -> None:
        """Serve a POST."""
        self._dispatch()

    def do_PUT(self) -> None:
        """Serve a PUT (answered 405/404 by the routes)."""
        self._dispatch()

    def do_DELETE(self) -> None:
        """Serve a DELETE (answered 405/404 by the routes)."""
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        """Stay quiet: the sandbox keeps its own log, and URLs may carry codes."""

    def _request(self) -> Request:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        return Request(
            method=self.command,
            path=url.path,
            query=parse_qs(url.query, keep_blank_values=True),
            body=self.rfile.read(length) if length > 0 else b"",
            client=str(self.client_address[0]),
            base_url=f"http://{host}",
            authorization=self.headers.get("Authorization"),
            content_type=self.headers.get("Content-Type"),
            user_agent=self.headers.get("User-Agent"),
            accept=self.headers.get("Accept"),
        )

    def _dispatch(self) -> None:
        sandbox = self.server.sandbox
        try:
            request = self._request()
            if request.path == PREFIX or request.path.startswith(PREFIX + "/"):
                reply = handle_control(sandbox, request)
            else:
                reply = sandbox.handle(request)
        except Exception:
            logger.exception("sandbox failed to answer %s %s", self.command, self.path)
            reply = json_reply(500, {"message": "Server Error"})
        self._send(reply)
        if reply.prefetch is not None and reply.delivered:
            reply.prefetch()

    def _send(self, reply: Reply) -> None:
        if reply.delay > 0:
            self.server.stopping.wait(reply.delay)
        if not reply.delivered:
            self._reset_connection()
            return
        body = reply.body
        lines = [
            f"HTTP/1.1 {reply.status} {_phrase(reply.status)}",
            f"Date: {self.date_time_string()}",
            "Server: nginx",
            f"Content-Type: {reply.content_type}",
            f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in reply.headers),
        ]
        if reply.after == "truncate":
            body = body[: len(body) // 2]
            self.close_connection = True
        elif self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + body)

    def _reset_connection(self) -> None:
        """Abort with a TCP RST (SO_LINGER 0) and no answer at all."""
        self.close_connection = True
        sock = self.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        socket.close(sock.detach())


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class SandboxServer:
    """A sandbox served over HTTP from a background thread; a context manager for tests."""

    def __init__(
        self, config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        """Prepare (not start) a server; only loopback hosts are accepted."""
        if not is_loopback(host):
            msg = f"the sandbox only binds to loopback, not {host!r}"
            raise ValueError(msg)
        self.sandbox = Sandbox(config)
        self.host = "127.0.0.1" if host.lower() == "localhost" else host.strip("[]")
        self.port = port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321 (the real port once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def config(self) -> SandboxConfig:
        """The live configuration (read-only use; change it with `configure`)."""
        return self.sandbox.config

    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns self."""
        if self._httpd is not None:
            return self
        server_class = _HTTPServer6 if ":" in self.host else _HTTPServer
        httpd = server_class((self.host, self.port), self.sandbox)
        self.port = int(httpd.server_address[1])
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
            name=f"sandbox-{self.port}",
        )  # fmt: skip
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and every connection, join the threads."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()
        if thread is not None:
            thread.join(_JOIN_TIMEOUT)
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        """Start on entering a `with` block."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop on leaving it."""
        self.stop()

    # -- control, in memory (same effect as the /_sandbox endpoints) -------------------------

    def configure(self, **patch: Any) -> dict[str, Any]:
        """Patch the config (e.g. shape="cursor", faults=[...]); returns it, secret redacted."""
        return self.sandbox.configure(patch)

    def state(self) -> dict[str, Any]:
        """Config, counters and company count (as GET /_sandbox/state)."""
        return self.sandbox.state()

    def log(self) -> list[dict[str, Any]]:
        """The request log (as GET /_sandbox/log)."""
        return self.sandbox.log()

    def clear_log(self) -> None:
        """Empty the request log."""
        self.sandbox.clear_log()

    def issue_tokens(self) -> dict[str, Any]:
        """A fresh access/refresh token pair, as if the user had just logged in."""
        return self.sandbox.issue_tokens()

    def revoke(self, refresh_token: str | None = None) -> int:
        """Revoke all tokens, or one refresh token (and its access token)."""
        return self.sandbox.revoke(refresh_token)

    def mutate(self, update: Any = None, delete: Any = None, create: Any = None) -> dict[str, Any]:
        """Update/delete ids (a list or a count of the lowest) and create new companies."""
        return self.sandbox.mutate(update=update, delete=delete, create=create)

    def companies(self) -> list[dict[str, Any]]:
        """All current companies, ascending id."""
        return self.sandbox.companies()

    def secrets(self) -> dict[str, Any]:
        """Every secret ever issued or held; `all` is a flat list for leak checks."""
        return self.sandbox.secrets()

    def reset(self) -> None:
        """Fresh data, tokens, counters and log."""
        self.sandbox.reset()

    def tap_config(self) -> dict[str, str]:
        """A tap config for this server: api_url, client_id, client_secret, seed refresh_token."""
        return self.sandbox.tap_config(self.url)
