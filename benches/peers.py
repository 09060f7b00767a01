#!/usr/bin/env python3
"""The Python servers users have today against treeserve, side by side (optional to run).

    python3 benches/peers.py [--rounds 3] [--duration 5] [--workers 2] [--out FILE]

Installs FastAPI + uvicorn (with its standard extras: httptools, uvloop), scikit-learn and Azure ML's inference server
(azureml-inference-server-http) into target/peers-venv at the versions pinned in
benches/peers/requirements.txt, trains a scikit-learn decision tree on the same IRIS CSV
(models/data/iris.csv) and pickles it, and serves it the way those servers' users do:
benches/peers/fastapi_app.py (pydantic row, `predict` on a NumPy array) under
`uvicorn --workers N`, and benches/peers/azureml_score.py (`init`/`run` scoring script)
under `azmlinfsrv --worker_count N` (gunicorn). N defaults to the machine's cores.

Then runs the load benchmark's scenarios with wrk (benches/score.lua) on all three: POST
/score with one row at 1, 16 and 64 connections and with 100-row batches at 16
connections, rounds alternating the order. Reports medians of req/s, p50/p99 latency,
server CPU per request (summed over the server's whole process tree) and RSS, and
treeserve's advantage (req/s ratio). Needs wrk and network access to PyPI (first run).
"""

import argparse
import json
import os

import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load  # noqa: E402

ROOT = load.ROOT
PEERS = ROOT / "benches" / "peers"
VENV = ROOT / "target" / "peers-venv"

TRAIN = """
import csv, pickle, sys
from sklearn.tree import DecisionTreeClassifier
F = ["SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm"]
rows = list(csv.DictReader(open(sys.argv[1])))
model = DecisionTreeClassifier(random_state=0).fit(
    [[float(r[f]) for f in F] for r in rows], [r["Species"] for r in rows])
pickle.dump(model, open(sys.argv[2], "wb"))
"""


def venv():
    python = VENV / "bin" / "python"
    stamp = VENV / "requirements.txt"
    wanted = (PEERS / "requirements.txt").read_text()
    if not (python.exists() and stamp.exists() and stamp.read_text() == wanted):
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(PEERS / "requirements.txt")], check=True)
        stamp.write_text(wanted)
    return VENV / "bin"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(addr, proc, timeout=60):
    body = json.dumps(dict(zip(load.FEATURES, load.SCORE_ROW))).encode()
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server on {addr} exited with {proc.returncode}")
        try:
            req = urllib.request.Request(
                f"http://{addr}/score", body, {"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(req, timeout=2) as r:
                if r.status == 200 and b"predicted_species" in r.read():
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server on {addr} not ready after {timeout} s")


def tree(pid):
    """pid and all its descendants."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def tree_sum(pid, measure):
    """`measure` summed over pid and its descendants (those that end meanwhile count 0)."""
    total = 0
    for p in tree(pid):
        try:
            total += measure(p)
        except OSError:
            pass
    return total


def cpu_seconds(pid):
    return tree_sum(pid, load.cpu_seconds)


def rss_kib(pid):
    return tree_sum(pid, load.rss_kib)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--out", type=Path, help="write the markdown table here")
    ap.add_argument("--prepare", action="store_true", help="only install the peers' venv, then exit")
    args = ap.parse_args()
    bin_dir = venv()
    if args.prepare:
        return
    treeserve, _ = load.build("plain")
    tmp = Path(tempfile.mkdtemp(prefix="treeserve-peers-"))
    model = tmp / "model.pkl"
    subprocess.run([str(bin_dir / "python"), "-c", TRAIN, str(ROOT / "models" / "data" / "iris.csv"), str(model)], check=True)
    env = {**os.environ, "MODEL": str(model)}
    ports = {"fastapi": free_port(), "azureml": free_port()}
    processes = {}
    try:
        ts, addr = load.start([str(treeserve), "serve", "--registry", "models", "--listen", "127.0.0.1:0"])
        processes["treeserve"] = (ts, addr)
        cmds = {
            "fastapi": [str(bin_dir / "uvicorn"), "fastapi_app:app", "--port", str(ports["fastapi"]),
                        "--workers", str(args.workers), "--log-level", "warning"],
            "azureml": [str(bin_dir / "azmlinfsrv"), "--entry_script", "azureml_score.py", "--port",
                        str(ports["azureml"]), "--health_port", str(free_port()),
                        "--worker_count", str(args.workers)],
        }
        for name, cmd in cmds.items():
            proc = subprocess.Popen(cmd, cwd=PEERS, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
            processes[name] = (proc, f"127.0.0.1:{ports[name]}")
            wait_ready(processes[name][1], proc)
        idle = {n: rss_kib(p.pid) for n, (p, _) in processes.items()}
        scenarios = [("one row", c, None, 1) for c in (1, 16, 64)] + [("100-row batch", 16, load.score_rows(100), 100)]
        results = {}
        for title, c, body, rows in scenarios:
            for r in range(args.rounds):
                names = list(processes) if r % 2 == 0 else list(reversed(list(processes)))
                for name in names:
                    proc, addr = processes[name]
                    load.wrk(addr, c, 1, "/score", body)
                    before = cpu_seconds(proc.pid)
                    res = load.wrk(addr, c, args.duration, "/score", body)
                    secs = res["duration_us"] / 1e6
                    res["rps"] = res["requests"] / secs
                    res["cpu_us_per_req"] = (cpu_seconds(proc.pid) - before) * 1e6 / max(res["requests"], 1)
                    res["errors"] = sum(res[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts", "non_2xx"))
                    results.setdefault((title, c, name), []).append(res)
                    print(f"{title} c={c} round {r + 1} {name:9} {res['rps']:>9.0f} req/s p50 {res['p50_us']} µs "
                          f"cpu {res['cpu_us_per_req']:.0f} µs/req errors {res['errors']}", file=sys.stderr)
        loaded = {n: rss_kib(p.pid) for n, (p, _) in processes.items()}
    finally:
        for name, (proc, _) in processes.items():
            # The Python servers run in their own session (workers included): kill the group.
            if name == "treeserve":
                proc.terminate()
            else:
                try:
                    os.killpg(proc.pid, 15)
                except ProcessLookupError:
                    pass
            proc.wait()
    lines = [
        f"Medians of {args.rounds} rounds, {args.duration} s each, {os.cpu_count()} cores shared by wrk and the "
        f"server; Python servers with {args.workers} workers; server CPU summed over the process tree "
        f"({time.strftime('%Y-%m-%d')}).",
        "",
        "| scenario | connections | server | req/s | p50 µs | p99 µs | server CPU µs/req | errors | treeserve ÷ this (req/s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for title, c, _, _ in scenarios:
        for name in processes:
            runs = results[(title, c, name)]
            med = lambda k: statistics.median(x[k] for x in runs)
            ratio = statistics.median(t["rps"] / max(x["rps"], 1e-9) for t, x in zip(results[(title, c, "treeserve")], runs))
            lines.append(f"| {title} | {c} | {name} | {med('rps'):.0f} | {med('p50_us'):.0f} | {med('p99_us'):.0f} | "
                         f"{med('cpu_us_per_req'):.1f} | {sum(x['errors'] for x in runs)} | {ratio:.1f}× |")
    lines += ["", "| server | idle RSS | RSS after load |", "|---|---|---|"]
    for name in processes:
        lines.append(f"| {name} | {idle[name] / 1024:.1f} MiB | {loaded[name] / 1024:.1f} MiB |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
