#!/usr/bin/env bash
# Three Conveyor replicas behind HAProxy on 127.0.0.1: keep-alive load
# through HAProxy while each replica in turn is restarted (SIGTERM, wait for
# it to exit, start it again, wait until HAProxy has it back) and then
# reloaded (SIGHUP, when the binary supports it). Prints the requests served
# and failed; exits 1 if any failed. First it checks that /status is closed
# to the outside: refused through HAProxy's public port for a client on
# another address (127.0.0.2), refused by a replica for a client HAProxy
# names in its PROXY header, while pages are served through it.
#
#   deploy/try-cluster.sh                   # about 35 s
#   DURATION=60 CONNS=64 deploy/try-cluster.sh
#
# Needs haproxy (Debian package `haproxy`) and wrk. The replicas run
# deploy/conveyor.toml (drain_delay 3 s; the PROXY protocol from loopback
# only) with --workers 1; HAProxy runs deploy/haproxy.cfg. Reaching a
# replica directly takes the PROXY header too: curl --haproxy-protocol. Everything else (the site, logs) is under a temp dir
# removed on exit; only the processes this script starts are stopped, by PID.
#
# Environment:
#   PORT=18400        HAProxy front end; replicas on PORT+1..PORT+3, stats on PORT+9
#   DURATION=30       seconds of load (the restarts and reloads take ~20 s)
#   CONNS=32          keep-alive connections from wrk to HAProxy
#   CONVEYOR=...      the binary (default target/release/conveyor, built first)
#   BUILD=1           0 skips `cargo build --release`
#   DRAIN_DELAY=      another shutdown.drain_delay than deploy/conveyor.toml's ("0s")
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

PORT="${PORT:-18400}"
DURATION="${DURATION:-30}"
CONNS="${CONNS:-32}"
REPLICAS=(1 2 3)
STATS_PORT=$((PORT + 9))
declare -A PIDS

for tool in haproxy wrk curl; do
  have "$tool" || { echo "try-cluster: needs $tool (apt-get install $tool)" >&2; exit 1; }
done
build
make_docroot
REPLICA_CONFIG="$REPO/deploy/conveyor.toml"
if [[ -n "${DRAIN_DELAY:-}" ]]; then
  REPLICA_CONFIG="$WORK/conveyor.toml"
  sed "s/^drain_delay = .*/drain_delay = \"$DRAIN_DELAY\"/" "$REPO/deploy/conveyor.toml" > "$REPLICA_CONFIG"
fi

replica_port() { echo $((PORT + $1)); }

# start_replica N: runs replica N and waits until its own /readyz is 200.
start_replica() {
  local n="$1" port pid i
  port=$(replica_port "$n")
  port_free "$port"
  "$CONVEYOR" "$DOCROOT" --config "$REPLICA_CONFIG" --workers 1 \
    --listen "127.0.0.1:$port" >> "$WORK/replica$n.log" 2>&1 &
  pid=$!
  STARTED_PIDS+=("$pid")
  PIDS[$n]=$pid
  for i in $(seq 100); do
    [[ "$(curl -s -m 1 --haproxy-protocol -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" == 200 ]] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "replica $n did not become ready on 127.0.0.1:$port:" >&2
  cat "$WORK/replica$n.log" >&2
  exit 1
}

# stat FIELD PROXY SERVER: one field of HAProxy's CSV stats.
stat() {
  curl -s -m 2 "http://127.0.0.1:$STATS_PORT/stats;csv" | awk -F, -v f="$1" -v px="$2" -v sv="$3" '
    NR == 1 { for (i = 1; i <= NF; i++) if ($i == f || $i == "# " f) col = i; next }
    $1 == px && $2 == sv { print $col }'
}

# wait_haproxy N STATE: until HAProxy reports replica N in STATE (UP, DOWN), at most 20 s.
wait_haproxy() {
  local i
  for i in $(seq 200); do
    [[ "$(stat status conveyor "replica$1")" == "$2"* ]] && return 0
    sleep 0.1
  done
  echo "HAProxy never saw replica $1 $2" >&2
  exit 1
}

# restart N: SIGTERM, wait for the exit (drain delay + in-flight), start again.
restart() {
  local n="$1" pid="${PIDS[$1]}" i t0=$SECONDS
  kill -TERM "$pid"
  for i in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "replica $n still running 15 s after SIGTERM" >&2
    exit 1
  fi
  wait "$pid" || { echo "replica $n exited with status $?" >&2; exit 1; }
  forget_pid "$pid"
  start_replica "$n"
  wait_haproxy "$n" UP
  echo "  replica $n restarted: pid $pid -> ${PIDS[$n]}, back in HAProxy after $((SECONDS - t0)) s"
}

