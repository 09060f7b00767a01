#!/usr/bin/env python3
"""Large ensembles side by side: treeserve against XGBoost, LightGBM, ONNX Runtime,
Treelite compiled with TL2cgen and (LightGBM's models) lleaves compiled with LLVM, on three
models the frameworks make (issue 21).

    python3 benches/ensembles.py [--rounds 3] [--rows 10000] [--quick]
                                 [--out docs/benchmarks.md] [--chart docs/ensembles.svg]
                                 [--json FILE] [--work DIR] [--csv-rows 10000,200000]
                                 [--http-duration 5] [--skip csv,http]

Installs the pinned frameworks (benches/ensembles/requirements.txt) into target/ensenv when
missing or changed and runs under it; builds the release binary and the in-process contender
(examples/ensemble_bench.rs); makes the models (benches/ensembles/models.py: m1 LightGBM
regression 100 trees × 31 leaves × 5 features; m2 XGBoost binary:logistic 500 trees,
max_depth 8, 30 features; m3 LightGBM binary 1,000 trees × 31 leaves × 15 features, 3 of them
categorical) and converts each with `treeserve import`, onnxmltools, treelite + TL2cgen and
(LightGBM's) lleaves.

Then, for several rounds, each contender in its own process (the order alternated between
rounds) predicts every one of ROWS unseen rows (none repeated within a timing) at batch sizes
1, 100 and ROWS, on one thread and on all threads. Reports medians over rounds of µs per call,
ns per tree·row and rows/s. Checks parity: treeserve's predictions equal the framework's on
every row (within the import's tolerance |a-b| <= 1e-6·max(|b|, 1e-3); exits 1 if not), and
reports ONNX Runtime's, TL2cgen's and lleaves' mismatches. Also times `treeserve predict` CSV → CSV with
m2 against XGBoost's inplace_predict from numpy, and POST /score with m2 next to the shipped
IRIS model under wrk (many different rows, 1 and 64 connections). With --out, replaces this
script's generated section of that markdown file (bars met / not met computed from the
figures); --chart writes an SVG of ns per tree·row. --quick: small models and rows, one round
(CI: every contender and the parity check, no figures worth quoting).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "benches" / "ensembles"
VENV = ROOT / "target" / "ensenv"
REQUIREMENTS = HERE / "requirements.txt"
TOL = 1e-6
FRAMEWORK = {"m1": "lightgbm", "m2": "xgboost", "m3": "lightgbm"}
CONTENDERS = ["treeserve", "xgboost", "lightgbm", "onnxruntime", "tl2cgen", "lleaves"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def ensure_venv():
    """Runs this script under target/ensenv, (re)installed when the requirements changed."""
    stamp = VENV / "requirements.txt"
    if not (stamp.exists() and stamp.read_bytes() == REQUIREMENTS.read_bytes()):
        log(f"installing {REQUIREMENTS.relative_to(ROOT)} into {VENV.relative_to(ROOT)}")
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "--no-cache-dir", "--disable-pip-version-check",
                        "-r", str(REQUIREMENTS)], check=True)
        shutil.copy(REQUIREMENTS, stamp)
    if Path(sys.prefix).resolve() != VENV.resolve():
        py = VENV / "bin" / "python"
        os.execv(str(py), [str(py), str(Path(__file__).resolve())] + sys.argv[1:])


def build():
    # One build serves both, as benches/load.py explains.
    subprocess.run(["cargo", "build", "--release", "--locked", "--quiet", "--bin", "treeserve", "--example",
                    "ensemble_bench"], cwd=ROOT, check=True)
    return ROOT / "target" / "release" / "treeserve", ROOT / "target" / "release" / "examples" / "ensemble_bench"


def run_json(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[:4]))}: exit {r.returncode}: {r.stderr.strip()[-800:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def measure(args, work, metas, bench_bin):
    """rounds × models × contenders, each one process; raw[(model, contender)] = [run, ...]
    and the contenders' predictions (from the first round)."""
    import numpy as np

    threads = os.cpu_count() or 1
    batches = ",".join(str(b) for b in args.batches)
    raw, preds, errors = {}, {}, {}
    for r in range(args.rounds):
        for name, meta in metas.items():
            order = [c for c in CONTENDERS if available(c, name, meta, work)]
            order = order if r % 2 == 0 else order[::-1]
            for c in order:
                pfile = work / f"{name}.{c}.pred.f64" if r == 0 else None
                if c == "treeserve":
                    cmd = [str(bench_bin), str(work / f"{name}.tsm"), str(work / f"{name}.rows.f64"),
                           "--threads", str(threads), "--reps", "1", "--batches", batches]
                else:
                    cmd = [sys.executable, str(HERE / "worker.py"), c, str(work), name, "--threads", str(threads),
                           "--batches", batches]
                if pfile:
                    cmd += ["--predictions", str(pfile)]
                try:
                    res = run_json(cmd)
                except RuntimeError as e:
                    errors[(name, c)] = str(e)
                    log(f"round {r + 1} {name} {c}: FAILED {e}")
                    continue
                raw.setdefault((name, c), []).append(res)
                if pfile:
                    p = np.fromfile(pfile, dtype="<f8")
                    if c == "treeserve":
                        p = p.reshape(meta["rows"], -1)[:, -1]
                    preds[(name, c)] = p
                short = ", ".join(
                    f"b{x['batch']}/t{x['threads']} {x['seconds'][0] * 1e9 / meta['rows'] / meta['trees']:.1f}"
                    for x in res["results"])
                log(f"round {r + 1} {name} {c:12} ns/tree·row: {short}")
    return raw, preds, errors


