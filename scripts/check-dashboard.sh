#!/usr/bin/env bash
# Checks dashboards/switchboard.json (or the dashboard given as $1) against a real Prometheus scraping a real router.
#
# 1. Installs Prometheus (Debian package `prometheus`, which brings `promtool`) when missing.
# 2. Builds the router (debug, unless SWITCHBOARD_BIN names a binary) and starts it on
#    127.0.0.1 with a mock-provider config: prices, a failing provider first in a route, a
#    per-transaction model, a provider limited to one request a minute, a pay-per-call seller
#    (a small Python server speaking the Alipay A2M 402 exchange), and a usage log.
# 3. Starts Prometheus on 127.0.0.1 (its own config and data dir in a temp dir) scraping the
#    router's /metrics every second, and sends scripted traffic in two waves: successes
#    (plain and streamed), a failover, transactions, rate-limit rejections, 400s and 404s, and
#    the 402 exchange: quotes, paid retries and refused proofs, and embeddings (200s and a 400).
# 4. Runs every PromQL expression of the dashboard (panel targets, and template variables'
#    label_values() as `count by`) through /api/v1/query, with Grafana's variables replaced
#    ($__rate_interval -> 1m, $__range -> 5m, multi-value variables -> .*): each must parse
#    and return data.
# 5. Runs `promtool check metrics` on the router's exposition, stops both processes and
#    checks the usage log holds one line per request.
#
# Prints one line per check and a summary; exits non-zero on any failure. Bounded in time:
# every wait has a deadline and the whole run takes well under two minutes once built.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dashboard="${1:-$repo/dashboards/switchboard.json}"

log() { printf 'check-dashboard: %s\n' "$*" >&2; }

