#!/usr/bin/env python3
"""Load benchmark: treeserve's /score against the bare-hyper floor, side by side, with wrk.

    python3 benches/load.py [--rounds 5] [--duration 10] [--connections 1,64] [--out FILE]
                            [--compare floor|metrics|request-logs|v2|binary --other PATH]

--compare picks the pair of servers measured side by side:
  floor         treeserve (defaults) against the bare-hyper floor server (benches/floor_server.rs);
  metrics       treeserve (metrics and drift on, the default) against treeserve with
                TREESERVE_NO_METRICS=true (the baseline);
  request-logs  treeserve logging every request (TREESERVE_LOG=info,treeserve::request=debug,
                stderr to /dev/null) against treeserve's default logging (the baseline);
  v2            on one treeserve: V2 infer with one row (label only, and label + probabilities),
                a 1,000-row V2 batch and a 1,000-row /score batch, against /score with one row;
  binary        this tree's treeserve against another treeserve binary (--other, e.g. a
                release build of an earlier commit in a git worktree): a regression check.

Builds both release binaries, starts them on loopback (port 0), and for each scenario runs
several rounds, each round running the same wrk scenario against each server back to back
(alternating which goes first). Reports
medians over rounds of req/s, p50 / p99 / p99.9 latency, the server's CPU time per request
(utime + stime from /proc/PID/stat, before and after each run) and idle RSS, and the ratio
of treeserve to the floor. Needs wrk (Debian package `wrk`).
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "benches" / "score.lua"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def build():
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "--bin", "treeserve", "--example", "floor"],
        cwd=ROOT,
        check=True,
    )
    target = ROOT / "target" / "release"
    return target / "treeserve", target / "examples" / "floor"


def start(cmd, env=None):
    env = {**os.environ, **(env or {})}
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    line = proc.stdout.readline()
    m = re.search(r"http://(\S+)", line)
    if not m:
        proc.kill()
        raise SystemExit(f"{cmd[0]} did not print its address: {line!r}")
    return proc, m.group(1)


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def wrk(addr, connections, duration, path="/score", body=None):
    threads = 1 if connections == 1 else 2
    env = {**os.environ, "WRK_PATH": path}
    if body is not None:
        env["WRK_BODY"] = body
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "-s", str(LUA), f"http://{addr}{path}"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    line = next(l for l in out.splitlines() if l.startswith("WRK_JSON "))
    return json.loads(line[len("WRK_JSON "):])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=10, help="seconds per measured wrk run (each follows a 1 s warm-up)")
    ap.add_argument("--connections", default="1,64")
    ap.add_argument("--out", type=Path, help="write the markdown report here")
    ap.add_argument("--compare", choices=["floor", "metrics", "request-logs", "v2", "binary"], default="floor")
    ap.add_argument("--only", help="comma-separated target names to keep (the baseline is always kept)")
    ap.add_argument("--other", type=Path, help="the other treeserve binary for --compare binary")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    treeserve, floor = build()
    artifact = ROOT / "models" / "iris" / "versions" / "1" / "model.tsm"
    serve = [str(treeserve), "serve", "--registry", "models", "--listen", "127.0.0.1:0"]
    # name -> (command, extra environment[, path, body, rows per request]); the last one is
    # the baseline of the ratios. Targets with the same command and environment share one
    # server process.
    row = [6.6, 3, 4.4, 1.4]
    v2 = lambda rows, outputs: json.dumps(
        {"inputs": [{"name": "input", "shape": [rows, 4], "datatype": "FP32", "data": row * rows}], **outputs}
    )
    label_only = {"outputs": [{"name": "label"}]}
    score_rows = lambda rows: json.dumps(
        [dict(zip(["SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm"], row))] * rows
    )
    specs = {
        "floor": {"treeserve": (serve, {}), "floor": ([str(floor), str(artifact), "127.0.0.1:0"], {})},
        "metrics": {
            "metrics on": (serve, {}),
            "metrics off": (serve, {"TREESERVE_NO_METRICS": "true"}),
        },
        "request-logs": {
            "request logs": (serve, {"TREESERVE_LOG": "info,treeserve::request=debug"}),
            "default logs": (serve, {}),
        },
        "binary": {
            "this tree": (serve, {}),
            "other": ([str(args.other)] + serve[1:], {}),
        },
        "v2": {
            "v2 label": (serve, {}, "/v2/models/iris/infer", v2(1, label_only), 1),
            "v2 label+proba": (serve, {}, "/v2/models/iris/infer", v2(1, {}), 1),
            "v2 1000 rows": (serve, {}, "/v2/models/iris/infer", v2(1000, label_only), 1000),
            "score 1000 rows": (serve, {}, "/score", score_rows(1000), 1000),
            "/score": (serve, {}, "/score", None, 1),
        },
    }[args.compare]
    if args.compare == "binary" and not (args.other and args.other.exists()):
        raise SystemExit("--compare binary needs --other PATH to a treeserve binary")
    targets = {name: (list(t) + ["/score", None, 1][len(t) - 2 :]) for name, t in specs.items()}
    if args.only:
        keep = set(args.only.split(",")) | {list(targets)[-1]}
        targets = {n: t for n, t in targets.items() if n in keep}
    processes = {}
    for cmd, env, *_ in targets.values():
        key = (tuple(cmd), tuple(sorted(env.items())))
        if key not in processes:
            processes[key] = start(cmd, env)
    servers = {
        name: processes[(tuple(cmd), tuple(sorted(env.items())))] for name, (cmd, env, *_) in targets.items()
    }
    baseline = list(servers)[-1]
    try:
        time.sleep(0.5)
        idle_rss = {name: rss_kib(p.pid) for name, (p, _) in servers.items()}
        # Every target answers 200 before anything is measured.
        for name, (_, _, path, body, _) in targets.items():
            check = wrk(servers[name][1], 1, 1, path, body)
            if check["non_2xx"] or not check["requests"]:
                raise SystemExit(f"{name}: {path} does not answer 200: {check}")
        conns = [int(c) for c in args.connections.split(",")]
        results = {(name, c): [] for name in servers for c in conns}
        # Scenario by scenario (switching between 64 and 1 connections disturbs the next
        # few seconds of a 1-connection run), rounds within, alternating which server goes
        # first.
        for c in conns:
            for r in range(args.rounds):
                order = list(servers) if r % 2 == 0 else list(reversed(list(servers)))
                for name in order:
                    proc, addr = servers[name]
                    _, _, path, body, rows = targets[name]
                    wrk(addr, c, 1, path, body)  # warm-up, not recorded: settles the previous scenario
                    before = cpu_seconds(proc.pid)
                    res = wrk(addr, c, args.duration, path, body)
                    res["rows_per_s"] = res["requests"] * rows / (res["duration_us"] / 1e6)
                    res["cpu_us_per_req"] = (cpu_seconds(proc.pid) - before) * 1e6 / max(res["requests"], 1)
                    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
                    res["errors"] = sum(res[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts", "non_2xx"))
                    results[(name, c)].append(res)
                    print(
                        f"round {r + 1} {name:15} c={c:<3} {res['rps']:>9.0f} req/s  p50 {res['p50_us']:>5} µs  "
                        f"p99 {res['p99_us']:>5} µs  cpu {res['cpu_us_per_req']:.1f} µs/req  errors {res['errors']}",
                        file=sys.stderr,
                    )
        load_rss = {name: rss_kib(p.pid) for name, (p, _) in servers.items()}
    finally:
        for p, _ in processes.values():
            p.kill()
            p.wait()

    med = lambda name, c, k: statistics.median(x[k] for x in results[(name, c)])
    lines = [
        f"Medians of {args.rounds} rounds, {args.duration} s per run, wrk and both servers on one "
        f"{os.cpu_count()}-core machine over loopback; one IRIS row per POST /score unless the target says otherwise; "
        f"ratios are medians of the per-round ratios to {baseline}.",
        "",
        f"| connections | target | req/s | rows/s | p50 µs | p99 µs | p99.9 µs | server CPU µs/req | errors | req/s ÷ {baseline} |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in conns:
        for name in servers:
            errors = sum(x["errors"] for x in results[(name, c)])
            # Rounds are paired (both servers back to back): the ratio is the median of the
            # per-round ratios, which cancels drift in the machine's speed between rounds.
            ratio = statistics.median(
                x["rps"] / f["rps"] for x, f in zip(results[(name, c)], results[(baseline, c)])
            )
            lines.append(
                f"| {c} | {name} | {med(name, c, 'rps'):.0f} | {med(name, c, 'rows_per_s'):.0f} | {med(name, c, 'p50_us'):.0f} | "
                f"{med(name, c, 'p99_us'):.0f} | {med(name, c, 'p999_us'):.0f} | "
                f"{med(name, c, 'cpu_us_per_req'):.2f} | {errors} | {ratio:.3f} |"
            )
    lines += [
        "",
        "| server | idle RSS | RSS after load |",
        "|---|---|---|",
    ]
    for name in servers:
        lines.append(f"| {name} | {idle_rss[name] / 1024:.1f} MiB | {load_rss[name] / 1024:.1f} MiB |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
