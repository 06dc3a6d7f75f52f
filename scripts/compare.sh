#!/usr/bin/env bash
# Conveyor and nginx side by side on 127.0.0.1, one after the other.
#
#   scripts/compare.sh                 # DURATION=5 s per scenario
#   DURATION=10 CLIENT=conveyor scripts/compare.sh
#
# Builds Conveyor (release), writes a small deterministic docroot to a temp
# dir, starts Conveyor (--workers 1, config/conveyor.toml) and then nginx
# (if installed; 1 worker, same root, access_log off), runs the same load
# against each, and prints a table of requests/s. Only the processes this
# script starts are stopped, by PID, when it exits.
#
# Environment:
#   DURATION=5        seconds per scenario
#   CONNS=64          connections
#   PIPELINE=16       requests per write in the pipelined scenario
#   CLIENT=auto       wrk when installed, else `conveyor bench` (or: wrk, conveyor)
#   CLIENT_CPU=N      pin the load generator to CPU N with taskset
#                     (default: the last CPU when there are 2 or more; "" = no pinning)
#   SERVERS="conveyor nginx"   which servers to run (default: nginx only if installed)
#   PORT=18180        first port; each server gets its own (PORT, PORT+1, ...)
#   BUILD=1           0 skips `cargo build --release`
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION="${DURATION:-5}"
CONNS="${CONNS:-64}"
PIPELINE="${PIPELINE:-16}"
PORT="${PORT:-18180}"
CLIENT="${CLIENT:-auto}"
if [[ -z "${CLIENT_CPU+set}" ]]; then
  CLIENT_CPU=""
  if have taskset && (( $(nproc) > 1 )); then CLIENT_CPU=$(( $(nproc) - 1 )); fi
fi
if [[ "$CLIENT" == auto ]]; then
  if have wrk; then CLIENT=wrk; else CLIENT=conveyor; fi
fi

# name|label|path|mode (keep-alive, pipeline, close)
SCENARIOS=(
  "ka_128|keep-alive 128 B|/small.txt|keep-alive"
  "ka_1k|keep-alive 1 KiB|/1k.txt|keep-alive"
  "ka_64k|keep-alive 64 KiB|/64k.txt|keep-alive"
  "pipe|pipelined x$PIPELINE, 128 B|/small.txt|pipeline"
  "close|Connection: close, 128 B|/small.txt|close"
)

client() {
  local bound=()
  have timeout && bound=(timeout $((DURATION + 30)))
  if [[ -n "$CLIENT_CPU" ]]; then
    "${bound[@]}" taskset -c "$CLIENT_CPU" "$@"
  else
    "${bound[@]}" "$@"
  fi
}

# load URL MODE: prints "REQUESTS_PER_SEC ERRORS" for one run.
load() {
  local url="$1" mode="$2" out
  if [[ "$CLIENT" == wrk ]]; then
    local args=(-t1 "-c$CONNS" "-d${DURATION}s")
    [[ "$mode" == pipeline ]] && args+=(-s "$REPO/scripts/wrk-pipeline.lua")
    [[ "$mode" == close ]] && args+=(-H "Connection: close")
    out=$(WRK_PIPELINE="$PIPELINE" client wrk "${args[@]}" "$url" 2>&1 || true)
    echo "$out" >> "$WORK/client.log"
    awk '/^Requests\/sec:/ { rps = $2 }
         /^  Socket errors:/ { gsub(",", ""); errors += $4 + $6 + $8 + $10 }
         /^  Non-2xx or 3xx responses:/ { errors += $5 }
         END { printf "%.0f %d\n", rps, errors }' <<< "$out"
  else
    local args=(-c "$CONNS" -d "${DURATION}s" --threads 1 --json)
    [[ "$mode" == pipeline ]] && args+=(--pipeline "$PIPELINE")
    [[ "$mode" == close ]] && args+=(--close)
    out=$(client "$CONVEYOR" bench "$url" "${args[@]}" 2>&1 || true)
    echo "$out" >> "$WORK/client.log"
    local rps errors non_2xx
    rps=$(grep -o '"requests_per_sec":[0-9.]*' <<< "$out" | head -1 | cut -d: -f2)
    errors=$(grep -o '"errors":[0-9]*' <<< "$out" | head -1 | cut -d: -f2)
    non_2xx=$(grep -o '"non_2xx":[0-9]*' <<< "$out" | head -1 | cut -d: -f2)
    if [[ -n "$errors" ]]; then errors=$((errors + ${non_2xx:-0})); fi
    printf "%.0f %s\n" "${rps:-0}" "${errors:-?}"
  fi
}

commas() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<< "$1"; }

build
make_docroot
pick_servers

declare -A RESULT
port="$PORT"
for server in "${PICKED[@]}"; do
  start_server "$server" "$port"
  for scenario in "${SCENARIOS[@]}"; do
    IFS='|' read -r name label path mode <<< "$scenario"
    echo "$server: $label, $CONNS connections, ${DURATION}s ($CLIENT)" >&2
    RESULT[$server,$name]=$(load "http://127.0.0.1:$port$path" "$mode")
  done
  stop_pid "$SERVER_PID"
  port=$((port + 1))
done

# The table: requests/s, "(N err)" when the client counted errors.
echo
echo "$(date -u +%Y-%m-%d), $(uname -n), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), kernel $(uname -r)"
echo "client: $CLIENT, 1 thread${CLIENT_CPU:+ on CPU $CLIENT_CPU}, $CONNS connections, ${DURATION}s per cell; servers: 1 worker each"
echo
header="| scenario (req/s) |"; rule="|---|"
for server in "${PICKED[@]}"; do header+=" $server |"; rule+="---:|"; done
if [[ " ${PICKED[*]} " == *" conveyor "* && " ${PICKED[*]} " == *" nginx "* ]]; then
  header+=" conveyor ÷ nginx |"; rule+="---:|"
fi
echo "$header"
echo "$rule"
for scenario in "${SCENARIOS[@]}"; do
  IFS='|' read -r name label _ _ <<< "$scenario"
  row="| $label |"
  for server in "${PICKED[@]}"; do
    read -r rps errors <<< "${RESULT[$server,$name]}"
    cell=$(commas "$rps")
    [[ "$errors" != 0 ]] && cell+=" ($errors err)"
    row+=" $cell |"
  done
  if [[ "$header" == *"÷"* ]]; then
    read -r a _ <<< "${RESULT[conveyor,$name]}"
    read -r b _ <<< "${RESULT[nginx,$name]}"
    row+=" $(awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "-" }') |"
  fi
  echo "$row"
done