# reload N: SIGHUP; the same process must still run and be ready.
reload() {
  local n="$1" pid="${PIDS[$1]}" i
  kill -HUP "$pid"
  for i in $(seq 50); do
    [[ "$(curl -s -m 1 --haproxy-protocol -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(replica_port "$n")/readyz")" == 200 ]] && break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null || { echo "replica $n died on SIGHUP" >&2; exit 1; }
  wait_haproxy "$n" UP
  echo "  replica $n reloaded: pid $pid still serving"
}

# code URL [CURL ARGS...]: the status code curl gets, 000 if none.
code() {
  local url="$1"
  shift
  curl -s -m 2 -o /dev/null -w '%{http_code}' "$@" "$url" || true
}

# as_haproxy PORT CLIENT PATH: the status line a replica answers to a
# connection from HAProxy's address whose PROXY header names CLIENT.
as_haproxy() {
  local line
  exec 3<>"/dev/tcp/127.0.0.1/$1"
  printf 'PROXY TCP4 %s 127.0.0.1 40000 %s\r\nGET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' \
    "$2" "$1" "$3" >&3
  IFS= read -r -t 2 line <&3 || true
  exec 3<&-
  echo "${line%$'\r'}"
}

# /status is no one's from outside: HAProxy's public port refuses it for a
# client on another address, a replica refuses it for an outside client
# HAProxy names, and its own host gets it; pages pass.
check_status_closed() {
  local front="http://127.0.0.1:$PORT" replica path got
  replica=$(replica_port 1)
  for path in /status /status/dashboard '/status?format=prometheus' '/status?stream=1'; do
    got=$(code "$front$path" --interface 127.0.0.2)
    [[ "$got" == 403 ]] || { echo "$path from 127.0.0.2 through HAProxy: $got, not 403" >&2; exit 1; }
  done
  got=$(code "$front/small.txt" --interface 127.0.0.2)
  [[ "$got" == 200 ]] || { echo "/small.txt through HAProxy: $got, not 200" >&2; exit 1; }
  got=$(as_haproxy "$replica" 203.0.113.9 /status)
  [[ "$got" == "HTTP/1.1 403 "* ]] || { echo "a replica's /status for 203.0.113.9: $got" >&2; exit 1; }
  got=$(code "http://127.0.0.1:$replica/status")
  [[ "$got" == 000 ]] || { echo "a replica without the PROXY header: $got, not closed" >&2; exit 1; }
  got=$(code "http://127.0.0.1:$replica/status" --haproxy-protocol)
  [[ "$got" == 200 ]] || { echo "a replica's /status for its own host: $got" >&2; exit 1; }
  echo "/status from outside: refused (403 through HAProxy from 127.0.0.2, 403 from a replica for 203.0.113.9, closed without the PROXY header); pages served"
}

for n in "${REPLICAS[@]}"; do start_replica "$n"; done
port_free "$PORT"
port_free "$STATS_PORT"
CONVEYOR_FRONT="127.0.0.1:$PORT" CONVEYOR_STATS="127.0.0.1:$STATS_PORT" \
  CONVEYOR_REPLICA1="127.0.0.1:$(replica_port 1)" \
  CONVEYOR_REPLICA2="127.0.0.1:$(replica_port 2)" \
  CONVEYOR_REPLICA3="127.0.0.1:$(replica_port 3)" \
  haproxy -db -f "$REPO/deploy/haproxy.cfg" > "$WORK/haproxy.log" 2>&1 &
STARTED_PIDS+=("$!")
wait_listening "$!" "$PORT" || { cat "$WORK/haproxy.log" >&2; exit 1; }
for n in "${REPLICAS[@]}"; do wait_haproxy "$n" UP; done
check_status_closed
echo "3 replicas (127.0.0.1:$((PORT + 1))-$((PORT + 3))) behind HAProxy on 127.0.0.1:$PORT; stats http://127.0.0.1:$STATS_PORT/stats"

echo "load: wrk -t1 -c$CONNS -d${DURATION}s http://127.0.0.1:$PORT/small.txt"
timeout $((DURATION + 30)) wrk -t1 -c"$CONNS" -d"${DURATION}s" \
  "http://127.0.0.1:$PORT/small.txt" > "$WORK/wrk.txt" 2>&1 &
WRK=$!
STARTED_PIDS+=("$WRK")
sleep 2
t0=$SECONDS
echo "rolling restart, one replica at a time:"
for n in "${REPLICAS[@]}"; do restart "$n"; done
if "$CONVEYOR" --help | grep -qiE 'SIGHUP|reload'; then
  echo "hot reload (SIGHUP), one replica at a time:"
  for n in "${REPLICAS[@]}"; do reload "$n"; done
else
  echo "hot reload: skipped, this build does not reload on SIGHUP (conveyor --help does not mention it)"
fi
took=$((SECONDS - t0))
wait "$WRK" || true
forget_pid "$WRK"
if (( took + 2 > DURATION )); then
  echo "warning: the restarts took $took s, longer than the load (DURATION=$DURATION): raise DURATION" >&2
fi

out="$(cat "$WORK/wrk.txt")"
served=$(awk '/requests in/ { print $1 }' <<< "$out")
non2xx=$(awk -F': ' '/Non-2xx or 3xx responses/ { print $2 }' <<< "$out")
socket=$(awk '/Socket errors/ { gsub(/[^0-9 ]/, ""); s = 0; for (i = 1; i <= NF; i++) s += $i; print s }' <<< "$out")
[[ -n "$served" ]] || { echo "wrk gave no result:" >&2; echo "$out" >&2; exit 1; }
failed=$(( ${non2xx:-0} + ${socket:-0} ))
echo
echo "$out" | sed 's/^/  wrk: /'
echo "HAProxy: $(stat wretr conveyor BACKEND) retries, $(stat wredis conveyor BACKEND) redispatches," \
  "$(stat econ conveyor BACKEND) connection errors, $(stat eresp conveyor BACKEND) response errors," \
  "$(stat hrsp_5xx www FRONTEND) 5xx answered to clients"
echo
echo "requests served: $served; failed: $failed (non-2xx/3xx ${non2xx:-0}, socket errors ${socket:-0})"
(( failed == 0 ))
