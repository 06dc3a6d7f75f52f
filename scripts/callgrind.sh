#!/usr/bin/env bash
# Instructions per request, counted by callgrind: a figure other load on the
# machine does not move, for comparing two builds (or two commits) of the
# same request path.
#
#   scripts/callgrind.sh [BINARY] [PATH] [REQUESTS] [PIPELINE]
#   scripts/callgrind.sh target/release/conveyor /nope 20000 1
#   scripts/callgrind.sh target/release/conveyor /style.css 32000 16
#   HEADER='Accept-Encoding: gzip' scripts/callgrind.sh target/release/conveyor /style.css
#
# Serves this repository's www/ with one worker under
# `valgrind --tool=callgrind` on 127.0.0.1:$PORT (default 18199), sends 2000
# requests to warm the caches, zeroes the counters, sends REQUESTS more over
# 16 keep-alive connections with `conveyor bench -n` (PIPELINE per write),
# and prints the instructions counted in between divided by REQUESTS. The
# client is the same binary run natively, or $CLIENT (a current build, to
# measure an old one). KEEP=1 keeps the callgrind dump (its path is
# printed) for callgrind_annotate. Stops only the server it started.
# Needs valgrind (callgrind_control, callgrind_annotate).
# CACHE=1 runs callgrind's cache simulator too (--cache-sim=yes) and prints
# each event per request: L1 misses are D1mr/D1mw (data) and I1mr. The
# last-level figures follow valgrind's guess at the host's cache; pass
# CACHE_LL=SIZE,ASSOC,LINE (--LL) to set it, e.g. 1048576,16,64 for an L2.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$(realpath "${1:-$HERE/target/release/conveyor}")"
URL_PATH="${2:-/style.css}"
N="${3:-20000}"
PIPELINE="${4:-1}"
CLIENT="$(realpath "${CLIENT:-$BIN}")"
PORT="${PORT:-18199}"
ROOT="${ROOT:-$HERE/www}"
OUT="$(mktemp -d "${TMPDIR:-/tmp}/conveyor-callgrind.XXXXXX")"
CG=(--tool=callgrind)
[[ -z "${CACHE:-}" ]] || CG+=(--cache-sim=yes ${CACHE_LL:+"--LL=$CACHE_LL"})
command -v callgrind_control >/dev/null || { echo "needs valgrind" >&2; exit 2; }

# Run from the temporary directory: no config/conveyor.toml is picked up.
(cd "$OUT" && exec valgrind "${CG[@]}" --callgrind-out-file="$OUT/cg.out" \
  "$BIN" "$ROOT" --listen "127.0.0.1:$PORT" --workers 1 >"$OUT/server.log" 2>&1) &
VG=$!
cleanup() {
  kill "$VG" 2>/dev/null || true; wait "$VG" 2>/dev/null || true
  [[ -n "${KEEP:-}" ]] || rm -rf "$OUT"
}
trap cleanup EXIT

load() {
  "$CLIENT" bench "http://127.0.0.1:$PORT$URL_PATH" -n "$1" -c 16 --pipeline "$PIPELINE" \
    --threads 1 --max-errors 100 -d 120s ${HEADER:+-H "$HEADER"} >"$OUT/bench.txt" 2>&1 || true
}
for _ in $(seq 1 300); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  kill -0 "$VG" 2>/dev/null || { cat "$OUT/server.log" >&2; exit 1; }
  sleep 0.1
done
load 2000
# The server's process id is valgrind's: it runs the program in its own process.
callgrind_control -z "$VG" >/dev/null 2>&1
load "$N"
grep -E '^\| requests \|' "$OUT/bench.txt" >&2 || { cat "$OUT/bench.txt" >&2; exit 1; }
callgrind_control -d "$VG" >/dev/null 2>&1
DUMP="$(ls -t "$OUT"/cg.out.* | head -1)"
TOTAL="$(callgrind_annotate "$DUMP" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')"
echo "$URL_PATH x$PIPELINE: $((TOTAL / N)) instructions per request ($TOTAL over $N requests)"
[[ -z "${KEEP:-}" ]] || echo "dump: $DUMP"
[[ -z "${CACHE:-}" ]] || awk -v n="$N" '/^events:/ { split($0, name) }
  /^summary:/ { for (i = 2; i <= NF; i++) printf "%s %.1f  ", name[i], $i / n; print "per request" }' "$DUMP"
