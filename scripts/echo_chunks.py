#!/usr/bin/env python3
"""POST /echo a body of N bytes sent as 1-byte chunks (6 bytes each on the
wire), check the echo byte for byte, and print the server's CPU time for it.

    scripts/echo_chunks.py PORT SERVER_PID [N]       (N defaults to 1,800,000)

Run the server with /echo on, e.g. on a config holding "[echo] enabled = true":
    conveyor --config echo.toml --workers 1 --listen 127.0.0.1:18300 www &
and `strace -c -f` around it to count the writes (BENCHMARKS.md, /echo)."""
import os, socket, sys, threading, time

port, pid = int(sys.argv[1]), int(sys.argv[2])
n = int(sys.argv[3]) if len(sys.argv) > 3 else 1_800_000
tick = os.sysconf("SC_CLK_TCK")


def cpu():
    """utime + stime of the server, in seconds."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick


body = bytes(b"abcdefghij"[i % 10] for i in range(n))
wire = b"".join(b"1\r\n" + body[i:i + 1] + b"\r\n" for i in range(n)) + b"0\r\n\r\n"
head = (b"POST /echo HTTP/1.1\r\nHost: bench\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n")
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(60)
c0, t0 = cpu(), time.monotonic()


def send():
    s.sendall(head)
    for i in range(0, len(wire), 65536):
        s.sendall(wire[i:i + 65536])


threading.Thread(target=send, daemon=True).start()
got = bytearray()
while True:
    b = s.recv(1 << 20)
    if not b:
        break
    got += b
t1, c1 = time.monotonic(), cpu()
if not got.startswith(b"HTTP/1.1 200"):
    sys.exit("response: %r" % bytes(got[:300]))
raw = bytes(got[got.index(b"\r\n\r\n") + 4:])
out, at, chunks = bytearray(), 0, 0
while True:
    eol = raw.index(b"\r\n", at)
    size = int(raw[at:eol], 16)
    if size == 0:
        break
    out += raw[eol + 2:eol + 2 + size]
    at = eol + 2 + size + 2
    chunks += 1
if bytes(out) != body:
    sys.exit("the echo differs")
print(f"{n} B as 1-byte chunks ({len(wire)} B on the wire): echoed in {chunks} "
      f"chunks, {len(raw)} B back; wall {t1 - t0:.2f} s; server CPU {c1 - c0:.2f} s")
