#!/usr/bin/env bash
# Memory per idle keep-alive connection, Conveyor and (if installed) nginx.
#
#   scripts/idle.sh            # 10,000 connections
#   N=2000 scripts/idle.sh
#
# For each server: start it (1 worker, the temp docroot of compare.sh), warm
# it up, read its RSS (VmRSS of the server and its child processes), open N
# connections that each GET /small.txt and then stay open and idle, read the
# RSS again, and report (held - before) / N. Kernel socket buffers are not
# in RSS: this is the server's own user-space cost. Needs python3 (the client).
#
# TLS=1 measures idle HTTPS connections instead: each server also listens
# with TLS on its port + 100 (a throwaway P-256 certificate made with
# openssl; nginx with a session cache), and the client completes a TLS
# handshake before its GET. Needs openssl and python3's ssl module.
#
# Environment: N=10000, HOLD=3 (seconds the connections stay open after the
# measurement), SERVERS, PORT=18190, BUILD=1 (as in compare.sh), TLS=0.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N="${N:-10000}"
HOLD="${HOLD:-3}"
PORT="${PORT:-18190}"
have python3 || { echo "idle.sh needs python3 for its client" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"
if (( N + 100 > $(ulimit -n) )); then
  echo "N=$N needs more file descriptors than the limit $(ulimit -n)" >&2
  exit 1
fi

# rss_kb PID: VmRSS of PID and its children, in kB.
rss_kb() {
  local total=0 pid kb
  for pid in "$1" $(cat "/proc/$1/task/"*/children 2>/dev/null); do
    kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
    total=$((total + ${kb:-0}))
  done
  echo "$total"
}

# The client: N connections, one GET each, the whole response read, then held
# open and idle. Writes "held N" to READY_FILE, then sleeps HOLD seconds.
CLIENT='
import socket, ssl, sys, time
port, n, ready, hold, tls = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), sys.argv[5] == "1"
request = b"GET /small.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
held = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    if tls:
        s = context.wrap_socket(s)
    s.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += s.recv(4096)
    held.append(s)
open(ready, "w").write("held %d\n" % len(held))
time.sleep(hold)
'

build
make_docroot
pick_servers

TLS="${TLS:-0}"
if [[ "$TLS" == 1 ]]; then
  have openssl || { echo "TLS=1 needs openssl to make a certificate" >&2; exit 1; }
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=localhost -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
fi

declare -A PER_CONN
port="$PORT"
for server in "${PICKED[@]}"; do
  client_port="$port"
  if [[ "$TLS" == 1 ]]; then
    client_port=$((port + 100))
    CONVEYOR_ARGS="--tls-listen 127.0.0.1:$client_port --tls-cert $WORK/cert.pem --tls-key $WORK/key.pem"
    NGINX_EXTRA="server { listen 127.0.0.1:$client_port ssl; root $DOCROOT;
      ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem;
      ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m; }"
  fi
  start_server "$server" "$port"
  for _ in 1 2 3 4; do (exec 3<>"/dev/tcp/127.0.0.1/$port"; printf 'GET /small.txt HTTP/1.0\r\n\r\n' >&3; cat <&3 >/dev/null); done
  sleep 1
  before=$(rss_kb "$SERVER_PID")
  ready="$WORK/$server.ready"
  python3 -c "$CLIENT" "$client_port" "$N" "$ready" "$HOLD" "$TLS" &
  client_pid=$!
  STARTED_PIDS+=("$client_pid")
  for _ in $(seq 600); do
    [[ -s "$ready" ]] && break
    kill -0 "$client_pid" 2>/dev/null || break
    sleep 0.1
  done
  [[ -s "$ready" ]] || { echo "$server: the client did not hold $N connections" >&2; exit 1; }
  sleep 1   # let the server settle
  held=$(rss_kb "$SERVER_PID")
  wait "$client_pid" || true
  PER_CONN[$server]=$(awk -v a="$before" -v b="$held" -v n="$N" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')
  echo "$server: RSS $before kB before, $held kB with $N idle connections" >&2
  stop_pid "$SERVER_PID"
  port=$((port + 1))
done

echo
kind="keep-alive"; [[ "$TLS" == 1 ]] && kind="TLS keep-alive"
echo "$(date -u +%Y-%m-%d), $(uname -n), $(nproc) CPUs, kernel $(uname -r); $N idle $kind connections, 1 worker"
echo
echo "| server | RSS per idle $kind connection |"
echo "|---|---:|"
for server in "${PICKED[@]}"; do echo "| $server | ${PER_CONN[$server]} B |"; done
