#!/usr/bin/env bash
# Make .venv match uv.lock: create it with python3 -m venv if missing, put the locked uv in
# it with pip, then `uv sync --frozen`. Idempotent; needs only Python >= 3.10.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"

if [[ ! -x .venv/bin/python ]]; then
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || {
        echo "bootstrap: Python >= 3.10 is required ($("$python" --version 2>&1))" >&2
        exit 1
    }
    echo "bootstrap: creating .venv with $("$python" --version 2>&1)"
    "$python" -m venv .venv
fi

# The uv version that uv.lock pins (Meltano depends on it): installing that one means
# `uv sync` keeps it instead of swapping it out.
uv_version="$(awk '/^\[\[package\]\]/ { in_uv = 0 } /^name = "uv"$/ { in_uv = 1 }
    in_uv && /^version = / { gsub(/"/, "", $3); print $3; exit }' uv.lock)"
if [[ "$(.venv/bin/uv --version 2>/dev/null | cut -d' ' -f2)" != "${uv_version:-none}" ]]; then
    echo "bootstrap: installing uv ${uv_version:-(latest)} into .venv"
    if ! pip_log="$(.venv/bin/python -m pip install --quiet --disable-pip-version-check \
        "uv${uv_version:+==$uv_version}" 2>&1)"; then
        echo "$pip_log" >&2
        exit 1
    fi
fi

.venv/bin/uv sync --frozen --quiet
echo "bootstrap: .venv is in sync with uv.lock ($(.venv/bin/python --version))"
