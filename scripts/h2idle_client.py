#!/usr/bin/env python3
"""h2idle_client.py HOST PORT N PATH READYFILE HOLD_S [tls|h2c]

Opens N HTTP/2 connections (TLS with ALPN h2, or h2c prior knowledge), on each
sends the preface, SETTINGS, one GET PATH, reads until the response's stream ends
(acking the server's SETTINGS), then holds every connection open and idle.
Writes "held=<k> failed=<f>" to READYFILE when all are set up, holds HOLD_S
seconds, prints a summary (how many the server closed meanwhile) and exits.
"""
import os
import resource
import selectors
import socket
import ssl
import struct
import sys
import time

host, port, n, path, readyfile, hold = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                        sys.argv[4], sys.argv[5], float(sys.argv[6]))
mode = sys.argv[7] if len(sys.argv) > 7 else "tls"
BATCH = 128
SETUP_TIMEOUT = 90.0

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < n + 100:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(n + 100, hard), hard))

ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["h2"])


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def lit(index, value):  # literal without indexing, indexed name (index < 15)
    v = value.encode()
    return bytes([index]) + bytes([len(v)]) + v


block = (b"\x82" + (b"\x87" if mode == "tls" else b"\x86") + lit(4, path)
         + lit(1, f"{host}:{port}"))
HELLO = (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0)
         + frame(1, 0x5, 1, block))  # HEADERS, END_STREAM|END_HEADERS
SETTINGS_ACK = frame(4, 1, 0)

sel = selectors.DefaultSelector()
# state: [phase, buf, sock]; phase: "connect", "handshake", "sent", "done"
held, failed, started = [], 0, 0
t0 = time.time()


def start_one():
    global started, failed
    started += 1
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect((host, port))
    except BlockingIOError:
        pass
    except OSError:
        failed += 1
        s.close()
        return
    st = {"phase": "connect", "buf": b"", "sock": s}
    sel.register(s, selectors.EVENT_WRITE, st)


def fail(st):
    global failed
    failed += 1
    try:
        sel.unregister(st["sock"])
    except Exception:
        pass
    st["sock"].close()


def on_event(st):
    s = st["sock"]
    try:
        if st["phase"] == "connect":
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                return fail(st)
            if mode == "tls":
                s2 = ctx.wrap_socket(s, server_hostname="localhost", do_handshake_on_connect=False)
                st["sock"] = s2
                sel.unregister(s)
                sel.register(s2, selectors.EVENT_READ | selectors.EVENT_WRITE, st)
                st["phase"] = "handshake"
                s = s2
            else:
                s.sendall(HELLO)
                st["phase"] = "sent"
                sel.modify(s, selectors.EVENT_READ, st)
                return
        if st["phase"] == "handshake":
            try:
                s.do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            if s.selected_alpn_protocol() != "h2":
                return fail(st)
            s.sendall(HELLO)
            st["phase"] = "sent"
            sel.modify(s, selectors.EVENT_READ, st)
            return
        if st["phase"] == "sent":
            try:
                data = s.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                return
            if not data:
                return fail(st)
            st["buf"] += data
            buf = st["buf"]
            while len(buf) >= 9:
                ln = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + ln:
                    break
                ftype, flags = buf[3], buf[4]
                sid = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
                buf = buf[9 + ln:]
                if ftype == 4 and not flags & 1:
                    s.sendall(SETTINGS_ACK)
                if ftype == 7:
                    st["buf"] = buf
                    return fail(st)
                if sid == 1 and ftype in (0, 1) and flags & 1:
                    st["phase"] = "done"
            st["buf"] = buf
            if st["phase"] == "done":
                st["buf"] = b""
                sel.unregister(s)
                held.append(s)
    except (OSError, ssl.SSLError):
        fail(st)


while len(held) + failed < n and time.time() - t0 < SETUP_TIMEOUT:
    in_flight = started - len(held) - failed
    while started < n and in_flight < BATCH:
        start_one()
        in_flight += 1
    for key, _ in sel.select(timeout=0.5):
        on_event(key.data)

with open(readyfile + ".tmp", "w") as f:
    f.write(f"held={len(held)} failed={failed}\n")
os.rename(readyfile + ".tmp", readyfile)
time.sleep(hold)
closed = 0
for s in held:
    try:
        s.setblocking(False)
        d = s.recv(1)
        if d == b"":
            closed += 1
    except (ssl.SSLWantReadError, BlockingIOError):
        pass
    except (OSError, ssl.SSLError):
        closed += 1
print(f"held={len(held)} failed={failed} still_open_after_hold={len(held) - closed} setup_s={time.time() - t0:.1f}")
for s in held:
    s.close()
