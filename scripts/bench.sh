#!/usr/bin/env bash
# The router's overhead, measured: direct to a fast fake provider, through nginx as a bare
# reverse proxy (the floor: one HTTP hop and no JSON work, on this same machine), and through
# switchboard, for plain and streamed completions at 1, 32 and 256 connections, plus memory
# at idle and with 1,000 streams open. Everything runs on 127.0.0.1 and every load is bounded
# in time. wrk and nginx are installed from Debian's packages when missing.
#
# Rows of the table, for each mode and connection count:
#   direct            wrk straight to the fake provider (its OpenAI wire): the ceiling
#   nginx             through nginx as a bare reverse proxy: the floor for one HTTP hop
#   router            through switchboard to an OpenAI-kind provider: the pass-through path
#   router-anthropic  the same client request, routed to an Anthropic-kind provider: rebuilt
#                     as a Messages API request, the answer or named-event stream translated
#                     back to OpenAI's wire
#   router-gemini     the same, to a Gemini-kind provider (generateContent, alt=sse stream)
# The fake provider (examples/bench_upstream.rs) answers every wire with the same text and
# usage, so the three router rows differ only by the translation; the performance target is
# the translation rows within 2x of the router row in CPU per request.
#
#   scripts/bench.sh            # 5 s per cell
#   DURATION=10 scripts/bench.sh
#   MODES=plain CONNS=32 HELD=0 scripts/bench.sh   # one cell, no 1,000-stream run
#   BEFORE=/tmp/switchboard-old scripts/bench.sh   # also a router-before row: another build
#                                                  # of the router, same config, same run
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION=${DURATION:-5}
MODES=${MODES:-plain stream}
CONNS=${CONNS:-1 32 256}
HELD=${HELD:-1}
BEFORE=${BEFORE:-}
ROUTER_BEFORE=127.0.0.1:18904
UPSTREAM=127.0.0.1:18901
SLOW_UPSTREAM=127.0.0.1:18902
ROUTER=127.0.0.1:18900
NGINX=127.0.0.1:18903
KEY=bench-key-0123456789
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# need COMMAND PACKAGE: installs PACKAGE from Debian when COMMAND is missing.
need() {
  command -v "$1" >/dev/null && return
  echo "installing $2 (Debian package)..." >&2
  if [ "$(id -u)" != 0 ]; then
    echo "$1 is missing; install it with: sudo apt-get install $2" >&2
    exit 1
  fi
  (apt-get install -y -qq "$2" >/dev/null 2>&1) ||
    (apt-get update -qq >/dev/null && apt-get install -y -qq "$2" >/dev/null)
}
need wrk wrk
need nginx nginx
NGINX_BIN=$(command -v nginx)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "building (release)..." >&2
cargo build --release --quiet --bin switchboard --example bench_upstream
BIN=target/release/switchboard
UP=target/release/examples/bench_upstream

# measured_provider NAME KIND BASE_URL: a provider with limits and prices, as a user runs one.
measured_provider() {
  cat <<TOML
[providers.$1]
kind = "$2"
base_url = "$3"
api_key_env = "BENCH_UPSTREAM_KEY"
rpm = 100000000
tpm = 2000000000

[providers.$1.models.bench]
input_per_mtok = 1.25
output_per_mtok = 10
cached_input_per_mtok = 0.125
currency = "USD"

TOML
}

# As a user would run it: a client key with limits, provider limits, prices (cost accounting),
# metrics on. The same fake provider answers in three wires: the router appends
# /chat/completions, /v1/messages and /v1beta/models/bench:generateContent (or
# :streamGenerateContent?alt=sse) to the base URLs.
{
  cat <<TOML
[server]
listen = "$ROUTER"

[[keys]]
name = "bench"
key_env = "BENCH_KEY"
rpm = 100000000
tpm = 2000000000

[providers.slow]
kind = "openai"
base_url = "http://$SLOW_UPSTREAM/v1"
api_key_env = "BENCH_UPSTREAM_KEY"

[routes.bench]
targets = ["up/bench"]

[routes.bench-anthropic]
targets = ["anthropic/bench"]

[routes.bench-gemini]
targets = ["gemini/bench"]

[routes.slow]
targets = ["slow/bench"]

TOML
  measured_provider up openai "http://$UPSTREAM/v1"
  measured_provider anthropic anthropic "http://$UPSTREAM"
  measured_provider gemini gemini "http://$UPSTREAM"
} > "$WORK/bench.toml"

