#!/usr/bin/env python3
"""Attacks an unauthenticated client can make on memory and CPU (issue 23, items 9-12), run
against one or more treeserve binaries side by side: the server's RSS and `/score`
throughput before, during and after each attack.

    python3 benches/attacks.py --binary before=/tmp/before-target/release/treeserve \\
                               --binary after=target/release/treeserve \\
                               [--attacks heads,heads-under,control,report,h2window,pinned]
                               [--duration 5] [--rounds 3] [--json FILE]

Attacks:
  heads     --conns (default 1000) connections each sending a 390 KB request head that never
            ends (item 9);
  heads-under  the same with 30 KB heads, just under the default --max-header-bytes: what a
            connection can hold until --header-read-timeout (10 s) closes it;
  control   32 wrk connections on GET /health/live: what any cheap traffic costs /score on
            the same cores (the floor for `report`);
  report    32 wrk connections on GET /models/many/report (a 120-class model) while /score
            is measured (item 10);
  h2window  --h2-conns (default 4) HTTP/2 connections announcing a zero receive window, each
            opening 64 report streams and never reading (item 11);
  pinned    16 wrk connections cycling V2 infer through pinned versions 2..9 of a 23 MB
            random forest (item 12).

Each attack runs on a fresh server (each round, alternating which binary goes first; the
table shows medians over rounds): idle RSS; `/score` req/s alone (wrk, 1 thread, 16
connections, --duration s); then the attack starts, and after it has settled `/score` req/s
under it, RSS during it (and the peak, VmHWM); then the attack stops and RSS 2 s later.
The registry (built once with the first binary, in a temp dir) holds `iris` (the
alias's version and 8 more of a 23 MB forest under `big`) and `many` (120 classes).
Needs wrk. Python 3 stdlib only.
"""

import argparse
import json
import os
import re
import resource
import select
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "benches" / "score.lua"
ROW = '{"SepalLengthCm": 6.6, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4}'


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def registry(binary, work):
    """The shared registry: iris, a 120-class model, and a 23 MB forest published 9 times."""
    reg = work / "reg"
    iris = work / "iris.tsm"
    run([binary, "train", "--data", str(ROOT / "models/data/iris.csv"), "--output", str(iris)])
    run([binary, "publish", str(iris), "--registry", str(reg), "--alias", "production"])
    rows = ["a,b,y"]
    for i in range(1200):
        c = i % 120
        rows.append(f"{c}.{i % 7},{i % 5},c{c}")
    (work / "many.csv").write_text("\n".join(rows) + "\n")
    many = work / "many.tsm"
    run([binary, "train", "--data", str(work / "many.csv"), "--target", "y", "--id-column", "",
         "--name", "many", "--output", str(many)])
    run([binary, "publish", str(many), "--registry", str(reg), "--alias", "production"])
    import random
    rnd = random.Random(2)
    rows = ["a,b,c,d,e,f,y"]
    for _ in range(20000):
        r = [rnd.random() for _ in range(6)]
        rows.append(",".join(f"{x:.4f}" for x in r) + "," + ("p" if r[0] + rnd.random() * 0.5 > 0.7 else "n"))
    (work / "big.csv").write_text("\n".join(rows) + "\n")
    big = work / "big.tsm"
    run([binary, "train", "--data", str(work / "big.csv"), "--target", "y", "--id-column", "",
         "--name", "big", "--algorithm", "random-forest", "--n-trees", "100", "--output", str(big)])
    for v in range(1, 10):
        run([binary, "publish", str(big), "--registry", str(reg)]
            + (["--alias", "production"] if v == 1 else []))
    return reg


