#!/usr/bin/env python3
"""idle_client.py HOST PORT N PATH READYFILE HOLD_S

Holds N idle keep-alive connections to HOST:PORT for HOLD_S seconds, for
scripts/pressure.sh. Each connection sends one 'GET PATH HTTP/1.1', reads the
whole response (Content-Length or chunked) and then stays open and silent.
A connection the server closes meanwhile (its keep-alive timeout, or closed
to admit someone else) is opened again at once, so the pressure stays at N
for the whole hold. At most BATCH connects are in flight.

When N are held the first time it writes "held=<k> setup_s=<s>" to READYFILE.
At the end it prints one line: held now, how many the server closed and were
reopened, how many connects failed. Bounded: gives up the set-up after
IDLE_SETUP_TIMEOUT seconds (default 60) and always stops after HOLD_S, or
on SIGTERM (still printing its line).
Adapted from the team's benchmark harness client, which does not reopen.
"""
import os
import resource
import selectors
import signal
import socket
import struct
import sys
import time

host, port, n, path, readyfile, hold = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                        sys.argv[4], sys.argv[5], float(sys.argv[6]))
BATCH = int(os.environ.get("IDLE_BATCH", "256"))
SETUP_TIMEOUT = float(os.environ.get("IDLE_SETUP_TIMEOUT", "60"))

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < n + 100:
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n + 100, hard), hard))
    except (ValueError, OSError):
        pass

REQ = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: idle-client\r\n\r\n".encode()


def response_complete(buf):
    """True when buf holds one full HTTP response."""
    i = buf.find(b"\r\n\r\n")
    if i < 0:
        return False
    body = buf[i + 4:]
    length, chunked = None, False
    for line in buf[:i].decode("latin-1").lower().split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip() == "content-length":
            length = int(value.strip())
        elif name.strip() == "transfer-encoding" and "chunked" in value:
            chunked = True
    if chunked:
        return body.endswith(b"0\r\n\r\n")
    return length is not None and len(body) >= length


sel = selectors.DefaultSelector()
opening = {}   # socket -> [phase, bytes read]
held = set()
failed = reopened = 0
t0 = time.time()
ready_at = None
stopping = False


def stop(_signum, _frame):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, stop)


def open_one():
    global failed
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
    opening[s] = ["connect", b""]
    sel.register(s, selectors.EVENT_WRITE)


def drop(s):
    sel.unregister(s)
    s.close()


while not stopping:
    now = time.time()
    if ready_at is None and now - t0 > SETUP_TIMEOUT:
        break
    if ready_at is not None and now - ready_at > hold:
        break
    while len(held) + len(opening) < n and len(opening) < BATCH:
        open_one()
    if ready_at is None and len(held) >= n:
        ready_at = time.time()
        with open(readyfile + ".tmp", "w") as f:
            f.write(f"held={len(held)} setup_s={ready_at - t0:.2f}\n")
        os.replace(readyfile + ".tmp", readyfile)
    for key, _ in sel.select(timeout=0.5):
        s = key.fileobj
        if s in held:
            # A held connection is readable only when the server closed it.
            held.discard(s)
            drop(s)
            reopened += 1
            continue
        state = opening[s]
        if state[0] == "connect":
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                failed += 1
                del opening[s]
                drop(s)
                continue
            try:
                s.send(REQ)
            except OSError:
                failed += 1
                del opening[s]
                drop(s)
                continue
            state[0] = "read"
            sel.modify(s, selectors.EVENT_READ)
            continue
        try:
            data = s.recv(65536)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        if not data:
            failed += 1
            del opening[s]
            drop(s)
            continue
        state[1] += data
        if response_complete(state[1]):
            del opening[s]
            held.add(s)   # still registered for reading: EOF means closed

count = len(held)
for s in list(held) + list(opening):
    # Abortive close (RST), so thousands of TIME_WAIT sockets do not pile up.
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()
print(f"requested={n} held_at_end={count} reopened={reopened} failed={failed} "
      f"ready={'yes' if ready_at else 'no'}")
