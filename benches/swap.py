#!/usr/bin/env python3
"""Hot-swap benchmark: how long from an alias moving to the first response served by the
new version, and what publishing does to request latency under load.

    python3 benches/swap.py [--publishes 100] [--duration 20] [--out FILE]

1. Swap latency. For the watcher mode (inotify, poll every 2 s as a backstop) and the
   polling mode (--no-watch --poll-interval 100ms): prepares a version with
   `treeserve publish`, then moves the `production` alias exactly as the registry does
   (temporary file, rename), and from that rename polls /score on a keep-alive connection
   until `x-model-version` names the new version. p50 / p99 / max over the publishes.
2. Latency under swaps. wrk at 64 connections for --duration seconds, once steady and once
   while a version is published every second; p99 and req/s of both, and the ratio.
Needs wrk for part 2 (apt-get install wrk).
"""

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "treeserve"
BODY = '{"SepalLengthCm": 6.6, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4}'


def start(registry, *flags):
    proc = subprocess.Popen(
        [str(BIN), "serve", "--registry", str(registry), "--listen", "127.0.0.1:0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    addr = re.search(r"http://(\S+)", proc.stdout.readline()).group(1)
    return proc, addr


def prepare(registry, artifact):
    out = subprocess.run(
        [str(BIN), "publish", str(artifact), "--registry", str(registry)],
        capture_output=True, text=True, check=True,
    )
    return int(out.stdout.strip())


def move_alias(registry, version):
    """What `treeserve promote` does, minus the process start: write, fsync, rename."""
    aliases = Path(registry) / "iris" / "aliases"
    tmp = aliases / f".production.bench-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump({"version": version, "history": [], "updated": ""}, f)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, aliases / "production")


def served_version(conn):
    conn.request("POST", "/score", BODY, {"Content-Type": "application/json"})
    r = conn.getresponse()
    r.read()
    return int(r.getheader("x-model-version") or 0)


def swap_latencies(registry, artifact, flags, n):
    proc, addr = start(registry, *flags)
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port))
    out = []
    try:
        for _ in range(n):
            v = prepare(registry, artifact)
            time.sleep(0.05)  # let the staging events settle: measure the alias move alone
            t0 = time.perf_counter()
            move_alias(registry, v)
            while served_version(conn) != v:
                if time.perf_counter() - t0 > 10:
                    raise SystemExit(f"version {v} not served within 10 s")
            out.append((time.perf_counter() - t0) * 1e3)
    finally:
        proc.kill()
        proc.wait()
    return out


def wrk(addr, duration):
    res = subprocess.run(
        ["wrk", "-t2", "-c64", f"-d{duration}s", "-s", str(ROOT / "benches" / "score.lua"), f"http://{addr}/score"],
        capture_output=True, text=True, check=True,
    ).stdout
    line = next(l for l in res.splitlines() if l.startswith("WRK_JSON "))
    r = json.loads(line[len("WRK_JSON "):])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    return r


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--publishes", type=int, default=100)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "treeserve"], cwd=ROOT, check=True)
    work = Path(tempfile.mkdtemp(prefix="treeserve-swap-"))
    try:
        registry = work / "registry"
        artifact = work / "iris.tsm"
        subprocess.run(
            [str(BIN), "train", "--data", str(ROOT / "models/data/iris.csv"), "--output", str(artifact),
             "--publish", str(registry), "--alias", "production"],
            check=True, capture_output=True,
        )
        lines = ["| mode | publishes | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|"]
        for mode, flags in [("watcher (inotify)", []), ("polling, 100 ms", ["--no-watch", "--poll-interval", "100ms"])]:
            lat = swap_latencies(registry, artifact, flags, args.publishes)
            lines.append(f"| {mode} | {len(lat)} | {pct(lat, 50):.2f} | {pct(lat, 99):.2f} | {max(lat):.2f} |")
            print(lines[-1], file=sys.stderr)

        if shutil.which("wrk"):
            proc, addr = start(registry)
            try:
                wrk(addr, 2)
                steady = wrk(addr, args.duration)
                stop = threading.Event()

                def publisher():
                    while not stop.wait(1.0):
                        move_alias(registry, prepare(registry, artifact))

                t = threading.Thread(target=publisher)
                t.start()
                swapping = wrk(addr, args.duration)
                stop.set()
                t.join()
            finally:
                proc.kill()
                proc.wait()
            lines += [
                "",
                f"| wrk, 64 connections, {args.duration} s | req/s | p50 µs | p99 µs | errors |",
                "|---|---|---|---|---|",
            ]
            for name, r in [("steady", steady), ("one publish per second", swapping)]:
                errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"] + r["non_2xx"]
                lines.append(f"| {name} | {r['rps']:.0f} | {r['p50_us']} | {r['p99_us']} | {errors} |")
            lines.append(
                f"| ratio (swapping ÷ steady) | {swapping['rps'] / steady['rps']:.3f} | "
                f"{swapping['p50_us'] / steady['p50_us']:.2f} | {swapping['p99_us'] / steady['p99_us']:.2f} | |"
            )
        report = "\n".join(lines) + "\n"
        print(report)
        if args.out:
            args.out.write_text(report)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