def start(binary, reg):
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--registry", str(reg),
         "--model", "iris", "--model", "many", "--model", "big"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "TREESERVE_LOG": "warn"})
    line = proc.stdout.readline()
    m = re.search(r"http://(\S+)", line)
    if not m:
        proc.kill()
        raise SystemExit(f"{binary} did not print its address: {line!r}")
    host, port = m.group(1).rsplit(":", 1)
    addr = (host, int(port))
    deadline = time.time() + 30
    while time.time() < deadline:  # ready: every model loaded
        try:
            s = socket.create_connection(addr)
            s.sendall(b"GET /health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if s.recv(64).startswith(b"HTTP/1.1 200"):
                s.close()
                break
            s.close()
        except OSError:
            pass
        time.sleep(0.05)
    return proc, addr


def status(pid, key):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024  # MiB
    return 0.0


def wrk(addr, duration, conns=16, path="/models/iris/score", lua=LUA, env=None):
    """Starts wrk; returns the process (read its result with `wrk_result`)."""
    return subprocess.Popen(
        ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "-s", str(lua),
         f"http://{addr[0]}:{addr[1]}{path}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "WRK_PATH": path, **(env or {})})


def wrk_result(proc):
    out = proc.communicate()[0]
    m = re.search(r"WRK_JSON (\{.*\})", out)
    if not m:
        return {"rps": 0.0, "non_2xx": 0}
    j = json.loads(m.group(1))
    return {"rps": j["requests"] / (j["duration_us"] / 1e6), "non_2xx": j["non_2xx"],
            "errors": j["connect_errors"] + j["read_errors"] + j["write_errors"] + j["timeouts"]}


class Heads:
    """Connections each trickling a 390 KB head that never ends."""

    def __init__(self, addr, conns, size):
        self.addr, self.conns, self.size = addr, conns, size
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.sent = 0

    def run(self):
        socks = []
        chunk = b"GET / HTTP/1.1\r\nHost: x\r\nx-pad: " + b"a" * self.size
        for _ in range(self.conns):
            try:
                s = socket.create_connection(self.addr)
                s.setblocking(False)
                socks.append([s, 0])
            except OSError:
                break
        while not self.stop.is_set():
            busy = False
            for entry in socks:
                s, off = entry
                if s is None or off >= len(chunk):
                    continue
                try:
                    n = s.send(chunk[off:off + 65536])
                    entry[1] += n
                    self.sent += n
                    busy = True
                except BlockingIOError:
                    pass
                except OSError:
                    entry[0] = None
            if not busy:
                self.stop.wait(0.05)
        for s, _ in socks:
            if s is not None:
                s.close()

    def start(self):
        self.thread.start()

    def end(self):
        self.stop.set()
        self.thread.join()


def h2_frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def hpack_literal(name, value):
    # Literal header field without indexing, new name, no Huffman.
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


class H2Window:
    """HTTP/2 connections with a zero receive window, each opening 64 report streams."""

    def __init__(self, addr, conns, streams=64, path=b"/models/many/report"):
        self.addr, self.conns, self.streams, self.path = addr, conns, streams, path
        self.socks = []

    def start(self):
        for _ in range(self.conns):
            s = socket.create_connection(self.addr)
            # SETTINGS: INITIAL_WINDOW_SIZE (4) = 0.
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                      + h2_frame(4, 0, 0, struct.pack(">HI", 4, 0)))
            block = (hpack_literal(b":method", b"GET") + hpack_literal(b":scheme", b"http")
                     + hpack_literal(b":path", self.path) + hpack_literal(b":authority", b"x"))
            frames = b"".join(h2_frame(1, 0x5, 2 * i + 1, block) for i in range(self.streams))
            s.sendall(frames)
            self.socks.append(s)

    def end(self):
        for s in self.socks:
            s.close()


PINNED_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"inputs":[{"name":"input-0","shape":[1,6],"datatype":"FP64","data":[0.1,0.2,0.3,0.4,0.5,0.6]}]}'
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/v2/models/big/versions/" .. (2 + n % 8) .. "/infer")
end
"""


def attack(binary, reg, which, args, work):
    proc, addr = start(binary, reg)
    pid = proc.pid
    try:
        row = {"idle_rss_mib": status(pid, "VmRSS")}
        row["score_rps_alone"] = wrk_result(wrk(addr, args.duration))["rps"]
        row["rss_before_attack_mib"] = status(pid, "VmRSS")
        side = None
        if which in ("heads", "heads-under"):
            a = Heads(addr, args.conns, 390 * 1024 if which == "heads" else 30 * 1024)
            a.start()
            time.sleep(3)
        elif which in ("report", "control"):
            path = "/models/many/report" if which == "report" else "/health/live"
            side = wrk(addr, args.duration + 3, conns=32, path=path, lua=work / "get.lua")
            a = None
            time.sleep(1.5)
        elif which == "h2window":
            a = H2Window(addr, args.h2_conns)
            a.start()
            time.sleep(3)
        elif which == "pinned":
            side = wrk(addr, args.duration + 3, conns=16, path="/", lua=work / "pinned.lua")
            a = None
            time.sleep(1.5)
        samples = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                samples.append(status(pid, "VmRSS"))
                stop.wait(0.1)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        score = wrk_result(wrk(addr, args.duration))
        stop.set()
        t.join()
        row["score_rps_under_attack"] = score["rps"]
        row["rss_under_attack_mib"] = max(samples) if samples else status(pid, "VmRSS")
        row["rss_peak_mib"] = status(pid, "VmHWM")
        if side is not None:
            r = wrk_result(side)
            row["attack_rps"] = r["rps"]
            row["attack_non_2xx"] = r["non_2xx"]
        if a is not None:
            a.end()
        time.sleep(2)
        row["rss_after_mib"] = status(pid, "VmRSS")
        return row
    finally:
        proc.kill()
        proc.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", action="append", required=True, help="NAME=PATH")
    p.add_argument("--attacks", default="heads,heads-under,control,report,h2window,pinned")
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--rounds", type=int, default=1, help="medians over rounds")
    p.add_argument("--conns", type=int, default=1000)
    p.add_argument("--h2-conns", type=int, default=4)
    p.add_argument("--json")
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    binaries = [b.split("=", 1) for b in args.binary]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "get.lua").write_text(LUA.read_text().replace('wrk.method = "POST"', 'wrk.method = "GET"')
                                      .replace("wrk.body = ", "local _ = "))
        done = "\nfunction done" + LUA.read_text().split("function done", 1)[1]
        (work / "pinned.lua").write_text(PINNED_LUA + done)
        reg = registry(binaries[0][1], work)
        for which in args.attacks.split(","):
            rounds = {}
            for r in range(args.rounds):
                # Alternate which binary goes first.
                for name, binary in (binaries if r % 2 == 0 else binaries[::-1]):
                    row = attack(binary, reg, which, args, work)
                    rounds.setdefault(name, []).append(row)
                    print(f"{which:11} {name:8} round {r + 1}: " + " ".join(
                        f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in row.items()), flush=True)
            for name, _ in binaries:
                rows = rounds[name]
                results.setdefault(which, {})[name] = {
                    k: statistics.median(row[k] for row in rows) for k in rows[0]}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    print()
    print("| attack | binary | idle RSS MiB | /score req/s alone | /score req/s under attack | RSS under attack MiB | peak RSS MiB | RSS 2 s after MiB | attack req/s (non-2xx) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for which, rows in results.items():
        for name, r in rows.items():
            side = f"{r['attack_rps']:.0f} ({r['attack_non_2xx']})" if "attack_rps" in r else "-"
            print(f"| {which} | {name} | {r['idle_rss_mib']:.1f} | {r['score_rps_alone']:.0f} | "
                  f"{r['score_rps_under_attack']:.0f} | {r['rss_under_attack_mib']:.1f} | "
                  f"{r['rss_peak_mib']:.1f} | {r['rss_after_mib']:.1f} | {side} |")


if __name__ == "__main__":
    sys.exit(main())
