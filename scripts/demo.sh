#!/usr/bin/env bash
# The demo: validate the quickstart Cortexfile, show its effective config, then serve it.
# DEMO_ONESHOT=1 asks one question and stops (what the smoke test runs).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
cortex="$VENV/bin/cortex"
data="${XDG_CACHE_HOME:-$HOME/.cache}/cortex/test-data"
file=examples/quickstart/Cortexfile.yaml

"$cortex" validate -f "$file" --preflight start --datapath "$data" 2>/dev/null || "$cortex" validate -f "$file"
"$cortex" config show -f "$file" --datapath "$data" | grep -E '^(server\.(host|port)|models\[0\]\.(id|sha256|chat_format))'
