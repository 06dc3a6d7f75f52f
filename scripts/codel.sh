#!/usr/bin/env bash
# Admission control (docs/pressure.md, "Admission control"): at about twice the rate the
# server can sustain, the latency of the requests it admits, under
# queue.overload = "wait" and "codel".
#
#   flock /tmp/bench.lock scripts/codel.sh
#
# The request is a directory listing of FILES entries (static.listing = true,
# one worker), a CPU-bound request the server sustains at a few thousand per
# second. First `wrk -H "Connection: close"` measures that capacity C
# (closed loop, a new connection per request). Then, for each policy, h2load
# opens new connections at a fixed rate of FACTOR x C (open loop: the rate
# does not slow down when the server does), one request each, for DURATION
# seconds, and its per-request log gives: requests answered 200 and their
# p50/p99 (from the request being sent), those answered 503 (shed), and those
# that failed or timed out. Every process is stopped by its PID; bounded.
#
# Needs: wrk, h2load (nghttp2-client). Environment: FILES=1000, FACTOR=2,
# DURATION=10, PORT=18320, BUILD=1, CLIENT_CPU=1 (clients pinned there when
# taskset exists; "" = not pinned).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FILES="${FILES:-1000}"
FACTOR="${FACTOR:-2}"
DURATION="${DURATION:-10}"
PORT="${PORT:-18320}"
CLIENT_CPU="${CLIENT_CPU-1}"
for tool in wrk h2load; do
  have "$tool" || { echo "codel.sh needs $tool" >&2; exit 1; }
done
ulimit -n "$(ulimit -Hn)"
PIN=()
if [[ -n "$CLIENT_CPU" ]] && have taskset; then PIN=(taskset -c "$CLIENT_CPU"); fi

build
DOCROOT="$WORK/www"
mkdir -p "$DOCROOT/list"
for i in $(seq "$FILES"); do : > "$DOCROOT/list/entry-$i.txt"; done
URL="http://127.0.0.1:$PORT/list/"

# start POLICY: one worker, listings on, the overload policy named.
start() {
  cat > "$WORK/$1.toml" <<CONF
root = "$DOCROOT"
listen = "127.0.0.1:$PORT"
workers = 1
[queue]
overload = "$1"
[static]
listing = true
CONF
  port_free "$PORT"
  "$CONVEYOR" --config "$WORK/$1.toml" > "$WORK/$1.log" 2>&1 &
  SERVER_PID=$!
  STARTED_PIDS+=("$SERVER_PID")
  wait_listening "$SERVER_PID" "$PORT" || { cat "$WORK/$1.log" >&2; exit 1; }
}

start wait
"${PIN[@]}" wrk -t1 -c8 -d3s -H "Connection: close" "$URL" > "$WORK/capacity" 2>&1 || true
capacity=$(awk '/Requests\/sec:/ { printf "%d", $2 }' "$WORK/capacity")
stop_pid "$SERVER_PID"
(( capacity > 0 )) || { cat "$WORK/capacity" >&2; exit 1; }
rate=$(( capacity * FACTOR ))
per_tick=$(( (rate + 99) / 100 ))      # connections every 10 ms
total=$(( per_tick * 100 * DURATION ))
echo "capacity: $capacity listings/s (closed loop); offered: $((per_tick * 100))/s for ${DURATION}s" >&2

declare -A ROW
for policy in wait codel; do
  start "$policy"
  timeout -k 5 $((DURATION + 60)) "${PIN[@]}" h2load --h1 -r "$per_tick" --rate-period 10ms \
    -c "$total" -n "$total" -T 20 --log-file "$WORK/$policy.h2log" "$URL" > "$WORK/$policy.h2" 2>&1 || true
  shed=$(curl -s "http://127.0.0.1:$PORT/status" | grep -o '"shed_codel":[0-9]*' | cut -d: -f2 || true)
  stop_pid "$SERVER_PID"
  grep -E "^requests:|^status codes:" "$WORK/$policy.h2" >&2 || cat "$WORK/$policy.h2" >&2
  log="$WORK/$policy.h2log"
  awk -F'\t' '$2 == 200 { print $3 }' "$log" | sort -n > "$WORK/$policy.ok"
  ok=$(wc -l < "$WORK/$policy.ok")
  # pct P: the P-th percentile of the 200s' latency, in ms.
  pct() { (( ok > 0 )) && sed -n "$(( ok * $1 / 100 + 1 ))p" "$WORK/$policy.ok" | awk '{ printf "%.1f", $1 / 1000 }' || echo "-"; }
  p50=$(pct 50)
  p99=$(pct 99)
  busy=$(awk -F'\t' '$2 == 503' "$log" | wc -l)
  answered=$(awk -F'\t' '$2 > 0' "$log" | wc -l)
  ROW[$policy]="| $policy | $total | $ok | $p50 ms | $p99 ms | $busy | $((total - answered)) | ${shed:-0} |"
done

echo
echo "$(date -u +%Y-%m-%d), $(uname -n), $(nproc) CPUs, kernel $(uname -r); 1 worker; GET of a $FILES-entry listing"
echo "capacity $capacity/s (wrk -c8, Connection: close); offered $((per_tick * 100))/s open loop (h2load -r $per_tick --rate-period 10ms), ${DURATION}s"
echo
echo "| queue.overload | sent | answered 200 | p50 of 200s | p99 of 200s | answered 503 | failed or timed out | /status shed_codel |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for policy in wait codel; do echo "${ROW[$policy]}"; done
