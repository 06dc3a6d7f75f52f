#!/usr/bin/env python3
"""`conveyor bench --h2` against h2load on the same server, one after the other.

    scripts/h2load_agreement.py                  # h2c and TLS h2, 8 rounds each
    ROUNDS=12 DURATION=3 RT=0 scripts/h2load_agreement.py

Starts a release Conveyor (`--workers 1`, h2c on a plain port, h2 on a
self-signed TLS port) on a temporary root holding /small.txt (100 bytes),
then runs, alternating which goes first each round, h2load and
`conveyor bench --h2` with the same load: 64 connections x 10 streams,
DURATION seconds, one client thread each, the same request (h2load's
user-agent, sent by bench with -H). Prints per client the mean req/s, its
own CPU and the server's (from /proc), and the geometric mean of the
per-round ratios bench / h2load with its standard error.

With RT=1 (the default, needs root) the server is pinned to CPU 0 and each
client to CPU 1, all SCHED_FIFO: on a machine shared with other work the
clients otherwise measure the scheduler (run to run spread of 2x on a busy
2-vCPU VM). Only the server this script starts is stopped, by PID.

Environment: ROUNDS=8, DURATION=2, PORT=21380 (and PORT+1), RT=1,
BIN=target/release/conveyor (built first unless BUILD=0).
"""

import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROUNDS = int(os.environ.get("ROUNDS", "8"))
DURATION = os.environ.get("DURATION", "2")
PORT = int(os.environ.get("PORT", "21380"))
RT = os.environ.get("RT", "1") == "1"
BIN = os.environ.get("BIN", "target/release/conveyor")
UA = "h2load nghttp2/" + subprocess.run(
    ["h2load", "--version"], capture_output=True, text=True
).stdout.split("/")[-1].strip()
TICK = os.sysconf("SC_CLK_TCK")


def server_cpu(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def served():
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/status") as r:
        return json.load(r)["requests"]["total"]


def run(pid, cmd):
    prefix = ["taskset", "2", "chrt", "-f", "10"] if RT else []
    r0, s0, t0 = served(), server_cpu(pid), time.time()
    p = subprocess.run(
        ["/usr/bin/time", "-f", "TIME %U %S"] + prefix + cmd,
        capture_output=True,
        text=True,
    )
    wall, s1, r1 = time.time() - t0, server_cpu(pid), served()
    out = p.stdout + p.stderr
    user, system = map(float, re.findall(r"TIME ([\d.]+) ([\d.]+)", out)[-1])
    rps = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out) or re.search(
        r'"requests_per_sec":([\d.]+)', out
    )
    if rps is None:
        sys.exit(f"no req/s in the output of {cmd}:\n{out}")
    return {
        "rps": float(rps.group(1)),
        "client_cores": (user + system) / wall,
        "server_cores": (s1 - s0) / wall,
        "served_per_sec": (r1 - r0 - 1) / wall,
    }


def compare(pid, url, extra):
    cmds = {
        "h2load": ["h2load", "-c", "64", "-m", "10", "-D", DURATION, url],
        "bench": [BIN, "bench", url, "--h2", "-c", "64", "-m", "10", "-d",
                  DURATION + "s", "--threads", "1", "--json", "-H",
                  f"user-agent: {UA}"] + extra,
    }
    results = {name: [] for name in cmds}
    for r in range(ROUNDS):
        order = list(cmds) if r % 2 == 0 else list(reversed(list(cmds)))
        for name in order:
            results[name].append(run(pid, cmds[name]))
    print(f"\n{url}  (64 connections x 10 streams, {DURATION} s, {ROUNDS} rounds)")
    for name, rs in results.items():
        mean = lambda key: statistics.mean(x[key] for x in rs)
        print(f"  {name:7} {mean('rps'):8.0f} req/s  client {mean('client_cores'):.2f} cores"
              f"  server {mean('server_cores'):.2f} cores  served {mean('served_per_sec'):8.0f}/s")
    logs = [math.log(b["rps"] / h["rps"]) for b, h in zip(results["bench"], results["h2load"])]
    error = statistics.stdev(logs) / math.sqrt(len(logs)) if len(logs) > 1 else 0.0
    print(f"  bench / h2load: {math.exp(statistics.mean(logs)):.3f} (geometric mean of the rounds,"
          f" +-{error * 100:.1f} % standard error)")


def main():
    if os.environ.get("BUILD", "1") == "1":
        subprocess.run(["cargo", "build", "--release"], check=True)
    root = tempfile.mkdtemp(prefix="h2load-agreement-")
    with open(os.path.join(root, "small.txt"), "w") as f:
        f.write("x" * 100)
    server = subprocess.Popen(
        [BIN, root, "--workers", "1", "--listen", f"127.0.0.1:{PORT}",
         "--tls-self-signed", "--tls-listen", f"127.0.0.1:{PORT + 1}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 10
        while True:
            try:
                served()
                break
            except OSError:
                if time.time() > deadline:
                    sys.exit("the server did not start")
                time.sleep(0.05)
        if RT:
            subprocess.run(["taskset", "-a", "-p", "1", str(server.pid)], check=True,
                           stdout=subprocess.DEVNULL)
            subprocess.run(["chrt", "-a", "-f", "-p", "10", str(server.pid)], check=True)
        compare(server.pid, f"http://127.0.0.1:{PORT}/small.txt", [])
        compare(server.pid, f"https://127.0.0.1:{PORT + 1}/small.txt", ["-k"])
    finally:
        server.terminate()
        server.wait()
        os.remove(os.path.join(root, "small.txt"))
        os.rmdir(root)


if __name__ == "__main__":
    main()
