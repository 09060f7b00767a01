#!/usr/bin/env python3
"""What a Python client sees: one row, one call at a time, through the clients users run.

    target/pyenv/bin/python benches/clients.py [--calls 2000] [--rounds 5] [--binary PATH]

Starts one treeserve (release build, `--grpc-listen`) on the shipped IRIS registry and, in
rounds, times the same IRIS rows (all 150, in turn) through each client back to back:
tritonclient.grpc `infer` (FP32, both outputs), tritonclient.http `infer` (binary data,
both outputs), and `/score` with `http.client` on one keep-alive connection. Reports the
medians over rounds of each client's median and p99 latency per call, and its ratio to
`/score`. The client's own work is part of each figure: that is the point. Needs the test
venv (tests/clients/requirements.txt: tritonclient[http,grpc]).
"""

import argparse
import http.client
import json
import re
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

ROOT = Path(__file__).resolve().parent.parent
FEATURES = ["SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm"]


def rows():
    out = []
    with open(ROOT / "models" / "data" / "iris.csv") as f:
        next(f)
        for line in f:
            out.append([float(x) for x in line.split(",")[1:5]])
    return out


def clients(http_addr, grpc_addr, data):
    g = grpcclient.InferenceServerClient(url=grpc_addr)
    h = httpclient.InferenceServerClient(url=http_addr)
    host, port = http_addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port))

    def grpc_call(row):
        x = np.array([row], dtype=np.float32)
        inp = grpcclient.InferInput("input", [1, 4], "FP32")
        inp.set_data_from_numpy(x)
        r = g.infer("iris", [inp])
        return r.as_numpy("label")[0]

    def http_call(row):
        x = np.array([row], dtype=np.float32)
        inp = httpclient.InferInput("input", [1, 4], "FP32")
        inp.set_data_from_numpy(x, binary_data=True)
        r = h.infer("iris", [inp])
        return r.as_numpy("label")[0]

    def score_call(row):
        conn.request("POST", "/score", json.dumps(dict(zip(FEATURES, row))), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200, body
        return json.loads(body)["output"]

    return {"tritonclient.grpc": grpc_call, "tritonclient.http": http_call, "/score (http.client)": score_call}


def time_calls(call, data, calls):
    lat = []
    for i in range(calls):
        row = data[i % len(data)]
        t = time.perf_counter_ns()
        call(row)
        lat.append((time.perf_counter_ns() - t) / 1000)
    lat.sort()
    return lat[len(lat) // 2], lat[int(len(lat) * 0.99)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--binary", type=Path, help="a treeserve binary (default: cargo build --release)")
    args = ap.parse_args()
    binary = args.binary
    if binary is None:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "treeserve"], cwd=ROOT, check=True)
        binary = ROOT / "target" / "release" / "treeserve"
    cmd = [str(binary), "serve", "--registry", "models", "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        http_addr = re.search(r"http://(\S+)", line).group(1)
        grpc_addr = re.search(r"grpc://(\S+)", line).group(1)
        data = rows()
        calls = clients(http_addr, grpc_addr, data)
        # The three answer alike.
        for row in data[::10]:
            answers = [c(row) for c in calls.values()]
            g, h, s = answers
            assert g == h and g.decode() == next(iter(s.values())), answers
        results = {name: [] for name in calls}
        for r in range(args.rounds):
            order = list(calls) if r % 2 == 0 else list(reversed(list(calls)))
            for name in order:
                time_calls(calls[name], data, 200)  # warm-up
                results[name].append(time_calls(calls[name], data, args.calls))
    finally:
        proc.kill()
        proc.wait()
    base = statistics.median(p50 for p50, _ in results["/score (http.client)"])
    print(f"One row per call, one call at a time, {args.calls} calls per round, medians of {args.rounds} rounds "
          f"({time.strftime('%Y-%m-%d')}, client and server on one machine).\n")
    print("| client | p50 µs | p99 µs | p50 ÷ /score |")
    print("|---|---|---|---|")
    for name, rs in results.items():
        p50 = statistics.median(p for p, _ in rs)
        p99 = statistics.median(p for _, p in rs)
        print(f"| {name} | {p50:.0f} | {p99:.0f} | {p50 / base:.2f} |")


if __name__ == "__main__":
    main()
