#!/usr/bin/env bash
# Instructions the router executes per request, counted by valgrind's callgrind: repeatable
# whatever else the machine is doing, unlike CPU time, so two builds can be compared on a
# busy 2-core machine. The router runs one worker under callgrind with a client key with
# limits, provider limits and prices; wrk warms it up for 3 s, then counting is switched on
# for 10 s of load at 4 connections. valgrind hides some CPU features (SHA extensions, AVX
# in places), so absolute counts overstate what the real CPU does; compare builds with it.
#
#   scripts/bench-instructions.sh [BIN] [plain|stream]
#   scripts/bench-instructions.sh /tmp/switchboard-old stream
#   KEY_LIMITS=0 scripts/bench-instructions.sh     # the client key without rpm/tpm
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MODE=${2:-plain}
PORT=18930
UPSTREAM=127.0.0.1:18931
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] && cp "$WORK/callgrind.out" "$KEEP"; rm -rf "$WORK"
}
trap cleanup EXIT

for tool in valgrind wrk; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install $tool" >&2; exit 1; }
done
cargo build --release --quiet --bin switchboard --example bench_upstream
BIN=${1:-target/release/switchboard}

cat > "$WORK/bench.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT"

[[keys]]
name = "bench"
key_env = "BENCH_KEY"
$([ "${KEY_LIMITS:-1}" = 0 ] || printf 'rpm = 100000000\ntpm = 2000000000')

[providers.up]
kind = "openai"
base_url = "http://$UPSTREAM/v1"
api_key_env = "BENCH_UPSTREAM_KEY"
rpm = 100000000
tpm = 2000000000

[providers.up.models.bench]
input_per_mtok = 1.25
output_per_mtok = 10
currency = "USD"

[routes.bench]
targets = ["up/bench"]
TOML
stream=false; [ "$MODE" = stream ] && stream=true
cat > "$WORK/request.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"model":"bench","stream":$stream,"messages":[{"role":"user","content":"Say something about foxes and dogs, please."}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-key"
LUA

target/release/examples/bench_upstream "$UPSTREAM" & PIDS+=($!)
BENCH_KEY=bench-key BENCH_UPSTREAM_KEY=sk-bench RUST_LOG=warn valgrind --tool=callgrind \
  --instr-atstart=no --callgrind-out-file="$WORK/callgrind.out" \
  "$BIN" --config "$WORK/bench.toml" --workers 1 2>/dev/null & ROUTER=$!
PIDS+=("$ROUTER")
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
url="http://127.0.0.1:$PORT/v1/chat/completions"
wrk -t1 -c4 -d3s -s "$WORK/request.lua" "$url" >/dev/null 2>&1
callgrind_control -i on "$ROUTER" >/dev/null
wrk -t1 -c4 -d10s -s "$WORK/request.lua" "$url" > "$WORK/wrk.txt" 2>&1
callgrind_control -i off "$ROUTER" >/dev/null
requests=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
kill "$ROUTER"; wait "$ROUTER" 2>/dev/null || true
total=$(callgrind_annotate "$WORK/callgrind.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "$MODE: $requests requests, $total instructions, $((total / requests)) per request ($BIN)"
