"""`tap-outlign-sandbox`: run a sandbox until SIGINT/SIGTERM, optionally writing a tap config."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tap_outlign.sandbox.config import ME_SHAPES, SHAPES, SandboxConfig
from tap_outlign.sandbox.control import is_loopback
from tap_outlign.sandbox.server import SandboxServer

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import FrameType


def _rate_limit(text: str) -> dict[str, int]:
    """Parse N/SECONDS, e.g. 60/60."""
    limit, _, window = text.partition("/")
    try:
        parsed = {"limit": int(limit), "window": int(window or "60")}
    except ValueError:
        msg = "expected N/SECONDS, e.g. 60/60"
        raise argparse.ArgumentTypeError(msg) from None
    if min(parsed.values()) < 1:
        msg = "N and SECONDS must be >= 1"
        raise argparse.ArgumentTypeError(msg)
    return parsed


def _loopback(text: str) -> str:
    if not is_loopback(text):
        msg = f"{text!r} is not a loopback address (the sandbox only binds to loopback)"
        raise argparse.ArgumentTypeError(msg)
    return text


def build_parser() -> argparse.ArgumentParser:
    """The CLI's flags (defaults mirror SandboxConfig)."""
    defaults = SandboxConfig()
    parser = argparse.ArgumentParser(
        prog="tap-outlign-sandbox", description="Run a local Outlign-compatible API."
    )
    add = parser.add_argument
    add("--host", type=_loopback, default="127.0.0.1", help="loopback address to bind")
    add("--port", type=int, default=8787, help="port (0 = any free port)")
    add("--companies", type=int, default=defaults.companies)
    add("--shape", choices=SHAPES, default=defaults.shape, help="companies list shape")
    add("--me-shape", choices=ME_SHAPES, default=defaults.me_shape)
    add("--per-page-default", type=int, default=defaults.per_page_default)
    add("--per-page-max", type=int, default=defaults.per_page_max)
    add("--token-lifetime", type=int, default=defaults.token_lifetime, help="seconds")
    add("--latency-ms", type=float, default=defaults.latency_ms, help="delay per API answer")
    add("--rate-limit", type=_rate_limit, metavar="N/SECONDS", help="throttle, e.g. 60/60")
    add("--client-id", default=defaults.client_id)
    add("--client-secret", default=defaults.client_secret)
    add(
        "--write-config",
        type=Path,
        metavar="PATH",
        help="write a tap config (api_url, client_id, client_secret, refresh_token), mode 0600",
    )
    add("--ready-file", type=Path, metavar="PATH", help='write {"url": ...} once listening')
    return parser


def write_private_json(path: Path, value: Any) -> None:
    """Write JSON atomically (temp file + rename) with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(value, handle, indent=2)
            handle.write("\n")
        Path(temp).chmod(0o600)
        Path(temp).replace(path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        config = SandboxConfig(
            companies=args.companies,
            shape=args.shape,
            me_shape=args.me_shape,
            per_page_default=args.per_page_default,
            per_page_max=args.per_page_max,
            token_lifetime=args.token_lifetime,
            latency_ms=args.latency_ms,
            rate_limit=args.rate_limit or SandboxConfig().rate_limit,
            client_id=args.client_id,
            client_secret=args.client_secret,
        )
    except (ValueError, TypeError) as error:
        sys.stderr.write(f"tap-outlign-sandbox: {error}\n")
        return 2
    stop = threading.Event()

    def _on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        server = SandboxServer(config, host=args.host, port=args.port).start()
    except OSError as error:
        sys.stderr.write(
            f"tap-outlign-sandbox: cannot listen on {args.host}:{args.port}: {error}\n"
        )
        return 1
    try:
        if args.write_config:
            write_private_json(args.write_config, server.tap_config())
        if args.ready_file:
            write_private_json(args.ready_file, {"url": server.url})
        summary = f"{config.companies} companies, shape {config.shape}"
        sys.stderr.write(f"sandbox listening on {server.url} ({summary})\n")
        sys.stderr.flush()
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
