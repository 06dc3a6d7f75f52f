#!/usr/bin/env bash
# Other clients' p99 on one worker while a client opens and resets HTTP/2
# streams in a loop (rapid reset, CVE-2023-44487; issue 22: within 2x of
# an idle server).
#
#   scripts/h2_reset_p99.sh [BINARY]     # default target/release/conveyor
#
# Starts BINARY (1 worker, TLS on $PORT, a self-signed certificate) on a
# temp site. ROUNDS times, in turns: h2load as the legitimate clients (16
# connections, one stream each, 2,000 requests/s in all for $SECS s, TLS
# h2; latency per request from its --log-file), first alone, then while
# scripts/h2_reset_p99.py attacks over TLS for as long. Prints each run's
# p50/p99/max, and the server's CPU (all its threads, from
# /proc/PID/task/*/schedstat) per second of each run: the attacked minus
# the idle figure is what the attack costs the server, a measure the
# machine's other load moves far less than p99. ATTACK=handshakes runs
# the control instead: connections that only shake hands and close, as
# fast. Stops the server it started, by PID.
# ATTACKER_SCHED=idle runs the attacker under `chrt -i 0` (SCHED_IDLE: it
# gets a core only when nothing else wants it), the nearest this machine
# comes to an attacker on another host: on 2 shared cores the attacker's own
# CPU otherwise delays h2load and the server (BENCHMARKS.md, "Rapid reset:
# where the legitimate clients wait"). Check its line: the same connection
# count means the same attack.
# Needs h2load (nghttp2-client) and python3 (and chrt, util-linux, for idle).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="$(realpath "${1:-target/release/conveyor}")"
PORT="${PORT:-18393}"
SECS="${SECS:-8}"
ROUNDS="${ROUNDS:-3}"
DIR="$(mktemp -d)"
SERVER=""
cleanup() {
  if [[ -n "$SERVER" ]]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  rm -rf "$DIR"
}
trap cleanup EXIT
mkdir -p "$DIR/www"
head -c 1024 /dev/zero | tr '\0' 'x' > "$DIR/www/index.html"
(cd "$DIR" && exec "$BIN" www --workers 1 --listen "127.0.0.1:$((PORT + 1))" \
  --tls-listen "127.0.0.1:$PORT" --tls-self-signed >"$DIR/server.log" 2>&1) &
SERVER=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done
URL="https://127.0.0.1:$PORT/index.html"
SCHED=()
case "${ATTACKER_SCHED:-normal}" in
  normal) ;;
  idle) SCHED=(chrt -i 0) ;;
  *) echo "ATTACKER_SCHED must be normal or idle" >&2; exit 2 ;;
esac
legit() { # $1: log file
  timeout $((SECS + 20)) h2load -c 16 -m 1 -t 1 --rps 125 -D "$SECS" --log-file "$1" "$URL" >"$1.out" 2>&1 || true
  grep -E '^requests:' "$1.out" >&2 || true
}
pct() { # latency (µs) percentiles of an h2load log: p50 p99 max, in ms
  python3 - "$1" <<'PY'
import sys
v = sorted(int(l.split()[2]) for l in open(sys.argv[1]) if l.strip() and l.split()[1] == "200")
q = lambda p: v[min(len(v) - 1, int(p * len(v)))] / 1000
print(f"{len(v)} requests: p50 {q(0.5):.2f} ms, p99 {q(0.99):.2f} ms, max {v[-1] / 1000:.2f} ms")
PY
}
cpu_ns() { # the server's CPU so far, ns (its threads are long-lived)
  cat /proc/"$SERVER"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f", s }'
}
timed() { # $1: log file; runs legit, then prints the server's CPU ms/s
  local c0 t0 c1 t1
  c0=$(cpu_ns); t0=$(date +%s%N)
  legit "$1"
  c1=$(cpu_ns); t1=$(date +%s%N)
  echo "server CPU $(( (c1 - c0) * 1000 / (t1 - t0) )) ms/s"
}
for r in $(seq 1 "$ROUNDS"); do
  IDLE_CPU=$(timed "$DIR/idle$r.log"); echo "round $r idle:     $(pct "$DIR/idle$r.log"); $IDLE_CPU"
  "${SCHED[@]}" python3 "$HERE/h2_reset_p99.py" 127.0.0.1 "$PORT" "$((SECS + 1))" ${ATTACK:-} >"$DIR/attack$r.out" &
  A=$!
  sleep 0.5
  ATT_CPU=$(timed "$DIR/att$r.log"); echo "round $r attacked: $(pct "$DIR/att$r.log"); $ATT_CPU"
  wait "$A"; echo "round $r $(cat "$DIR/attack$r.out")"
done
grep -o '"calmed":[0-9]*' < <(curl -s "http://127.0.0.1:$((PORT + 1))/status") || true