def available(c, name, meta, work):
    if c == "xgboost":
        return FRAMEWORK[name] == "xgboost"
    if c == "lightgbm":
        return FRAMEWORK[name] == "lightgbm"
    if c == "onnxruntime":
        return (work / f"{name}.onnx").exists() and not meta["onnx_error"]
    if c == "tl2cgen":
        return (work / f"{name}.so").exists() and not meta["tl2cgen_error"]
    if c == "lleaves":
        return (work / f"{name}.lleaves.o").exists() and not meta.get("lleaves_error")
    return True


def summarize(raw, metas):
    """cells[(model, contender, batch, threads)] = {us_per_call, ns_per_tree_row, rows_per_s}."""
    cells = {}
    for (name, c), runs in raw.items():
        m = metas[name]
        per = {}
        for run in runs:
            for x in run["results"]:
                per.setdefault((x["batch"], x["threads"]), []).append(statistics.median(x["seconds"]))
        for (b, t), secs in per.items():
            s = statistics.median(secs)
            calls = -(-m["rows"] // b)
            cells[(name, c, b, t)] = {"seconds": s, "us_per_call": s / calls * 1e6,
                                      "ns_per_tree_row": s / m["rows"] / m["trees"] * 1e9,
                                      "rows_per_s": m["rows"] / s, "rounds": len(secs)}
    return cells


def parity(preds, metas):
    """Per model: treeserve against the framework (must hold), ONNX Runtime, TL2cgen and
    lleaves against the framework (reported)."""
    import numpy as np

    out = {}
    for name in metas:
        ref = preds.get((name, FRAMEWORK[name]))
        if ref is None:
            continue
        for c in ("treeserve", "onnxruntime", "tl2cgen", "lleaves"):
            p = preds.get((name, c))
            if p is None:
                continue
            diff = np.abs(p - ref)
            bad = diff > TOL * np.maximum(np.abs(ref), 1e-3)
            out[(name, c)] = {"rows": int(len(ref)), "bit_equal": int(np.sum(p.view(np.uint64) == ref.view(np.uint64))),
                              "beyond_tolerance": int(bad.sum()), "max_abs": float(diff.max()),
                              "first_bad": int(np.argmax(bad)) if bad.any() else None}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rows", type=int, default=10_000, help="benchmark rows per model (the largest batch)")
    ap.add_argument("--quick", action="store_true", help="small models, 1,000 rows, one round, short HTTP runs")
    ap.add_argument("--models", default="m1,m2,m3")
    ap.add_argument("--out", type=Path, help="replace this script's generated section of this markdown file")
    ap.add_argument("--chart", type=Path, help="write the SVG chart here")
    ap.add_argument("--json", type=Path, help="write the raw figures here")
    ap.add_argument("--work", type=Path, help="where models and rows go (default target/ensembles/{full,quick})")
    ap.add_argument("--csv-rows", default="10000,200000", help="row counts of the predict CSV → CSV runs")
    ap.add_argument("--http-duration", type=int, default=5, help="seconds per measured wrk run")
    ap.add_argument("--skip", default="", help="comma-separated parts to leave out: csv, http")
    ap.add_argument("--from-json", type=Path, help="measure nothing: write --out and --chart again from a --json file")
    args = ap.parse_args()
    ensure_venv()
    sys.path.insert(0, str(HERE))
    import models
    import report
    import serving

    if args.from_json:
        return rerender(args, report)

    if args.quick:
        args.rounds, args.rows, args.csv_rows, args.http_duration = 1, min(args.rows, 1000), "2000", 1
    args.batches = [1, 100, args.rows]
    skip = set(filter(None, args.skip.split(",")))
    work = args.work or ROOT / "target" / "ensembles" / ("quick" if args.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    treeserve, bench_bin = build()
    metas = {n: models.make(n, work, quick=args.quick, rows=args.rows, treeserve=treeserve, log=log)
             for n in args.models.split(",")}
    load_before = os.getloadavg()
    raw, preds, errors = measure(args, work, metas, bench_bin)
    cells = summarize(raw, metas)
    par = parity(preds, metas)
    csv = None if "csv" in skip or "m2" not in metas else serving.csv_runs(args, work, metas["m2"], treeserve, log)
    http = None if "http" in skip or "m2" not in metas else serving.http_runs(args, work, metas["m2"], treeserve, log)
    versions = report.versions(treeserve)
    versions["machine"] += (f"; load average (1 min) {load_before[0]:.1f} before the timings, "
                            f"{os.getloadavg()[0]:.1f} at the end")
    md = report.markdown(args, metas, cells, par, csv, http, errors, versions, raw)
    print(md)
    if args.out:
        report.write_section(args.out, md)
    if args.chart:
        args.chart.write_text(report.chart(metas, cells, args.rows))
    if args.json:
        args.json.write_text(json.dumps({
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "versions": versions, "models": metas,
            "runs": [{"model": n, "contender": c, "rounds": v} for (n, c), v in raw.items()],
            "cells": [{"model": n, "contender": c, "batch": b, "threads": t, **v} for (n, c, b, t), v in cells.items()],
            "parity": [{"model": n, "contender": c, **v} for (n, c), v in par.items()],
            "csv": csv, "http": http, "errors": [{"model": n, "contender": c, "error": e} for (n, c), e in errors.items()],
        }, indent=1))
    log(f"done in {time.monotonic() - t0:.0f} s")
    failed = [f"{n}: treeserve differs from {FRAMEWORK[n]} on {v['beyond_tolerance']} of {v['rows']} rows "
              f"(first row {v['first_bad']}, max |a-b| {v['max_abs']:.3g})"
              for (n, c), v in par.items() if c == "treeserve" and v["beyond_tolerance"]]
    failed += [f"{n}: treeserve parity not checked (no predictions)" for n in metas
               if (n, "treeserve") not in par]
    failed += [f"{n} {c}: {e}" for (n, c), e in errors.items() if c in ("treeserve", FRAMEWORK[n])]
    if failed:
        raise SystemExit("parity failed:\n" + "\n".join(failed))


def rerender(args, report):
    """The report again from a --json file (e.g. after a change of its layout)."""
    raw = json.loads(args.from_json.read_text())
    a = argparse.Namespace(**{**raw["args"], "out": args.out, "chart": args.chart})
    metas = raw["models"]
    cells = {(c["model"], c["contender"], c["batch"], c["threads"]): c for c in raw["cells"]}
    par = {(p["model"], p["contender"]): p for p in raw["parity"]}
    errors = {(e["model"], e["contender"]): e["error"] for e in raw["errors"]}
    runs = {(r["model"], r["contender"]): r["rounds"] for r in raw["runs"]}
    md = report.markdown(a, metas, cells, par, raw["csv"], raw["http"], errors, raw["versions"], runs)
    print(md)
    if args.out:
        report.write_section(args.out, md)
    if args.chart:
        args.chart.write_text(report.chart(metas, cells, a.rows))


if __name__ == "__main__":
    main()
