# Shared by compare.sh and idle.sh: build, a temp docroot, and servers on
# 127.0.0.1 that are stopped by PID on exit. Source it; do not run it.
#
# Everything is written under $WORK (a fresh `mktemp -d`, removed on exit)
# except the release build, which cargo puts in target/ as usual.

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONVEYOR="${CONVEYOR:-$REPO/target/release/conveyor}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/conveyor-bench.XXXXXX")"
STARTED_PIDS=()   # only these are ever signalled

cleanup() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do stop_pid "$pid"; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# stop_pid PID: SIGTERM, up to 5 s to exit, then SIGKILL. Only for our own PIDs.
stop_pid() {
  local pid="$1" i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"
}

# forget_pid PID: once reaped, a PID may be reused by someone else's process;
# drop it so that cleanup never signals it.
forget_pid() {
  local keep=() p
  for p in "${STARTED_PIDS[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
  STARTED_PIDS=("${keep[@]}")
}

have() { command -v "$1" >/dev/null 2>&1; }

build() {
  if [[ "${BUILD:-1}" == 1 ]]; then
    echo "building: cargo build --release" >&2
    (cd "$REPO" && cargo build --release --quiet)
  fi
  [[ -x "$CONVEYOR" ]] || { echo "no $CONVEYOR (run cargo build --release)" >&2; exit 1; }
}

# A deterministic docroot: small.txt (128 B), 1k.txt (1 KiB), 64k.txt (64 KiB).
make_docroot() {
  DOCROOT="$WORK/www"
  mkdir -p "$DOCROOT"
  chmod 755 "$WORK" "$DOCROOT"   # nginx started as root reads as its worker user
  local size
  for size in 128:small 1024:1k 65536:64k; do
    awk -v n="${size%%:*}" 'BEGIN {
      line = "Conveyor benchmark file, the same bytes on every run.\n"
      while (length(out) < n) out = out line
      printf "%s", substr(out, 1, n)
    }' > "$DOCROOT/${size##*:}.txt"
  done
}

# listening PORT: true when something accepts connections on 127.0.0.1:PORT.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_listening PID PORT: until PORT accepts, PID still alive, at most 10 s.
wait_listening() {
  local pid="$1" port="$2" i
  for i in $(seq 100); do
    listening "$port" && return 0
    kill -0 "$pid" 2>/dev/null || { echo "server exited before listening on $port" >&2; return 1; }
    sleep 0.1
  done
  echo "nothing listening on 127.0.0.1:$port after 10 s" >&2
  return 1
}

port_free() {
  if listening "$1"; then
    echo "127.0.0.1:$1 is already in use; choose another with PORT=..." >&2
    exit 1
  fi
}

# start_conveyor PORT: one worker, the repository's default config (or
# $CONVEYOR_CONFIG), plus $CONVEYOR_ARGS. Sets SERVER_PID.
start_conveyor() {
  local port="$1"
  port_free "$port"
  "$CONVEYOR" "$DOCROOT" --config "${CONVEYOR_CONFIG:-$REPO/config/conveyor.toml}" --workers 1 \
    --listen "127.0.0.1:$port" ${CONVEYOR_ARGS:-} > "$WORK/conveyor.log" 2>&1 &
  SERVER_PID=$!
  STARTED_PIDS+=("$SERVER_PID")
  wait_listening "$SERVER_PID" "$port" || { cat "$WORK/conveyor.log" >&2; exit 1; }
}

# start_nginx PORT: one worker process, same root, access_log off, everything
# (pid, logs, temp files) under $WORK. Sets SERVER_PID (the master; it stops
# its worker when it gets SIGTERM). $NGINX_EXTRA is added to the http block;
# $NGINX_NOFILE sets worker_rlimit_nofile (20000).
start_nginx() {
  local port="$1" dir="$WORK/nginx" mime=""
  port_free "$port"
  mkdir -p "$dir"
  [[ -r /etc/nginx/mime.types ]] && mime="include /etc/nginx/mime.types;"
  cat > "$dir/nginx.conf" <<CONF
worker_processes 1;
worker_rlimit_nofile ${NGINX_NOFILE:-20000};
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 16384; }
http {
    $mime
    default_type application/octet-stream;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    access_log off;
    log_not_found off;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    open_file_cache max=1000 inactive=60s;
    keepalive_requests 100000;
    ${NGINX_EXTRA:-}
    server {
        listen 127.0.0.1:$port backlog=4096;
        root $DOCROOT;
    }
}
CONF
  nginx -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" > "$dir/stdout.log" 2>&1 &
  SERVER_PID=$!
  STARTED_PIDS+=("$SERVER_PID")
  wait_listening "$SERVER_PID" "$port" || { cat "$dir/error.log" "$dir/stdout.log" >&2; exit 1; }
}

# start_server NAME PORT, then one GET per file: 200 and the right length, or stop.
start_server() {
  "start_$1" "$2"
  have curl || return 0
  local file got want
  for file in "$DOCROOT"/*; do
    want="200 $(stat -c %s "$file")"
    got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "http://127.0.0.1:$2/${file##*/}" || true)
    if [[ "$got" != "$want" ]]; then
      echo "$1 answered /${file##*/} with \"$got\", expected \"$want\"" >&2
      exit 1
    fi
  done
}

# The servers to run: conveyor always, nginx when installed (or SERVERS="...").
pick_servers() {
  if [[ -n "${SERVERS:-}" ]]; then
    read -r -a PICKED <<< "$SERVERS"
  else
    PICKED=(conveyor)
    if have nginx; then PICKED+=(nginx); else echo "nginx not installed: Conveyor only" >&2; fi
  fi
}
