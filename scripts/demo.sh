#!/usr/bin/env bash
# The demo: validate the quickstart Cortexfile, show where its values come from, serve it,
# and ask the model one question through the OpenAI-compatible API. Set-up placed the model in the
# default data folder, where the README's own commands find it too.
# DEMO_ONESHOT=1 stops after the answer (the smoke test runs that); otherwise it keeps serving.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
cortex="$VENV/bin/cortex"
port="${DEMO_PORT:-39281}"
file=examples/quickstart/Cortexfile.yaml

step() { printf '\n== %s\n' "$*"; }

step "cortex validate -f $file --preflight start"
"$cortex" validate -f "$file" --preflight start

step "cortex config show -f $file (excerpt)"
"$cortex" config show -f "$file" --port "$port" |
  grep -E '^(server\.(host|port)|models\[0\]\.(id|sha256|chat_format|context_size)|# config hash)'

step "cortex start -f $file --port $port"
"$cortex" start -f "$file" --port "$port" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  curl -fs "http://127.0.0.1:$port/ready" >/dev/null && break
  kill -0 $server 2>/dev/null || { echo "demo: the server exited" >&2; exit 1; }
  sleep 0.5
done

step "POST /v1/chat/completions"
"$VENV/bin/python" - "$port" <<'PY'
import sys
from openai import OpenAI

client = OpenAI(base_url=f"http://127.0.0.1:{sys.argv[1]}/v1", api_key="not-needed-on-loopback")
reply = client.chat.completions.create(
    model="gemma-3-270m",
    messages=[{"role": "user", "content": "In one sentence: what is a Raspberry Pi?"}],
    max_tokens=48,
)
print(reply.choices[0].message.content.strip())
PY

if [ "${DEMO_ONESHOT:-0}" = 1 ]; then exit 0; fi
step "serving on http://127.0.0.1:$port (docs: /docs) - Ctrl-C to stop"
wait $server
