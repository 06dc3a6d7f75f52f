#!/usr/bin/env bash
# Connection pressure (docs/pressure.md): keep-alive throughput
# and tail latency while 10,000 idle keep-alive connections and a 1,000-
# connection slowloris are held against the server, Conveyor (default config,
# one worker) and, if installed, nginx (one worker, as in lib.sh).
#
#   flock /tmp/bench.lock scripts/pressure.sh
#   DURATION=5 IDLE_N=2000 SLOW_N=200 scripts/pressure.sh     # a quick look
#
# For each server: start it, open IDLE_N keep-alive connections that each GET
# /small.txt and then stay idle (scripts/idle_client.py, which reopens any
# the server closes, so the pressure holds), start `slowhttptest -H` with
# SLOW_N connections that trickle header lines every 10 s, wait until both
# are held, then run `wrk -c CONNS` keep-alive on /small.txt for DURATION
# seconds and report req/s, p99, wrk's errors and timeouts, non-2xx answers,
# the server's CPU time per request, and how many connections were held.
# Every process started here is stopped by its PID; all runs are bounded.
#
# Needs: wrk, python3, slowhttptest. Environment: IDLE_N=10000, SLOW_N=1000,
# CONNS=64, DURATION=10, PORT=18300 (nginx PORT+1), SERVERS, BUILD=1,
# CLIENT_CPU=1 (wrk is pinned there when taskset exists; "" = not pinned).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IDLE_N="${IDLE_N:-10000}"
SLOW_N="${SLOW_N:-1000}"
CONNS="${CONNS:-64}"
DURATION="${DURATION:-10}"
PORT="${PORT:-18300}"
CLIENT_CPU="${CLIENT_CPU-1}"
for tool in wrk python3 slowhttptest ss; do
  have "$tool" || { echo "pressure.sh needs $tool" >&2; exit 1; }
done
ulimit -n "$(ulimit -Hn)"
if (( IDLE_N + SLOW_N + 500 > $(ulimit -n) )); then
  echo "IDLE_N=$IDLE_N + SLOW_N=$SLOW_N need more descriptors than the limit $(ulimit -n)" >&2
  exit 1
fi
PIN=()
if [[ -n "$CLIENT_CPU" ]] && have taskset; then PIN=(taskset -c "$CLIENT_CPU"); fi
HOLD=$((DURATION + 40))   # the held load outlives the wrk run

# established PORT: server-side sockets of established connections on PORT.
established() { ss -tnH state established "( sport = :$1 )" | wc -l; }

# cpu_ticks PID: user+system clock ticks of PID and its child processes.
cpu_ticks() {
  local total=0 pid t
  for pid in "$1" $(cat "/proc/$1/task/"*/children 2>/dev/null); do
    t=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
    total=$((total + ${t:-0}))
  done
  echo "$total"
}

build
make_docroot
pick_servers
NGINX_EXTRA="keepalive_timeout 65;"   # as the comparison harness runs it

declare -A ROW RPS P99
port="$PORT"
for server in "${PICKED[@]}"; do
  start_server "$server" "$port"
  ready="$WORK/$server.ready"
  python3 "$REPO/scripts/idle_client.py" 127.0.0.1 "$port" "$IDLE_N" /small.txt "$ready" "$HOLD" \
    > "$WORK/$server.idle" 2>&1 &
  idle_pid=$!
  STARTED_PIDS+=("$idle_pid")
  for _ in $(seq 900); do
    [[ -s "$ready" ]] && break
    kill -0 "$idle_pid" 2>/dev/null || break
    sleep 0.1
  done
  [[ -s "$ready" ]] || { echo "$server: $IDLE_N idle connections not held" >&2; cat "$WORK/$server.idle" >&2; exit 1; }
  slowhttptest -H -c "$SLOW_N" -r 500 -i 10 -l "$HOLD" -p 3 \
    -u "http://127.0.0.1:$port/small.txt" > "$WORK/$server.slow" 2>&1 &
  slow_pid=$!
  STARTED_PIDS+=("$slow_pid")
  want=$((IDLE_N + SLOW_N * 9 / 10))
  for _ in $(seq 300); do
    (( $(established "$port") >= want )) && break
    sleep 0.1
  done
  before=$(established "$port")
  (( before >= want )) || echo "$server: only $before connections held (wanted $want)" >&2
  ticks=$(cpu_ticks "$SERVER_PID")
  "${PIN[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency --timeout 2s \
    "http://127.0.0.1:$port/small.txt" > "$WORK/$server.wrk" 2>&1 || true
  ticks=$(( $(cpu_ticks "$SERVER_PID") - ticks ))
  after=$(established "$port")
  cat "$WORK/$server.wrk" >&2
  read -r rps p99 requests errors non2xx < <(awk '
    /Requests\/sec:/ { rps = $2 }
    $1 == "99%" { p99 = $2 }
    / requests in / { requests = $1 }
    /Socket errors:/ { gsub(",", ""); errors = "connect " $4 ", read " $6 ", write " $8 ", timeout " $10 }
    /Non-2xx/ { non2xx = $NF }
    END {
      if (errors == "") errors = "none"
      gsub(" ", "_", errors)
      print rps, p99, requests, errors, (non2xx == "" ? 0 : non2xx)
    }' "$WORK/$server.wrk")
  hz=$(getconf CLK_TCK)
  cpu_us=$(awk -v t="$ticks" -v hz="$hz" -v n="$requests" 'BEGIN { if (n > 0) printf "%.1f", t * 1e6 / hz / n; else print "-" }')
  stop_pid "$slow_pid"
  stop_pid "$idle_pid"
  echo "$server idle client: $(tail -n 1 "$WORK/$server.idle")" >&2
  stop_pid "$SERVER_PID"
  RPS[$server]="$rps"
  P99[$server]="$p99"
  ROW[$server]="| $server | $rps | $p99 | ${errors//_/ } | $non2xx | $cpu_us | $before / $after |"
  port=$((port + 1))
done

echo
echo "$(date -u +%Y-%m-%d), $(uname -n), $(nproc) CPUs, kernel $(uname -r); 1 worker each;"
echo "held: $IDLE_N idle keep-alive + $SLOW_N slowloris (slowhttptest -H -i 10); wrk -t1 -c$CONNS -d${DURATION}s keep-alive /small.txt"
echo
echo "| server | req/s | p99 | wrk socket errors | non-2xx | server CPU µs/req | connections held before / after |"
echo "|---|---:|---:|---|---:|---:|---|"
for server in "${PICKED[@]}"; do echo "${ROW[$server]}"; done
if [[ -n "${RPS[conveyor]:-}" && -n "${RPS[nginx]:-}" ]]; then
  to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) printf "%.4f", v / 1000; else if (v ~ /ms$/) printf "%.4f", v + 0; else printf "%.4f", v * 1000 }'; }
  awk -v a="${RPS[conveyor]}" -v b="${RPS[nginx]}" -v pa="$(to_ms "${P99[conveyor]}")" -v pb="$(to_ms "${P99[nginx]}")" \
    'BEGIN { printf "\nconveyor / nginx: req/s %.2fx, p99 %.2fx\n", a / b, pa / pb }'
fi
