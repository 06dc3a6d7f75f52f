#!/usr/bin/env python3
"""Client side of scripts/reliability.sh: hostile and faulty clients.

Every subcommand talks only to 127.0.0.1:PORT, is bounded in count and
time, and prints one line: the cell for RELIABILITY.md (prefixed "OK " or
"FAIL "). It never signals a process except `sigterm`, which is given the
PID of a server the calling script started.

    reliability.py pressure PORT WRK_SECONDS          (row 1)
    reliability.py sigterm PORT PID ECHO(0|1) SIG      (row 2)
    reliability.py fds PORT PID LOGFILE                (row 3)
    reliability.py hostile PORT PID ECHO(0|1)          (row 4)
    reliability.py limits PORT LINE HDR COUNT BODY     (row 5)
    reliability.py memory PORT PID N ECHO(0|1)         (row 7)
    reliability.py fuzz PORT PID CASES SEED            (row 8)
"""

import json
import os
import random
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time

HOST = "127.0.0.1"
BIG = 16 * 1024 * 1024


def connect(port, timeout=5.0):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_response(s, head_only=False):
    """Read one response on s. Returns (status, headers, body_len, complete)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return (None, {}, 0, False)
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if head_only:
        return (status, headers, 0, True)
    if "content-length" in headers:
        want = int(headers["content-length"])
        got = len(rest)
        while got < want:
            chunk = s.recv(min(1 << 20, want - got))
            if not chunk:
                return (status, headers, got, False)
            got += len(chunk)
        return (status, headers, got, True)
    if headers.get("transfer-encoding", "").lower() == "chunked":
        data = rest
        total = 0
        while True:
            while b"\r\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    return (status, headers, total, False)
                data += chunk
            line, data = data.split(b"\r\n", 1)
            size = int(line.split(b";")[0], 16)
            while len(data) < size + 2:
                chunk = s.recv(1 << 20)
                if not chunk:
                    return (status, headers, total, False)
                data += chunk
            total += size
            data = data[size + 2:]
            if size == 0:
                return (status, headers, total, True)
    # No framing: until close.
    got = len(rest)
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return (status, headers, got, True)
        got += len(chunk)


def get(port, path="/small.txt", timeout=5.0):
    """One GET on a new connection: the status, or None."""
    try:
        with connect(port, timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            status, _, _, ok = read_response(s)
            return status if ok else None
    except OSError:
        return None


def panics(port):
    """Green-thread panics counted by /status, or None if it is not served."""
    try:
        with connect(port) as s:
            s.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            buf = b""
            while True:
                c = s.recv(65536)
                if not c:
                    break
                buf += c
        head, body = buf.split(b"\r\n\r\n", 1)
        if b" 200 " not in head.split(b"\r\n")[0]:
            return None
        doc = json.loads(body)
        return sum(w["panicked"] for w in doc["scheduler"])
    except (OSError, ValueError, KeyError):
        return None


def status_doc(port):
    with connect(port) as s:
        s.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        buf = b""
        while True:
            c = s.recv(65536)
            if not c:
                break
            buf += c
    return json.loads(buf.split(b"\r\n\r\n", 1)[1])


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)


def panic_cell(port):
    p = panics(port)
    return "n/a" if p is None else str(p)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


# ---------------------------------------------------------------- row 1


def pressure(port, seconds):
    """1,000 slowloris + 10,000 idle keep-alive connections, then wrk."""
    sel = selectors.DefaultSelector()
    idle = []
    failed_idle = 0
    req = b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n"
    # Idle keep-alive: one request answered, then nothing. In batches of 500.
    for batch in range(20):
        socks = []
        for _ in range(500):
            try:
                s = socket.create_connection((HOST, port), timeout=10)
                s.sendall(req)
                socks.append(s)
            except OSError:
                failed_idle += 1
        for s in socks:
            try:
                status, _, _, ok = read_response(s)
                if status == 200 and ok:
                    idle.append(s)
                else:
                    failed_idle += 1
                    s.close()
            except OSError:
                failed_idle += 1
                s.close()
    # Slowloris: a partial preamble, one more header line every 2 s, reconnect when dropped.
    slow = []
    slow_reconnects = 0

    def open_slow():
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((HOST, port))
        return s

    for _ in range(1000):
        slow.append([open_slow(), 0])
    time.sleep(0.3)
    for entry in slow:
        try:
            entry[0].send(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n")
        except OSError:
            pass
    stop = threading.Event()

    def drip():
        nonlocal slow_reconnects
        n = 0
        while not stop.wait(2.0):
            n += 1
            for entry in slow:
                try:
                    entry[0].send(f"X-Slow-{n}: a\r\n".encode())
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    entry[0].close()
                    entry[0] = open_slow()
                    slow_reconnects += 1

    t = threading.Thread(target=drip, daemon=True)
    t.start()
    time.sleep(1.0)
    out = subprocess.run(
        ["timeout", str(seconds + 30), "wrk", "-t1", "-c64", f"-d{seconds}s", "--latency",
         f"http://127.0.0.1:{port}/small.txt"],
        capture_output=True, text=True).stdout
    stop.set()
    t.join()
    # Still-open idle connections answer a request?
    still = 0
    for s in idle[:200]:
        try:
            s.settimeout(5)
            s.sendall(req)
            status, _, _, ok = read_response(s)
            still += int(status == 200 and ok)
        except OSError:
            pass
    for s in idle:
        s.close()
    for e in slow:
        e[0].close()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"\s99%\s+(\S+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    e = [int(x) for x in errs.groups()] if errs else [0, 0, 0, 0]
    bad = sum(e[:3]) + (int(non2xx.group(1)) if non2xx else 0)
    ok = rps is not None and bad == 0 and e[3] == 0 and failed_idle == 0
    print(f"{'OK' if ok else 'FAIL'} {float(rps.group(1)) if rps else 0:,.0f} req/s, "
          f"p99 {p99.group(1) if p99 else '?'}, errors {bad}, timeouts {e[3]}; "
          f"idle opened {len(idle)}/10000, {still}/200 of them still answer after; "
          f"slowloris reconnects {slow_reconnects}")


# ---------------------------------------------------------------- row 2


def sigterm(port, pid, echo, sig):
    """Small files, 16 MiB downloads and /echo uploads in flight, then a signal."""
    results = {"small_ok": 0, "small_trunc": 0, "small_refused": 0,
               "big_ok": 0, "big_trunc": 0, "big_refused": 0,
               "echo_ok": 0, "echo_trunc": 0, "echo_refused": 0}
    lock = threading.Lock()
    signalled = threading.Event()

    def count(key):
        with lock:
            results[key] += 1

    def small_loop():
        while True:
            try:
                s = connect(port)
            except OSError:
                return
            try:
                while True:
                    try:
                        s.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                        status, h, _, ok = read_response(s)
                    except OSError:
                        status, ok = None, False
                    if status is None:
                        if not signalled.is_set():
                            count("small_refused")  # before the signal: a real failure
                            count("small_trunc")
                        break  # closed between requests: not a response
                    count("small_ok" if ok else "small_trunc")
                    if not ok or h.get("connection") == "close":
                        break
            finally:
                s.close()
            if signalled.is_set():
                return

    def big_once():
        try:
            s = connect(port, timeout=30)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
            s.sendall(b"GET /16m.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        except OSError:
            count("big_refused")
            return
        # Read at ~8 MiB/s so it is in flight when the signal comes.
        got, want, start = 0, None, time.time()
        buf = b""
        try:
            while want is None:
                c = s.recv(65536)
                if not c:
                    break
                buf += c
                if b"\r\n\r\n" in buf:
                    head, rest = buf.split(b"\r\n\r\n", 1)
                    want = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
                    got = len(rest)
            while want is not None and got < want:
                c = s.recv(65536)
                if not c:
                    break
                got += len(c)
                ahead = got / (8 << 20) - (time.time() - start)
                if ahead > 0:
                    time.sleep(ahead)
        except OSError:
            pass
        s.close()
        count("big_ok" if want is not None and got == want else "big_trunc")

    def echo_once():
        size = 8 << 20
        try:
            s = connect(port, timeout=30)
            s.sendall(f"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                      f"Content-Length: {size}\r\n\r\n".encode())
        except OSError:
            count("echo_refused")
            return
        res = {}

        def reader():
            try:
                res["r"] = read_response(s)
            except OSError:
                res["r"] = (None, {}, 0, False)

        t = threading.Thread(target=reader)
        t.start()
        chunk = b"e" * 65536
        sent, start = 0, time.time()
        try:
            while sent < size:  # ~8 MiB/s: about 1 s of upload
                s.sendall(chunk)
                sent += len(chunk)
                ahead = sent / (8 << 20) - (time.time() - start)
                if ahead > 0:
                    time.sleep(ahead)
        except OSError:
            pass
        t.join(30)
        s.close()
        status, _, got, ok = res.get("r", (None, {}, 0, False))
        count("echo_ok" if status == 200 and ok and got == size else "echo_trunc")

    threads = [threading.Thread(target=small_loop) for _ in range(8)]
    threads += [threading.Thread(target=big_once) for _ in range(4)]
    if echo:
        threads += [threading.Thread(target=echo_once) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.7)
    signalled.set()
    t0 = time.time()
    os.kill(pid, sig)
    while alive(pid) and time.time() - t0 < 30:
        time.sleep(0.01)
    exit_s = time.time() - t0
    for t in threads:
        t.join(60)
    r = results
    trunc = r["small_trunc"] + r["big_trunc"] + r["echo_trunc"]
    ok = trunc == 0
    echo_part = (f", echo {r['echo_ok']} whole / {r['echo_trunc']} truncated" if echo
                 else ", no /echo")
    print(f"{'OK' if ok else 'FAIL'} truncated {trunc}: small {r['small_ok']} whole / "
          f"{r['small_trunc']} truncated, 16 MiB {r['big_ok']} whole / {r['big_trunc']} "
          f"truncated{echo_part}; exited {exit_s:.2f} s after the signal")


# ---------------------------------------------------------------- row 3


def fds(port, pid, logfile):
    """The server at RLIMIT_NOFILE 256 (set by the caller): 400 connections."""
    before_lines = sum(1 for _ in open(logfile, errors="replace"))
    socks = []
    for _ in range(400):
        try:
            s = socket.create_connection((HOST, port), timeout=5)
            s.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n")  # partial: held open
            socks.append(s)
        except OSError:
            pass
    time.sleep(1.0)
    t0 = cpu_ticks(pid)
    time.sleep(2.0)
    ticks = cpu_ticks(pid) - t0
    hz = os.sysconf("SC_CLK_TCK")
    cpu_pct = 100.0 * ticks / hz / 2.0
    # A new request now must wait (no descriptor); it should not error out.
    for s in socks:
        s.close()
    time.sleep(0.5)
    served = [get(port) for _ in range(20)]
    recovered = all(x == 200 for x in served)
    time.sleep(0.3)
    lines = sum(1 for _ in open(logfile, errors="replace")) - before_lines
    ok = recovered and cpu_pct < 5
    print(f"{'OK' if ok else 'FAIL'} {len(socks)}/400 connected; CPU out of descriptors "
          f"{cpu_pct:.1f} % ({ticks} ticks in 2 s); serves again: "
          f"{'yes' if recovered else 'no'} ({served.count(200)}/20); log lines {lines}")


# ---------------------------------------------------------------- row 4


def hostile(port, pid, echo):
    notes = []
    healthy = True

    def after(name):
        nonlocal healthy
        st = get(port)
        if st != 200:
            healthy = False
            notes.append(f"{name}: next GET {st}")

    # a) reset mid-response (RST after 64 KiB of 16 MiB), 20 times.
    for _ in range(20):
        s = connect(port)
        s.sendall(b"GET /16m.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        got = 0
        while got < 65536:
            c = s.recv(65536)
            if not c:
                break
            got += len(c)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    after("reset")
    # b) half-close: request then SHUT_WR; the whole response must still come.
    s = connect(port)
    s.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    s.shutdown(socket.SHUT_WR)
    status, _, _, ok = read_response(s)
    s.close()
    half = status == 200 and ok
    if not half:
        notes.append(f"half-close got {status}")
    after("half-close")
    # c) never read: 16 MiB requested, nothing read; the server should drop it
    #    after the write timeout (the caller configures a short one).
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.connect((HOST, port))
    s.sendall(b"GET /16m.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    t0 = time.time()
    dropped_at = None
    while time.time() - t0 < 8:
        time.sleep(0.25)
        try:
            info = os.popen(f"ss -tnH state all '( sport = :{port} )' 2>/dev/null").read()
        except OSError:
            info = ""
        # The server side of our connection (dport = our local port) gone or closing?
        lport = s.getsockname()[1]
        rows = [line for line in info.splitlines() if f":{lport}" in line.split()[-1]]
        if not rows or not any(r.startswith("ESTAB") for r in rows):
            dropped_at = time.time() - t0
            break
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()
    never = f"dropped after {dropped_at:.1f} s" if dropped_at is not None else "still open after 8 s"
    after("never-read")
    # d) 10,000 pipelined requests in one write, responses parsed from one buffer.
    s = connect(port, timeout=20)
    s.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n" * 10000)
    answered = 0
    buf = b""
    try:
        while answered < 10000:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                head = buf[:end]
                m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                need = end + 4 + (int(m.group(1)) if m else 0)
                if len(buf) >= need:
                    if not head.startswith(b"HTTP/1.1 200 "):
                        break
                    answered += 1
                    buf = buf[need:]
                    continue
            c = s.recv(1 << 20)
            if not c:
                break
            buf += c
    except OSError:
        pass
    s.close()
    after("pipeline")
    p = panic_cell(port)
    ok = healthy and half and alive(pid) and p in ("0", "n/a")
    print(f"{'OK' if ok else 'FAIL'} healthy after each: {'yes' if healthy else 'no'}; "
          f"reset x20 ok; half-close answered: {'yes' if half else 'no'}; never-read {never}; "
          f"pipelined 10,000 in one write: {answered} answered; panics {p}"
          + (f"; {'; '.join(notes)}" if notes else ""))


# ---------------------------------------------------------------- row 5


def raw(port, data, timeout=5.0):
    try:
        with connect(port, timeout) as s:
            s.sendall(data)
            status, _, _, _ = read_response(s, head_only=True)
            return status
    except OSError as e:
        return f"error {e.__class__.__name__}"


def limits(port, line, hdr, count, body):
    res = []
    # Request line (without CRLF) of exactly `line` bytes, then line + 1.
    for n in (line, line + 1):
        base = "GET /small.txt? HTTP/1.1"
        q = "a" * (n - len(base))
        rl = f"GET /small.txt?{q} HTTP/1.1"
        assert len(rl) == n
        res.append(("request line", n, raw(port, f"{rl}\r\nHost: x\r\nConnection: close\r\n\r\n".encode())))
    # Whole preamble of exactly line + hdr bytes (the documented budget), then + 1.
    for n in (line + hdr, line + hdr + 1):
        pre = "GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: "
        pad = n - len(pre) - 4
        res.append(("header bytes", n, raw(port, (pre + "p" * pad + "\r\n\r\n").encode())))
    # Header count: `count` fields, then count + 1.
    for n in (count, count + 1):
        fields = ["Host: x", "Connection: close"] + [f"X-H{i}: v" for i in range(n - 2)]
        res.append(("header count", n, raw(port, ("GET /small.txt HTTP/1.1\r\n" + "\r\n".join(fields) + "\r\n\r\n").encode())))
    # /echo body of `body` bytes, then body + 1.
    for n in (body, body + 1):
        res.append(("echo body", n, raw(port, f"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {n}\r\n\r\n".encode() + b"b" * n)))
    cells = []
    ok = True
    for i in range(0, len(res), 2):
        (name, n0, s0), (_, n1, s1) = res[i], res[i + 1]
        cells.append(f"{name} {n0}: {s0}, {n1}: {s1}")
        ok = ok and s0 == 200 and isinstance(s1, int) and s1 >= 400
    print(f"{'OK' if ok else 'FAIL'} " + "; ".join(cells))


# ---------------------------------------------------------------- row 7


def run_load(port, n):
    """Exactly n keep-alive GETs with `conveyor bench -n` (32 connections)."""
    out = subprocess.run(
        ["timeout", "300", os.environ["CONVEYOR"], "bench", f"http://127.0.0.1:{port}/small.txt",
         "-c", "32", "-n", str(n), "--threads", "1", "--json"],
        capture_output=True, text=True).stdout
    m = re.search(r'"requests":(\d+)', out) or re.search(r'"completed":(\d+)', out)
    return int(m.group(1)) if m else 0, out


def memory(port, pid, n, echo):
    r0 = rss_kib(pid)
    a, _ = run_load(port, n // 10)
    r1 = rss_kib(pid)
    more, _ = run_load(port, n - n // 10)
    b = a + more
    r2 = rss_kib(pid)
    flat = (r2 - r1) <= 1024
    part = (f"RSS {r0} KiB at start, {r1} KiB after {a:,} requests, {r2} KiB after {b:,} "
            f"(+{r2 - r1} KiB)")
    ok = flat
    if echo:
        size = 1 << 30
        e0 = rss_kib(pid)
        s = connect(port, timeout=60)
        s.sendall(f"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  f"Content-Length: {size}\r\n\r\n".encode())
        res = {}

        def reader():
            try:
                res["r"] = read_response(s)
            except OSError as err:
                res["r"] = (None, {}, 0, str(err))

        t = threading.Thread(target=reader)
        t.start()
        chunk = bytes(range(256)) * 4096  # 1 MiB, generated, never stored whole
        peak = e0
        for i in range(1024):
            s.sendall(chunk)
            if i % 64 == 0:
                peak = max(peak, rss_kib(pid))
        t.join(120)
        s.close()
        e1 = rss_kib(pid)
        status, _, got, whole = res.get("r", (None, {}, 0, False))
        grow = max(e1, peak) - e0
        eok = status == 200 and whole is True and got == size and grow < 4096
        ok = ok and eok
        part += (f"; 1 GiB /echo: {status}, {got:,} bytes back, RSS {e0} → {e1} KiB "
                 f"(peak sampled +{grow} KiB)")
    print(f"{'OK' if ok else 'FAIL'} {part}")


# ---------------------------------------------------------------- row 8

SEEDS = [
    b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, br\r\n\r\n",
    b"HEAD /1k.txt HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /64k.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=10-20,30-\r\n\r\n",
    b"GET /1k.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"abc\", W/\"def\"\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nT: v\r\n\r\n",
    b"GET /echo?x=1 HTTP/1.1\r\nHost: x\r\nX-A: b\r\n\r\n",
    b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /sub/../small.txt HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /%73mall.txt HTTP/1.0\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET http://127.0.0.1/small.txt HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
]
TOKENS = [b"\r\n", b"\n", b"\r", b" ", b"\t", b":", b";", b"\x00", b"\xff", b"%", b"%00", b"/..",
          b"HTTP/1.1", b"HTTP/9.9", b"Content-Length: 99999999999999999999\r\n",
          b"Transfer-Encoding: chunked\r\n", b"Content-Length: 3\r\n", b"ffffffffffffffff\r\n",
          b"0\r\n\r\n", b"Range: bytes=-0\r\n", b"Range: bytes=99999999999999999999-\r\n",
          b"Expect: 100-continue\r\n", b"Host: y\r\n", b"\r\n\r\n"]


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(7)
        pos = rng.randint(0, len(data))
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[pos:pos] = rng.choice(TOKENS)
        elif op == 2 and data:
            del data[pos:pos + rng.randint(1, 8)]
        elif op == 3:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 4 and data:
            a = rng.randint(0, len(data) - 1)
            data[pos:pos] = data[a:a + rng.randint(1, 32)]
        elif op == 5:
            data += rng.choice(SEEDS)  # pipelined follower
        elif op == 6:
            data[pos:pos] = b"a" * rng.choice([100, 1000, 9000, 70000])
    return bytes(data)


def fuzz(port, pid, cases, seed):
    rng_master = random.Random(seed)
    seeds = [rng_master.randrange(1 << 30) for _ in range(cases)]
    stats = {"sent": 0, "conn_errors": 0}
    lock = threading.Lock()
    idx = [0]

    def one(case_seed):
        rng = random.Random(case_seed)
        data = mutate(rng, rng.choice(SEEDS))
        try:
            s = socket.create_connection((HOST, port), timeout=2)
        except OSError:
            with lock:
                stats["conn_errors"] += 1
            return
        try:
            s.settimeout(0.5)
            # Split writes at random points.
            cuts = sorted(rng.sample(range(len(data) + 1), min(len(data) + 1, rng.randint(0, 4))))
            prev = 0
            for c in cuts + [len(data)]:
                if c > prev:
                    s.sendall(data[prev:c])
                    prev = c
            mode = rng.randrange(10)
            if mode < 3:  # close at once, maybe with RST
                if rng.random() < 0.5:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            elif mode < 8:  # half-close and read to the end
                s.shutdown(socket.SHUT_WR)
                end = time.time() + 2
                while time.time() < end:
                    if not s.recv(65536):
                        break
            else:  # read a little, then go
                try:
                    s.recv(65536)
                except OSError:
                    pass
        except OSError:
            pass
        finally:
            s.close()
        with lock:
            stats["sent"] += 1

    def worker():
        while True:
            with lock:
                if idx[0] >= len(seeds):
                    return
                cs = seeds[idx[0]]
                idx[0] += 1
            one(cs)

    t0 = time.time()
    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.time() - t0
    healthy = get(port) == 200 and alive(pid)
    p = panic_cell(port)
    ok = healthy and p in ("0", "n/a")
    print(f"{'OK' if ok else 'FAIL'} {stats['sent']:,} cases (seed {seed}) in {took:.0f} s, "
          f"{stats['conn_errors']} connect errors; panics {p}; healthy after: "
          f"{'yes' if healthy else 'no'}")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "pressure":
        pressure(int(args[0]), int(args[1]))
    elif cmd == "sigterm":
        sigterm(int(args[0]), int(args[1]), args[2] == "1", getattr(signal, args[3]))
    elif cmd == "fds":
        fds(int(args[0]), int(args[1]), args[2])
    elif cmd == "hostile":
        hostile(int(args[0]), int(args[1]), args[2] == "1")
    elif cmd == "limits":
        limits(*(int(a) for a in args))
    elif cmd == "memory":
        memory(int(args[0]), int(args[1]), int(args[2]), args[3] == "1")
    elif cmd == "fuzz":
        fuzz(int(args[0]), int(args[1]), int(args[2]), int(args[3]))
    elif cmd == "get":
        print(get(int(args[0]), args[1]))
    else:
        sys.exit(f"unknown subcommand {cmd}")


if __name__ == "__main__":
    main()
