#!/usr/bin/env bash
# Other clients' latency on one worker while 50 Basic-auth logins a second
# arrive, each a bcrypt check at cost 10 (issue 23, "Basic auth").
#
#   scripts/auth_p99.sh [BINARY]     # default target/release/conveyor
#
# Starts BINARY on a temp site (1 worker, port $PORT) whose /admin is
# guarded by an htpasswd file made with `htpasswd -B -C 10` (apache2-utils).
# Three times: `conveyor bench` on a small public file alone (open loop:
# 2,000 requests/s over 16 connections for 8 s, one client thread; latency
# counted from when each request was due), then the same while a second
# bench sends 50 logins/s to /admin with a wrong password (a guesser: never
# remembered, so each one is a full bcrypt check; the failure limit is
# raised so none is cut short by 429). Prints the p50 and p99 of each run
# and what the logins achieved. Stops the server it started, by PID.
set -euo pipefail
BIN="$(realpath "${1:-target/release/conveyor}")"
PORT="${PORT:-18391}"
DIR="$(mktemp -d)"
SERVER=""
cleanup() {
  if [[ -n "$SERVER" ]]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  rm -rf "$DIR"
}
trap cleanup EXIT

mkdir -p "$DIR/www/admin"
echo public > "$DIR/www/index.html"
echo secret > "$DIR/www/admin/secret.txt"
htpasswd -B -C 10 -c -b "$DIR/users" alice wonderland 2>/dev/null
cat > "$DIR/c.toml" <<CONF
listen = "127.0.0.1:$PORT"
root = "www"
workers = 1
[limits]
auth_failures_per_minute = 1000000
[[auth]]
path = "/admin"
htpasswd = "users"
CONF
(cd "$DIR" && exec "$BIN" --config c.toml 2>/dev/null) &
SERVER=$!
for _ in $(seq 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$PORT/index.html" && break
  sleep 0.05
done

others() {
  "$BIN" bench "http://127.0.0.1:$PORT/index.html" -c 16 --rate 2000 -d 8s --warmup 1s \
    --threads 1 2>/dev/null | grep -E "latency p50 |latency p99 " | tr -s ' |' ' '
}
# "alice:guess"
WRONG="Authorization: Basic YWxpY2U6Z3Vlc3M="
for i in 1 2 3; do
  echo "run $i (load average $(cut -d' ' -f1 /proc/loadavg))"
  echo "  alone:";       others | sed 's/^/   /'
  "$BIN" bench "http://127.0.0.1:$PORT/admin/secret.txt" -c 10 --rate 50 -d 10s --threads 1 \
    --max-errors 100 -H "$WRONG" > "$DIR/logins.txt" 2>/dev/null &
  LOGINS=$!
  sleep 0.5
  echo "  with 50 logins/s:"; others | sed 's/^/   /'
  wait "$LOGINS"
  echo "  the logins:"
  grep -E "achieved|latency p50 |latency p99 " "$DIR/logins.txt" | tr -s ' |' ' ' | sed 's/^/   /'
done