install_prometheus() {
    if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
        return
    fi
    if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        log "prometheus and promtool are needed: install the Debian package 'prometheus'"
        exit 1
    fi
    log "installing prometheus with apt-get"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        prometheus >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            prometheus >/dev/null
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Polls a URL until it answers 200 or `seconds` pass.
wait_http() {
    local url="$1" seconds="$2" pid="$3" name="$4"
    local until=$((SECONDS + seconds))
    while ((SECONDS < until)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$name exited early"
            return 1
        fi
        if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    log "$name did not answer $url within ${seconds}s"
    return 1
}

# Stops a process this script started (by its pid), waiting at most 10 s.
stop() {
    local pid="$1"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

install_prometheus
command -v curl >/dev/null 2>&1 || { log "curl is needed"; exit 1; }

if [[ -n "${SWITCHBOARD_BIN:-}" ]]; then
    bin="$SWITCHBOARD_BIN"
else
    log "building the router"
    (cd "$repo" && cargo build --locked --quiet --bin switchboard)
    bin="$repo/target/debug/switchboard"
fi

work="$(mktemp -d -t switchboard-dashboard.XXXXXX)"
router_pid=""
prometheus_pid=""
seller_pid=""
cleanup() {
    stop "$prometheus_pid"
    stop "$router_pid"
    stop "$seller_pid"
    rm -rf "$work"
}
trap cleanup EXIT

router_port="$(free_port)"
prometheus_port="$(free_port)"
seller_port="$(free_port)"
router="http://127.0.0.1:$router_port"
prometheus_url="http://127.0.0.1:$prometheus_port"

cat >"$work/router.toml" <<EOF
[server]
listen = "127.0.0.1:$router_port"
shutdown_grace = "5s"

[usage_log]
path = "$work/usage.jsonl"

[providers.local]
kind = "mock"
latency = "30ms"
chunk_delay = "5ms"

# An embeddings model: the mock's deterministic vectors, priced per input token.
[providers.local.models.vec]
embeddings = true
input_per_mtok = 0.02
currency = "USD"

[providers.local.models.echo]
input_per_mtok = 1.6
output_per_mtok = 6.4
cached_input_per_mtok = 0.64
currency = "USD"

# Every call fails (503): the failover route moves on to local.
[providers.flaky]
kind = "mock"
error_rate = 1.0

[providers.pay]
kind = "mock"

[providers.pay.models."pay-model"]
per_transaction = 0.01
currency = "CNY"

# One request a minute: the rest are refused by the router's own limit.
[providers.tight]
kind = "mock"
rpm = 1

[routes.demo]
targets = ["local/echo"]

[routes.vectors]
targets = ["local/vec"]

[routes.failover]
targets = ["flaky/echo", "local/echo"]

[routes.payments]
targets = ["pay/pay-model"]

[routes.limited]
targets = ["tight/echo"]

# An Alipay A2M seller: 402 quotes, then served against a payment proof.
[providers.seller]
kind = "openai"
base_url = "http://127.0.0.1:$seller_port/v1"
payment = "a2m"

[routes.paid]
targets = ["seller/ai"]
EOF

# The seller: a 402 with a Payment-Needed quote without proof, a 400 INVALID_PAYMENT_PROOF for
# a proof it refuses, else the answer with Payment-Validation (the proof names its order, a
# shortcut of this fake for the real seller's lookup at Alipay).
cat >"$work/seller.py" <<'PY'
import base64, datetime, itertools, json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

orders = itertools.count(1)


def b64(value):
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


class Seller(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        proof = self.headers.get("payment-proof")
        if proof is None:
            deadline = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
            quote = {"out_trade_no": f"o-{next(orders)}", "amount": "0.01", "currency": "CNY",
                     "pay_before": deadline.isoformat(timespec="seconds"),
                     "seller_signature": "c2lnbmVk", "seller_sign_type": "RSA2"}
            self.reply(402, {"code": "Payment-Needed", "message": "pay first"},
                       {"Payment-Needed": b64(quote)})
            return
        decoded = json.loads(base64.urlsafe_b64decode(proof + "=" * (-len(proof) % 4)))
        order = decoded["protocol"].get("out_trade_no")
        if not order:
            self.reply(400, {"code": "INVALID_PAYMENT_PROOF", "message": "bad proof"}, {})
            return
        validation = {"trade_no": "T" + order, "out_trade_no": order, "validated": True}
        answer = {"id": "c", "object": "chat.completion", "created": 1, "model": "ai",
                  "choices": [{"index": 0, "finish_reason": "stop",
                               "message": {"role": "assistant", "content": "paid"}}],
                  "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
        self.reply(200, answer, {"Payment-Validation": b64(validation)})

    def reply(self, status, body, headers):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["SELLER_PORT"])), Seller).serve_forever()
PY
SELLER_PORT="$seller_port" python3 "$work/seller.py" >"$work/seller.log" 2>&1 &
seller_pid=$!

cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: switchboard
    static_configs:
      - targets: ["127.0.0.1:$router_port"]
EOF

log "starting the router on $router"
"$bin" --config "$work/router.toml" >"$work/router.log" 2>&1 &
router_pid=$!
wait_http "$router/readyz" 30 "$router_pid" router || { cat "$work/router.log" >&2; exit 1; }

log "starting prometheus on $prometheus_url"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
    --web.listen-address="127.0.0.1:$prometheus_port" --log.level=warn \
    >"$work/prometheus.log" 2>&1 &
prometheus_pid=$!
wait_http "$prometheus_url/-/ready" 30 "$prometheus_pid" prometheus \
    || { cat "$work/prometheus.log" >&2; exit 1; }

status=0
ROUTER="$router" PROMETHEUS="$prometheus_url" DASHBOARD="$dashboard" WORK="$work" \
    python3 - <<'PY' || status=1
"""Scripted traffic, then every dashboard expression through Prometheus's query API."""
import base64
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

ROUTER = os.environ["ROUTER"]
PROMETHEUS = os.environ["PROMETHEUS"]


def chat(model, stream=False, headers=None, raw=None, answer_headers=None):
    """Sends one chat request and reads the whole answer; returns the status (and keeps the
    answer's headers in `answer_headers` when given)."""
    body = raw if raw is not None else json.dumps({
        "model": model,
        "stream": stream,
        **({"stream_options": {"include_usage": True}} if stream else {}),
        "messages": [{"role": "user", "content": "how much is the fish"}],
    })
    request = urllib.request.Request(
        ROUTER + "/v1/chat/completions", data=body.encode(), method="POST",
        headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()
            if answer_headers is not None:
                answer_headers.update({k.lower(): v for k, v in answer.headers.items()})
            return answer.status
    except urllib.error.HTTPError as error:
        error.read()
        if answer_headers is not None:
            answer_headers.update({k.lower(): v for k, v in error.headers.items()})
        return error.code


def embed(model, raw=None):
    """Sends one embeddings request; returns the status."""
    body = raw if raw is not None else json.dumps({"model": model, "input": ["how much", "is the fish"]})
    request = urllib.request.Request(
        ROUTER + "/v1/embeddings", data=body.encode(), method="POST",
        headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()
            return answer.status
    except urllib.error.HTTPError as error:
        error.read()
        return error.code


def b64(value):
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def pay_per_call():
    """The 402 exchange: a quote, the paid retry, and a proof the seller refuses."""
    quote_headers = {}
    statuses = [chat("paid", answer_headers=quote_headers)]
    needed = quote_headers.get("payment-needed", "")
    quote = json.loads(base64.urlsafe_b64decode(needed + "=" * (-len(needed) % 4)) or b"{}")
    order = quote.get("out_trade_no", "none")
    proof = b64({"protocol": {"payment_proof": "p", "trade_no": "T" + order,
                              "out_trade_no": order},
                 "method": {"client_session": "c2Vzc2lvbg=="}})
    statuses.append(chat("paid", headers={"payment-proof": proof}))
    bad = b64({"protocol": {"payment_proof": "forged"}, "method": {}})
    statuses.append(chat("paid", headers={"payment-proof": bad}))
    return statuses


def wave(n):
    """One round of traffic; returns the statuses by kind of request."""
    statuses = {
        "ok": [chat("demo") for _ in range(3)],
        "stream": [chat("demo", stream=True) for _ in range(3)],
        "failover": [chat("failover")],
        "payments": [chat("payments", headers={"x-transaction-id": f"tx-{n}-{i // 2}"})
                     for i in range(4)],
        "limited": [chat("limited") for _ in range(2)],
        "pay per call": pay_per_call(),
        "404": [chat("no-such-model")],
        "400": [chat("demo", raw="{not json")],
        "embeddings": [embed("vectors") for _ in range(3)],
        "embeddings 400": [embed("vectors", raw='{"model":"vectors","input":[]}')],
    }
    return statuses


def query(expr):
    """Runs an instant query; returns (ok, detail)."""
    url = PROMETHEUS + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            reply = json.load(answer)
    except urllib.error.HTTPError as error:
        reply = json.load(error)
    if reply.get("status") != "success":
        return False, f"{reply.get('errorType')}: {reply.get('error')}"
    result = reply["data"]["result"]
    if not result:
        return False, "no data"
    # A series that is NaN everywhere (a quantile of nothing) draws nothing either.
    values = [float(r["value"][1]) for r in result if "value" in r]
    if values and all(v != v for v in values):
        return False, f"{len(result)} series, all NaN"
    return True, f"{len(result)} series"


def wait_for(expr, seconds, what):
    """Polls until `expr` returns data."""
    deadline = time.time() + seconds
    while not query(expr)[0]:
        if time.time() > deadline:
            print(f"FAIL: {what} within {seconds}s")
            sys.exit(1)
        time.sleep(0.3)


# Scraping starts a few seconds after Prometheus says it is ready; traffic before the first
# scrape would look like series that never moved.
wait_for('up{job="switchboard"} == 1', 30, "prometheus did not scrape the router")
sent = 0
for n in range(2):
    statuses = wave(n)
    sent += sum(len(s) for s in statuses.values())
    print(f"traffic wave {n + 1}: " + ", ".join(f"{k} {v}" for k, v in statuses.items()))
    expected = {"ok": 200, "stream": 200, "payments": 200, "404": 404, "400": 400,
                "embeddings": 200, "embeddings 400": 400}
    for kind, status in expected.items():
        if any(s != status for s in statuses[kind]):
            print(f"FAIL traffic: {kind} answered {statuses[kind]}, want {status}")
            sys.exit(1)
    if statuses["pay per call"] != [402, 200, 400]:
        print(f"FAIL traffic: pay per call answered {statuses['pay per call']}, want [402, 200, 400]")
        sys.exit(1)
    if statuses["failover"] != [200]:
        print(f"FAIL traffic: failover answered {statuses['failover']}")
        sys.exit(1)
    time.sleep(2.5)
with open(os.path.join(os.environ["WORK"], "sent"), "w") as out:
    out.write(str(sent))

# Prometheus has every request once a scrape shows them all; one more scrape on top so every
# series has two samples for rate().
wait_for(f"sum(switchboard_requests_total) >= {sent}", 30, "prometheus did not see all the traffic")
time.sleep(2.5)

with open(os.environ["DASHBOARD"]) as f:
    dashboard = json.load(f)

substitutions = [
    (r"\$__rate_interval|\$\{__rate_interval\}", "1m"),
    (r"\$__interval|\$\{__interval\}", "1m"),
    (r"\$__range|\$\{__range\}", "5m"),
]
variables = [v["name"] for v in dashboard.get("templating", {}).get("list", [])]


def substitute(expr):
    for pattern, value in substitutions:
        expr = re.sub(pattern, value, expr)
    for name in variables:
        # Multi-value variables are regex matchers: "All" is .*
        expr = re.sub(r"\$\{" + name + r"(:[a-z]+)?\}|\$" + name + r"\b", ".*", expr)
    return expr


checks = []


def panels(items):
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


for panel in panels(dashboard.get("panels", [])):
    for target in panel.get("targets", []):
        if "expr" in target:
            checks.append((f"{panel['title']} [{target.get('refId', '?')}]", target["expr"]))
for variable in dashboard.get("templating", {}).get("list", []):
    if variable.get("type") != "query":
        continue
    text = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
    match = re.fullmatch(r"\s*label_values\((.+),\s*(\w+)\)\s*", text)
    if not match:
        checks.append((f"variable {variable['name']}", text))
        continue
    checks.append((f"variable {variable['name']}", f"count by ({match[2]}) ({match[1]})"))

if not checks:
    print("FAIL: no PromQL expressions found in the dashboard")
    sys.exit(1)

failures = 0
for title, expr in checks:
    ok, detail = query(substitute(expr))
    print(f"{'ok  ' if ok else 'FAIL'} {title}: {detail}")
    if not ok:
        print(f"     {substitute(expr)}")
        failures += 1
print(f"dashboard: {len(checks) - failures} of {len(checks)} expressions parse and return data")
sys.exit(1 if failures else 0)
PY

log "promtool check metrics"
if curl -fsS --max-time 5 "$router/metrics" >"$work/exposition.txt" \
    && promtool check metrics <"$work/exposition.txt" >"$work/promtool.txt" 2>&1; then
    echo "ok   promtool check metrics: $(grep -c '^# TYPE' "$work/exposition.txt") metric families"
else
    echo "FAIL promtool check metrics:"
    sed 's/^/     /' "$work/promtool.txt"
    status=1
fi

stop "$prometheus_pid"
prometheus_pid=""
# A graceful stop flushes the usage log; every request (chat and embeddings) must have its line.
stop "$router_pid"
router_pid=""
sent="$(cat "$work/sent" 2>/dev/null || echo '?')"
lines="$(wc -l <"$work/usage.jsonl" 2>/dev/null || echo 0)"
if [[ "$lines" == "$sent" ]]; then
    echo "ok   usage log: $lines lines for $sent requests"
else
    echo "FAIL usage log: $lines lines for $sent requests"
    status=1
fi

if ((status == 0)); then
    echo "check-dashboard: all checks passed"
else
    echo "check-dashboard: FAILED"
fi
exit "$status"
