"""m2 end to end: `treeserve predict` CSV → CSV against XGBoost's inplace_predict from numpy,
and POST /score under wrk next to the shipped IRIS model (benches/ensembles.py)."""

import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

import models

ROOT = Path(__file__).resolve().parent.parent.parent
HERE = ROOT / "benches" / "ensembles"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def publish_m2(treeserve, work, registry):
    subprocess.run([str(treeserve), "import", "--name", "m2", "--publish", str(registry), "--alias", "production",
                    str(work / "m2.json")], check=True, capture_output=True)


def csv_runs(args, work, meta, treeserve, log):
    """For each row count: medians over rounds of `treeserve predict` (the whole process:
    start, load, parse, predict on every core, write; after one untimed run) and of
    XGBoost's inplace_predict on those rows already in a float32 numpy array (1 thread and
    all threads; after its warm-up call)."""
    reg = work / "csv-registry"
    shutil.rmtree(reg, ignore_errors=True)
    publish_m2(treeserve, work, reg)
    spec = meta["want"]["spec"]
    threads = os.cpu_count() or 1
    out = {}
    for n in [int(x) for x in str(args.csv_rows).split(",")]:
        X, _ = models.data(spec, n, seed=4200 + n)
        name = f"csv{n}"
        X.astype("<f8").tofile(work / f"{name}.rows.f64")
        (work / f"{name}.json.meta").write_text(json.dumps({**meta, "rows": n}))
        inp, outp = work / f"{name}.csv", work / f"{name}.out.csv"
        np.savetxt(inp, X, delimiter=",", fmt="%.17g", header=",".join(f"f{i}" for i in range(X.shape[1])),
                   comments="")
        cmd = [str(treeserve), "predict", "--registry", str(reg), "--model", "m2", "--input", str(inp),
               "--output", str(outp), "--probabilities"]
        # Untimed, as XGBoost's worker warms up: the binary's pages and the files in the page
        # cache (a VM's DAMON pages out what a minute left untouched: a run with the binary
        # read back from disk took 1.70x a warm one; docs/benchmarks.md).
        subprocess.run(cmd, check=True, capture_output=True)
        ts, xgb1, xgbn = [], [], []
        for r in range(args.rounds):
            for who in (["treeserve", "xgboost"] if r % 2 == 0 else ["xgboost", "treeserve"]):
                if who == "treeserve":
                    t = time.perf_counter()
                    subprocess.run(cmd, check=True, capture_output=True)
                    ts.append(time.perf_counter() - t)
                else:
                    pred = work / f"{name}.xgboost.pred.f64"
                    res = json.loads(subprocess.run(
                        [sys.executable, str(HERE / "worker.py"), "xgboost", str(work), name, "--threads", str(threads),
                         "--batches", str(n), "--predictions", str(pred)],
                        check=True, capture_output=True, text=True).stdout)
                    for x in res["results"]:
                        (xgb1 if x["threads"] == 1 else xgbn).append(x["seconds"][0])
        ref = np.fromfile(work / f"{name}.xgboost.pred.f64", dtype="<f8")
        with open(outp, newline="") as f:
            rows = list(csv.reader(f))
        col = rows[0].index("p_1") if "p_1" in rows[0] else len(rows[0]) - 1
        got = np.array([float(r[col]) for r in rows[1:]])
        bad = int(np.sum(np.abs(got - ref) > 1e-6 * np.maximum(np.abs(ref), 1e-3))) if len(got) == n else n
        med = statistics.median
        out[n] = {"treeserve_s": med(ts), "xgboost_1t_s": med(xgb1), "xgboost_all_s": med(xgbn or xgb1),
                  "threads": threads, "rounds": args.rounds, "csv_mib": inp.stat().st_size / 2**20,
                  "rows_beyond_tolerance": bad}
        out[n]["ratio_all"] = out[n]["xgboost_all_s"] / out[n]["treeserve_s"]
        # The bar's ratio: against XGBoost's faster thread count (on a busy machine its
        # OpenMP pool can make all threads slower than one).
        out[n]["ratio"] = min(out[n]["xgboost_1t_s"], out[n]["xgboost_all_s"]) / out[n]["treeserve_s"]
        log(f"predict CSV {n} rows: treeserve {med(ts) * 1e3:.1f} ms, xgboost inplace_predict "
            f"{out[n]['xgboost_1t_s'] * 1e3:.1f} ms (1 thread), {out[n]['xgboost_all_s'] * 1e3:.1f} ms "
            f"({threads} threads), {out[n]['ratio']:.2f}× the faster, "
            f"{bad} rows beyond tolerance")
        for f in (inp, outp):
            f.unlink(missing_ok=True)
    return out


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def wrk(addr, path, bodies, connections, duration):
    env = {**os.environ, "WRK_PATH": path, "WRK_BODIES": str(bodies)}
    out = subprocess.run(["wrk", f"-t{1 if connections == 1 else 2}", f"-c{connections}", f"-d{duration}s",
                          "-s", str(HERE / "score_rows.lua"), f"http://{addr}{path}"],
                         capture_output=True, text=True, check=True, env=env).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("WRK_JSON "))
    return json.loads(line[len("WRK_JSON "):])


