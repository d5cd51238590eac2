"""Summarise what the demo loaded and check it against the sandbox it came from.

Usage: demo_report.py --sandbox-url URL --output DIR (exit status 1 if anything differs).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

from tap_outlign.sandbox.oauth import USER

SAMPLE_FIELDS = ("id", "name", "domain", "country", "updated_at")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a .jsonl file (none if it is missing)."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def sandbox_companies(url: str) -> list[dict[str, Any]]:
    """Every company the sandbox holds, from its loopback-only control API."""
    with urllib.request.urlopen(f"{url}/_sandbox/companies", timeout=10) as response:  # noqa: S310 - loopback http
        companies: list[dict[str, Any]] = json.load(response)
    return companies


def compare(stream: str, loaded: list[dict[str, Any]], expected: list[dict[str, Any]]) -> bool:
    """Print the stream's row count and samples; True if rows equal the sandbox's, by id."""
    by_id = {row["id"]: row for row in loaded}
    wanted = {row["id"]: row for row in expected}
    print(f"\n{stream}: {len(loaded)} row(s) in {stream}.jsonl")
    for row in loaded[:2]:
        sample = {key: row.get(key) for key in SAMPLE_FIELDS if key in row}
        print(f"  {json.dumps(sample, ensure_ascii=False)}")
    missing = sorted(wanted.keys() - by_id.keys())
    extra = sorted(by_id.keys() - wanted.keys())
    different = sorted(i for i in wanted.keys() & by_id.keys() if by_id[i] != wanted[i])
    duplicates = len(loaded) - len(by_id)
    if not (missing or extra or different or duplicates):
        print(f"  OK: matches the sandbox ({len(expected)} row(s), every field equal)")
        return True
    print(
        f"  MISMATCH with the sandbox ({len(expected)} row(s)): missing ids {missing[:10]}, "
        f"unexpected ids {extra[:10]}, different ids {different[:10]}, duplicates {duplicates}"
    )
    return False


def main() -> int:
    """Print the summary; 0 if everything matched."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sandbox-url", required=True)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    ok = compare("me", read_jsonl(args.output / "me.jsonl"), [dict(USER)])
    companies = sandbox_companies(args.sandbox_url)
    ok &= compare("companies", read_jsonl(args.output / "companies.jsonl"), companies)
    print("\nAll loaded rows match the sandbox." if ok else "\nThe loaded rows differ!")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
