#!/usr/bin/env bash
# Instructions per HTTP/2 request, counted by callgrind: scripts/callgrind.sh
# for HTTP/2, with h2load as the client.
#
#   scripts/callgrind-h2.sh [BINARY] [PATH] [REQUESTS] [STREAMS] [tls|h2c]
#   scripts/callgrind-h2.sh target/release/conveyor /style.css 20000 10 tls
#
# Serves this repository's www/ with one worker under
# `valgrind --tool=callgrind` on 127.0.0.1:$PORT (h2c prior knowledge) and
# $((PORT + 1)) (TLS, ALPN h2, a self-signed certificate), sends 2000
# requests to warm the caches, zeroes the counters, sends REQUESTS more over
# 16 connections with STREAMS concurrent streams each (h2load -m), and
# prints the instructions counted in between divided by REQUESTS.
# CONFIG=FILE passes `--config FILE` (an `[http2] engine = "h2"` file, say).
# KEEP=1 keeps the callgrind dump (its path is printed) for
# callgrind_annotate. Stops only the server it started.
# Needs valgrind and h2load (nghttp2-client).
# CACHE=1 runs callgrind's cache simulator too (--cache-sim=yes) and prints
# each event per request: L1 misses are D1mr/D1mw (data) and I1mr. The
# last-level figures follow valgrind's guess at the host's cache; pass
# CACHE_LL=SIZE,ASSOC,LINE (--LL) to set it, e.g. 1048576,16,64 for an L2.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$(realpath "${1:-$HERE/target/release/conveyor}")"
URL_PATH="${2:-/style.css}"
N="${3:-20000}"
STREAMS="${4:-10}"
MODE="${5:-tls}"
PORT="${PORT:-18197}"
ROOT="${ROOT:-$HERE/www}"
OUT="$(mktemp -d "${TMPDIR:-/tmp}/conveyor-callgrind-h2.XXXXXX")"
EXTRA=()
[[ -n "${CONFIG:-}" ]] && EXTRA=(--config "$(realpath "$CONFIG")")
CG=(--tool=callgrind)
[[ -z "${CACHE:-}" ]] || CG+=(--cache-sim=yes ${CACHE_LL:+"--LL=$CACHE_LL"})
command -v callgrind_control >/dev/null || { echo "needs valgrind" >&2; exit 2; }
command -v h2load >/dev/null || { echo "needs h2load (nghttp2-client)" >&2; exit 2; }
case "$MODE" in
  tls) URL="https://127.0.0.1:$((PORT + 1))$URL_PATH" ;;
  h2c) URL="http://127.0.0.1:$PORT$URL_PATH" ;;
  *) echo "mode is tls or h2c" >&2; exit 2 ;;
esac

# Run from the temporary directory: no config/conveyor.toml is picked up.
(cd "$OUT" && exec valgrind "${CG[@]}" --callgrind-out-file="$OUT/cg.out" \
  "$BIN" "$ROOT" --listen "127.0.0.1:$PORT" --tls-listen "127.0.0.1:$((PORT + 1))" \
  --tls-self-signed --workers 1 "${EXTRA[@]}" >"$OUT/server.log" 2>&1) &
VG=$!
cleanup() {
  kill "$VG" 2>/dev/null || true; wait "$VG" 2>/dev/null || true
  [[ -n "${KEEP:-}" ]] || rm -rf "$OUT"
}
trap cleanup EXIT

load() {
  timeout 600 h2load -n "$1" -c 16 -m "$STREAMS" -t 1 "$URL" >"$OUT/h2load.txt" 2>&1 || true
}
for _ in $(seq 1 300); do
  (exec 3<>"/dev/tcp/127.0.0.1/$((PORT + 1))") 2>/dev/null && break
  kill -0 "$VG" 2>/dev/null || { cat "$OUT/server.log" >&2; exit 1; }
  sleep 0.1
done
load "${WARM:-2000}"
# The server's process id is valgrind's: it runs the program in its own process.
callgrind_control -z "$VG" >/dev/null 2>&1
load "$N"
grep -E '^requests:' "$OUT/h2load.txt" >&2 || { cat "$OUT/h2load.txt" >&2; exit 1; }
grep -q "$N succeeded" "$OUT/h2load.txt" || { echo "not every request succeeded" >&2; exit 1; }
callgrind_control -d "$VG" >/dev/null 2>&1
DUMP="$(ls -t "$OUT"/cg.out.* | head -1)"
TOTAL="$(callgrind_annotate "$DUMP" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')"
echo "$URL_PATH $MODE -m$STREAMS: $((TOTAL / N)) instructions per request ($TOTAL over $N requests)"
[[ -z "${CACHE:-}" ]] || awk -v n="$N" '/^events:/ { split($0, name) }
  /^summary:/ { for (i = 2; i <= NF; i++) printf "%s %.1f  ", name[i], $i / n; print "per request" }' "$DUMP"
[[ -z "${KEEP:-}" ]] || echo "dump: $DUMP"