# nginx as a bare reverse proxy to the same upstream: keep-alive upstream connections, no
# buffering, no logs, one worker per core like the router.
cat > "$WORK/nginx.conf" <<NGINX
worker_processes auto;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream up { server $UPSTREAM; keepalive 256; }
  server {
    listen $NGINX;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
NGINX
"$NGINX_BIN" -c "$WORK/nginx.conf" -p "$WORK" & NGINX_PID=$!
PIDS+=("$NGINX_PID")

"$UP" "$UPSTREAM" & PIDS+=($!)
"$UP" "$SLOW_UPSTREAM" 500 & PIDS+=($!)
BENCH_KEY=$KEY BENCH_UPSTREAM_KEY=sk-bench RUST_LOG=warn "$BIN" --config "$WORK/bench.toml" & ROUTER_PID=$!
PIDS+=("$ROUTER_PID")
for _ in $(seq 50); do curl -sf "http://$ROUTER/healthz" >/dev/null && break; sleep 0.1; done
if [ -n "$BEFORE" ]; then
  sed "s/^listen = .*/listen = \"$ROUTER_BEFORE\"/" "$WORK/bench.toml" > "$WORK/before.toml"
  BENCH_KEY=$KEY BENCH_UPSTREAM_KEY=sk-bench RUST_LOG=warn "$BEFORE" --config "$WORK/before.toml" &
  BEFORE_PID=$!
  PIDS+=("$BEFORE_PID")
  for _ in $(seq 50); do curl -sf "http://$ROUTER_BEFORE/healthz" >/dev/null && break; sleep 0.1; done
fi

# rss_mib PID: resident memory of PID and its children processes, in MiB.
rss_mib() {
  cat "/proc/$1/status" $(pgrep -P "$1" | sed 's|.*|/proc/&/status|') 2>/dev/null |
    awk '/VmRSS/ {kib += $2} END {printf "%.1f", kib / 1024}'
}
# cpu_ticks PID: user + system ticks of PID and its children processes (nginx's workers).
cpu_ticks() {
  local pids=("$1") total=0 pid
  mapfile -t -O 1 pids < <(pgrep -P "$1")
  for pid in "${pids[@]}"; do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
TICKS=$(getconf CLK_TCK)

# One wrk script per mode and route, all with the same request but its model:
# MODE.lua (route bench), MODE-anthropic.lua and MODE-gemini.lua.
for mode in plain stream; do
  stream=false; [ "$mode" = stream ] && stream=true
  for route in bench bench-anthropic bench-gemini; do
    script=$mode${route#bench}
    cat > "$WORK/$script.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"model":"$route","stream":$stream,"messages":[{"role":"user","content":"Say something about foxes and dogs, please."}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $KEY"
LUA
  done
done

IDLE_RSS=$(rss_mib "$ROUTER_PID")

# row MODE PATH CONNS RPS P50 P99 CPU RSS: one line of the table, the path wide enough for
# router-anthropic.
row() {
  printf '%-7s %-16s %5s %12s %10s %10s %14s %10s\n' "$@"
}

# wrk_cell SCRIPT URL CONNS -> "rps p50 p99 requests"; SCRIPT names $WORK/SCRIPT.lua.
wrk_cell() {
  local threads=2; [ "$3" -lt 2 ] && threads=1
  wrk -t"$threads" -c"$3" -d"${DURATION}s" --latency -s "$WORK/$1.lua" "$2" > "$WORK/out" 2>&1 || true
  awk '
    /Requests\/sec/ {rps=$2}
    /^ +50%/ {p50=$2}
    /^ +99%/ {p99=$2}
    /requests in/ {n=$1}
    END {printf "%s %s %s %s", rps, p50, p99, n}' "$WORK/out"
}

# proxied_cell MODE PATH ADDR PID CONNS [SCRIPT]: one row, with the proxy's CPU per request.
# SCRIPT (default MODE) picks the request, hence the route.
proxied_cell() {
  local before after rps p50 p99 n per_req
  before=$(cpu_ticks "$4")
  read -r rps p50 p99 n <<<"$(wrk_cell "${6:-$1}" "http://$3/v1/chat/completions" "$5")"
  after=$(cpu_ticks "$4")
  per_req=$(awk -v t=$((after - before)) -v hz="$TICKS" -v n="$n" 'BEGIN { if (n > 0) printf "%.1f us", t / hz * 1e6 / n; else print "-" }')
  row "$1" "$2" "$5" "$rps" "$p50" "$p99" "$per_req" "$(rss_mib "$4")"
}

echo
row mode path conns "req/s" p50 p99 "proxy CPU/req" "RSS MiB"
for mode in $MODES; do
  for conns in $CONNS; do
    read -r rps p50 p99 _ <<<"$(wrk_cell "$mode" "http://$UPSTREAM/v1/chat/completions" "$conns")"
    row "$mode" direct "$conns" "$rps" "$p50" "$p99" - -
    proxied_cell "$mode" nginx "$NGINX" "$NGINX_PID" "$conns"
    proxied_cell "$mode" router "$ROUTER" "$ROUTER_PID" "$conns"
    if [ -n "$BEFORE" ]; then
      proxied_cell "$mode" router-before "$ROUTER_BEFORE" "$BEFORE_PID" "$conns"
    fi
    for wire in anthropic gemini; do
      proxied_cell "$mode" "router-$wire" "$ROUTER" "$ROUTER_PID" "$conns" "$mode-$wire"
    done
  done
done

if [ "$HELD" = 0 ]; then
  printf '\nidle RSS: %s MiB\n' "$IDLE_RSS"
  exit 0
fi

# 1,000 streams held open at once: the slow upstream spaces its 21 chunks 500 ms apart.
sed -i 's/"model":"bench"/"model":"slow"/' "$WORK/stream.lua"
wrk -t2 -c1000 -d8s -s "$WORK/stream.lua" "http://$ROUTER/v1/chat/completions" > /dev/null 2>&1 &
WRK_PID=$!
sleep 5
OPEN=$(ss -Htn state established "( sport = :${ROUTER##*:} )" | wc -l)
HELD_RSS=$(rss_mib "$ROUTER_PID")
wait "$WRK_PID" || true

printf '\nidle RSS: %s MiB; with %s client connections streaming: %s MiB\n' "$IDLE_RSS" "$OPEN" "$HELD_RSS"
