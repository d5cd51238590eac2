"""Benchmark: tap-outlign against a plain requests + orjson extractor over the same pages.

Starts the sandbox (its own process) with N companies, then runs the tap and the reference
extractor alternately, several times, each writing its Singer lines to /dev/null. Prints
records/s, the median wall-time ratio tap/reference, and each one's peak RSS. With
--latency-ms it also prints the tap's throughput against the ceiling the concurrency
setting allows (concurrency x page size / latency).

    .venv/bin/python scripts/benchmark.py --companies 100000 --page-size 100 --runs 5
    .venv/bin/python scripts/benchmark.py --companies 20000 --page-size 100 --latency-ms 100
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent


@dataclass
class Measurement:
    """One run of one extractor."""

    seconds: float
    peak_rss_mib: float
    companies_sync_seconds: float | None = None


def _companies_sync_seconds(log: str) -> float | None:
    """The tap's own `sync_duration` metric for the companies stream, if logged."""
    for line in log.splitlines():
        if '"metric":"sync_duration"' in line and '"stream":"companies"' in line:
            return float(json.loads(line.split("METRIC: ", 1)[1])["value"])
    return None


def run_measured(command: list[str], env: dict[str, str]) -> Measurement:
    """Run a command with stdout to /dev/null; wall time and the child's peak RSS."""
    with Path(os.devnull).open("wb") as sink, tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=sink, stderr=log, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        stderr = log.read().decode(errors="replace")
    if process.returncode != 0:
        sys.exit(f"{command[0]} failed ({process.returncode}):\n{stderr[-2000:]}")
    return Measurement(seconds, usage.ru_maxrss / 1024, _companies_sync_seconds(stderr))


def start_sandbox(args: argparse.Namespace, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The sandbox in its own process, so its CPU is not charged to either extractor."""
    ready = workdir / "ready.json"
    command = [
        str(BIN / "tap-outlign-sandbox"),
        "--port=0",
        f"--companies={args.companies}",
        f"--latency-ms={args.latency_ms}",
        "--per-page-max=1000",
        f"--ready-file={ready}",
        f"--write-config={workdir / 'config.json'}",
    ]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not ready.exists():
        if time.monotonic() > deadline or process.poll() is not None:
            sys.exit("the sandbox did not start")
        time.sleep(0.05)
    return process, json.loads(ready.read_text())["url"]


def main() -> None:
    """Parse options, run both extractors alternately, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--tap-only", action="store_true", help="skip the reference")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="outlign-bench-") as temp:
        workdir = Path(temp)
        sandbox, url = start_sandbox(args, workdir)
        try:
            results = benchmark(args, workdir, url)
        finally:
            sandbox.terminate()
            sandbox.wait(timeout=30)
    report(args, *results)


def benchmark(
    args: argparse.Namespace, workdir: Path, url: str
) -> tuple[list[Measurement], list[Measurement]]:
    """Alternate tap and reference runs against one sandbox."""
    config = json.loads((workdir / "config.json").read_text())
    config.update(
        token_store_path=str(workdir / "tokens.json"),
        page_size=args.page_size,
        max_concurrency=args.concurrency,
    )
    config_path = workdir / "tap-config.json"
    config_path.write_text(json.dumps(config))
    # The reference gets a token of its own, as a logged-in script would.
    access = requests.post(f"{url}/_sandbox/tokens", timeout=30).json()["access_token"]
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_OUTLIGN_")}
    tap_env = {**base_env, "LOGLEVEL": "INFO"}
    reference_env = {**base_env, "OUTLIGN_ACCESS_TOKEN": access}
    tap_command = [str(BIN / "tap-outlign"), "--config", str(config_path)]
    reference_command = [
        sys.executable,
        str(HERE / "reference_extractor.py"),
        f"--api-url={url}",
        f"--page-size={args.page_size}",
    ]
    taps: list[Measurement] = []
    references: list[Measurement] = []
    for run in range(args.runs):
        taps.append(run_measured(tap_command, tap_env))
        if not args.tap_only:
            references.append(run_measured(reference_command, reference_env))
        print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
    return taps, references


def report(args: argparse.Namespace, taps: list[Measurement], refs: list[Measurement]) -> None:
    """Print the figures the README and the closing notes quote."""
    records = args.companies + 1
    tap_median = statistics.median(m.seconds for m in taps)
    print(f"companies={args.companies} page_size={args.page_size} latency_ms={args.latency_ms}")
    print(
        f"tap:       median {tap_median:.2f} s, {records / tap_median:,.0f} records/s, "
        f"peak RSS {max(m.peak_rss_mib for m in taps):.1f} MiB"
    )
    if refs:
        ref_median = statistics.median(m.seconds for m in refs)
        ratios = [t.seconds / r.seconds for t, r in zip(taps, refs, strict=True)]
        print(
            f"reference: median {ref_median:.2f} s, {records / ref_median:,.0f} records/s, "
            f"peak RSS {max(m.peak_rss_mib for m in refs):.1f} MiB"
        )
        print(f"ratio tap/reference (median of {len(ratios)} paired runs): "
              f"{statistics.median(ratios):.2f}")  # fmt: skip
    if args.latency_ms > 0:
        ceiling = args.concurrency * args.page_size / (args.latency_ms / 1000)
        syncs = [m.companies_sync_seconds for m in taps if m.companies_sync_seconds]
        sync_median = statistics.median(syncs) if syncs else tap_median
        achieved = args.companies / sync_median
        print(
            f"latency: companies synced at {achieved:,.0f} records/s (median sync "
            f"{sync_median:.2f} s, from the tap's sync_duration metric) of a "
            f"{ceiling:,.0f} records/s ceiling (concurrency {args.concurrency} x page size "
            f"/ latency) = {achieved / ceiling:.0%}; whole process incl. start-up: "
            f"{args.companies / tap_median / ceiling:.0%}"
        )


if __name__ == "__main__":
    main()
