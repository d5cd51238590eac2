"""Regenerate the README's settings table from `tap-outlign --about --format=markdown`.

The table sits between `<!-- settings:start -->` and `<!-- settings:end -->`. With --check,
change nothing and exit 1 if the README's table is out of date.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
START = "<!-- settings:start -->"
END = "<!-- settings:end -->"


def tap_executable() -> str:
    """`tap-outlign` from this interpreter's environment, else from PATH."""
    beside = Path(sys.executable).parent / "tap-outlign"
    if beside.exists():
        return str(beside)
    found = shutil.which("tap-outlign")
    if found is None:
        sys.exit("tap-outlign is not installed: run scripts/bootstrap.sh first")
    return found


def settings_table() -> str:
    """The markdown table under `## Settings` in the tap's --about output."""
    about = subprocess.run(
        [tap_executable(), "--about", "--format=markdown"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    lines = about.splitlines()
    start = lines.index("## Settings") + 1
    while not lines[start].startswith("|"):
        start += 1
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "\n".join(lines[start:end])


def render(readme: str, table: str) -> str:
    """The README with the text between the markers replaced by `table`."""
    head, start, rest = readme.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        sys.exit(f"{README.name} lacks the {START} ... {END} markers")
    return f"{head}{START}\n{table}\n{END}{tail}"


def main() -> int:
    """Update (or with --check, verify) the README; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report a stale table")
    args = parser.parse_args()
    current = README.read_text(encoding="utf-8")
    updated = render(current, settings_table())
    if updated == current:
        print("README settings table is up to date")
        return 0
    if args.check:
        print("README settings table is stale: run scripts/update_readme_settings.py")
        return 1
    README.write_text(updated, encoding="utf-8")
    print("README settings table updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
