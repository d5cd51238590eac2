#!/usr/bin/env bash
# The demo: a local Outlign sandbox -> `meltano run tap-outlign target-jsonl` -> a summary of
# what was loaded, checked against the sandbox. Re-runnable; secrets are never printed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/bootstrap.sh

demo=.demo
output=output/jsonl
mkdir -p "$demo"
chmod 700 "$demo"
rm -f "$demo/sandbox.json" "$demo/tap-config.json"

step() { printf '\n==> %s\n' "$*"; }
show_log_tail() { echo "--- last lines of $1 ---" >&2; tail -n 40 "$1" >&2; }

step "Starting the Outlign sandbox (a local, fake Outlign API)"
.venv/bin/tap-outlign-sandbox --port 0 --ready-file "$demo/sandbox.json" \
    --write-config "$demo/tap-config.json" >"$demo/sandbox.log" 2>&1 &
sandbox_pid=$!
stop_sandbox() {
    if kill -0 "$sandbox_pid" 2>/dev/null; then
        kill "$sandbox_pid" 2>/dev/null || true
        wait "$sandbox_pid" 2>/dev/null || true
    fi
}
trap stop_sandbox EXIT
trap 'exit 130' INT TERM

for _ in $(seq 100); do
    [[ -s "$demo/sandbox.json" ]] && break
    kill -0 "$sandbox_pid" 2>/dev/null || { show_log_tail "$demo/sandbox.log"; exit 1; }
    sleep 0.1
done
[[ -s "$demo/sandbox.json" ]] || { echo "the sandbox did not start" >&2; exit 1; }
sandbox_url="$(.venv/bin/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' \
    "$demo/sandbox.json")"
echo "sandbox: $sandbox_url"

step "Installing the Meltano plugins (tap-outlign, target-jsonl)"
if ! .venv/bin/meltano install tap-outlign target-jsonl >"$demo/meltano-install.log" 2>&1; then
    show_log_tail "$demo/meltano-install.log"
    exit 1
fi
echo "installed (log: $demo/meltano-install.log)"

# The sandbox's settings reach the tap as TAP_OUTLIGN_* variables (as Meltano documents);
# `eval` keeps them out of the terminal and of the process list.
eval "$(.venv/bin/python - "$demo/tap-config.json" <<'PY'
import json, shlex, sys
for key, value in json.load(open(sys.argv[1])).items():
    print(f"export TAP_OUTLIGN_{key.upper()}={shlex.quote(str(value))}")
PY
)"
export TARGET_JSONL_DESTINATION_PATH="$output"

step "Running: meltano run --full-refresh --state-id-suffix demo tap-outlign target-jsonl"
rm -f "$output"/*.jsonl  # target-jsonl appends: start from empty files
started=$SECONDS
if ! .venv/bin/meltano run --full-refresh --state-id-suffix demo tap-outlign target-jsonl \
    >"$demo/meltano-run.log" 2>&1; then
    show_log_tail "$demo/meltano-run.log"
    exit 1
fi
echo "done in $((SECONDS - started)) s (log: $demo/meltano-run.log)"

step "What was loaded ($output/)"
.venv/bin/python scripts/demo_report.py --sandbox-url "$sandbox_url" --output "$output"
