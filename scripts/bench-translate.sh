#!/usr/bin/env bash
# Instructions per request of the front door's parse and of each adapter's request
# translation, counted by valgrind's callgrind (repeatable on a busy machine, unlike time).
# Each figure is (instructions for 200 rounds - for 0 rounds) / 200, so process start-up
# cancels out. With BEFORE=path-to-an-older-translate_loop binary, prints both.
#
#   scripts/bench-translate.sh
#   BEFORE=/tmp/translate_loop-old scripts/bench-translate.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind" >&2; exit 1; }
cargo build --release --quiet --example translate_loop
NOW=target/release/examples/translate_loop
ROUNDS=200

instructions() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
per_round() {
  local many none
  many=$(instructions "$1" "$ROUNDS" "$2" "$3")
  none=$(instructions "$1" 0 "$2" "$3")
  echo $(((many - none) / ROUNDS))
}

printf '%-6s %-10s %12s %12s\n' size work now before
for size in small large; do
  for work in parse openai mistral anthropic gemini; do
    before=-
    [ -n "${BEFORE:-}" ] && before=$(per_round "$BEFORE" "$size" "$work")
    printf '%-6s %-10s %12s %12s\n' "$size" "$work" "$(per_round "$NOW" "$size" "$work")" "$before"
  done
done
