#!/usr/bin/env bash
# The latency of other clients on one worker while 20 different 1 MiB text
# files are compressed for the first time (issue 21, security item 3).
#
#   scripts/compress_p99.sh [BINARY]     # default target/release/conveyor
#
# Starts BINARY on a temp docroot (1 worker, port $PORT), runs
# `conveyor bench` against a small cached file (open loop: 2,000 requests/s
# over 8 connections for 8 s, one client thread; latency counted from when
# each request was due, so a stalled worker shows in full), and one second
# in asks for each big file once, one after another, with Accept-Encoding:
# br, gzip (each its first request: compressed now). Prints each big
# request's time, then the bench's seconds and table. Stops the server it
# started, by PID. SERVER_FLAGS adds flags to the server's command line
# (SERVER_FLAGS=--no-compress: the same run with nothing to compress).
set -euo pipefail
BIN="$(realpath "${1:-target/release/conveyor}")"
PORT="${PORT:-18390}"
DIR="$(mktemp -d)"
SERVER=""
cleanup() {
  if [[ -n "$SERVER" ]]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  rm -rf "$DIR"
}
trap cleanup EXIT

python3 - "$DIR" <<'EOF'
import random, sys
words = ["const ", "value", " = ", "function", "(x)", " { ", "return ", "};\n",
         "let ", "items", ".map", "(y => y + 1)", " if ", "else", "null", "[i]"]
root = sys.argv[1]
for i in range(20):
    rng = random.Random(i)
    out, size = [], 0
    while size < 1 << 20:
        w = rng.choice(words) + (str(rng.randrange(1000)) if rng.random() < 0.15 else "")
        out.append(w); size += len(w)
    open(f"{root}/f{i}.js", "w").write("".join(out)[: 1 << 20])
open(f"{root}/small.css", "w").write(".a { color: red; }\n" * 200)
EOF

# From the temp dir: no config/conveyor.toml is picked up.
(cd "$DIR" && exec "$BIN" . --listen "127.0.0.1:$PORT" --workers 1 ${SERVER_FLAGS:-} 2>/dev/null) &
SERVER=$!
for _ in $(seq 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$PORT/small.css" && break
  sleep 0.05
done

"$BIN" bench "http://127.0.0.1:$PORT/small.css" -c 8 --rate 2000 -d 8s --threads 1 > "$DIR/bench.txt" 2> "$DIR/seconds.txt" &
BENCH=$!
sleep 1
for i in $(seq 0 19); do
  curl -s -o /dev/null -H 'Accept-Encoding: br, gzip' \
    -w "f$i.js %{http_code} %{size_download} B in %{time_total} s\n" \
    "http://127.0.0.1:$PORT/f$i.js"
done
wait "$BENCH"
cat "$DIR/seconds.txt" "$DIR/bench.txt"