def http_runs(args, work, meta, treeserve, log):
    """One server with both models: POST /models/{iris,m2}/score, one row a request, rows
    cycling through many different ones; medians over rounds, targets alternated."""
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    reg = work / "http-registry"
    shutil.rmtree(reg, ignore_errors=True)
    shutil.copytree(ROOT / "models", reg, ignore=shutil.ignore_patterns(".lock", ".staging"))
    publish_m2(treeserve, work, reg)
    with open(ROOT / "models" / "data" / "iris.csv", newline="") as f:
        iris = [{k: float(v) for k, v in r.items() if k not in ("Id", "Species")} for r in csv.DictReader(f)]
    X, _ = models.data(meta["want"]["spec"], 10_000, seed=4300)
    bodies = {"iris": work / "iris.bodies", "m2": work / "m2.bodies"}
    bodies["iris"].write_text("".join(json.dumps(r) + "\n" for r in iris))
    bodies["m2"].write_text("".join(json.dumps({f"f{i}": float(v) for i, v in enumerate(r)}) + "\n" for r in X))
    proc = subprocess.Popen([str(treeserve), "serve", "--registry", str(reg), "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    results = {}
    try:
        m = re.search(r"http://(\S+)", proc.stdout.readline())
        if not m:
            raise SystemExit("treeserve serve did not print its address")
        addr = m.group(1)
        for name, path in bodies.items():
            req = urllib.request.Request(f"http://{addr}/models/{name}/score", path.read_text().splitlines()[0].encode(),
                                         {"content-type": "application/json"})
            json.load(urllib.request.urlopen(req, timeout=10))
        memory = resident(proc, addr, reg, treeserve, log)
        for c in (1, 64):
            for r in range(args.rounds):
                for name in (["m2", "iris"] if r % 2 == 0 else ["iris", "m2"]):
                    path = f"/models/{name}/score"
                    wrk(addr, path, bodies[name], c, 1)  # warm-up, not recorded
                    before = cpu_seconds(proc.pid)
                    res = wrk(addr, path, bodies[name], c, args.http_duration)
                    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
                    res["cpu_us_per_req"] = (cpu_seconds(proc.pid) - before) * 1e6 / max(res["requests"], 1)
                    res["errors"] = sum(res[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts",
                                                         "non_2xx"))
                    results.setdefault((c, name), []).append(res)
                    log(f"/score round {r + 1} {name:4} c={c:<2} {res['rps']:>7.0f} req/s  p50 {res['p50_us']} µs  "
                        f"p99 {res['p99_us']} µs  cpu {res['cpu_us_per_req']:.1f} µs/req  errors {res['errors']}")
    finally:
        proc.kill()
        proc.wait()
    out = {}
    for (c, name), runs in results.items():
        med = lambda k: statistics.median(x[k] for x in runs)  # noqa: E731
        base = results[(c, "iris")]
        out[f"{c}/{name}"] = {"connections": c, "model": name, "rounds": runs,
                              **{k: med(k) for k in ("rps", "p50_us", "p99_us", "cpu_us_per_req")},
                              "errors": sum(x["errors"] for x in runs),
                              "p50_ratio": statistics.median(x["p50_us"] / max(b["p50_us"], 1) for x, b in zip(runs, base))}
    out["memory"] = memory
    return out


def rss_anon_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise SystemExit(f"no RssAnon in /proc/{pid}/status")


def resident(proc, addr, reg, treeserve, log):
    """The memory bar: what serving m2 adds to the server's anonymous resident memory
    (this server, both models loaded and each asked once, against one serving IRIS alone)
    over m2's compact size (its nodes × 8 bytes: XGBoost's f32 nodes)."""
    listed = json.load(urllib.request.urlopen(f"http://{addr}/models", timeout=10))
    entries = listed["models"] if isinstance(listed, dict) else listed
    nodes = next(m["nodes"] for m in entries if m["name"] == "m2")
    both = rss_anon_kib(proc.pid)
    alone = subprocess.Popen([str(treeserve), "serve", "--registry", str(reg), "--listen", "127.0.0.1:0",
                              "--model", "iris"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        m = re.search(r"http://(\S+)", alone.stdout.readline())
        if not m:
            raise SystemExit("treeserve serve --model iris did not print its address")
        body = (ROOT / "models" / "data" / "iris.csv").read_text().splitlines()[1].split(",")[1:5]
        req = urllib.request.Request(
            f"http://{m.group(1)}/score",
            json.dumps(dict(zip(["SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm"],
                                map(float, body)))).encode(),
            {"content-type": "application/json"})
        json.load(urllib.request.urlopen(req, timeout=10))
        iris = rss_anon_kib(alone.pid)
    finally:
        alone.kill()
        alone.wait()
    compact = nodes * 8
    growth = (both - iris) * 1024
    log(f"memory: m2 adds {growth / 2**20:.1f} MiB resident ({both} KiB with both models, {iris} KiB with IRIS "
        f"alone); compact {nodes:,} nodes × 8 B = {compact / 2**20:.2f} MiB: {growth / compact:.2f}×")
    return {"nodes": nodes, "compact_bytes": compact, "rss_anon_kib_both": both, "rss_anon_kib_iris": iris,
            "growth_bytes": growth, "ratio": growth / compact}
