#!/usr/bin/env python3
"""Soak: wrk at 64 connections on /score for a long run while a new model version is
published (and the alias moved) every few seconds; RSS sampled every second.

    python3 benches/soak.py [--duration 600] [--publish-every 10] [--warmup 60]

Reports RSS after warm-up and at the end (bar: < 5% growth), wrk's errors and non-2xx
answers (bar: 0), and the number of versions published and swapped in. Needs wrk.
"""

import argparse
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
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "benches" / "score.lua"


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=600)
    ap.add_argument("--publish-every", type=float, default=10.0)
    ap.add_argument("--warmup", type=int, default=60, help="seconds before the baseline RSS is taken")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "treeserve"], cwd=ROOT, check=True)
    bin_ = ROOT / "target" / "release" / "treeserve"
    work = Path(tempfile.mkdtemp(prefix="treeserve-soak-"))
    reg = work / "registry"
    shutil.copytree(ROOT / "models" / "iris", reg / "iris")
    artifacts = []
    for depth in ("2", "3", "4"):
        out = work / f"d{depth}.tsm"
        subprocess.run([str(bin_), "train", "--data", "models/data/iris.csv", "--max-depth", depth, "--output", str(out)],
                       cwd=ROOT, check=True, capture_output=True)
        artifacts.append(out)
    server = subprocess.Popen([str(bin_), "serve", "--registry", str(reg), "--listen", "127.0.0.1:0"],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    addr = re.search(r"http://(\S+)", server.stdout.readline()).group(1)
    samples = []
    published = 0
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            samples.append((time.monotonic(), rss_kib(server.pid)))
            time.sleep(1)

    def publish():
        nonlocal published
        while not stop.wait(args.publish_every):
            a = artifacts[published % len(artifacts)]
            subprocess.run([str(bin_), "publish", str(a), "--registry", str(reg), "--alias", "production"],
                           check=True, capture_output=True)
            published += 1

    started = time.monotonic()
    threads = [threading.Thread(target=sample), threading.Thread(target=publish)]
    try:
        for t in threads:
            t.start()
        out = subprocess.run(
            ["wrk", "-t2", "-c64", f"-d{args.duration}s", "-s", str(LUA), f"http://{addr}/score"],
            capture_output=True, text=True, check=True,
        ).stdout
        stop.set()
        for t in threads:
            t.join()
        metrics = urllib.request.urlopen(f"http://{addr}/metrics").read().decode()
    finally:
        stop.set()
        server.kill()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)
    res = json.loads(next(l for l in out.splitlines() if l.startswith("WRK_JSON "))[len("WRK_JSON "):])
    errors = sum(res[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts", "non_2xx"))
    loads = re.search(r'treeserve_model_loads_total\{outcome="success"\} (\d+)', metrics)
    after_warmup = [kib for t, kib in samples if t - started >= args.warmup]
    base = statistics.median(after_warmup[:10]) if after_warmup else samples[0][1]
    end = statistics.median(after_warmup[-10:]) if after_warmup else samples[-1][1]
    growth = (end - base) / base * 100
    report = {
        "duration_s": args.duration,
        "requests": res["requests"],
        "req_per_s": round(res["requests"] / (res["duration_us"] / 1e6)),
        "errors": errors,
        "published": published,
        "swaps": int(loads.group(1)) - 1 if loads else None,
        "rss_first_mib": round(samples[0][1] / 1024, 1),
        "rss_after_warmup_mib": round(base / 1024, 1),
        "rss_end_mib": round(end / 1024, 1),
        "rss_max_mib": round(max(k for _, k in samples) / 1024, 1),
        "growth_after_warmup_pct": round(growth, 2),
        "p99_us": res["p99_us"],
    }
    print(json.dumps(report, indent=1))
    ok = errors == 0 and growth < 5.0
    print("PASS" if ok else "FAIL", file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
