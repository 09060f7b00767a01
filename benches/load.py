#!/usr/bin/env python3
"""Load benchmark: treeserve's /score against the bare-hyper floor, side by side, with wrk.

    python3 benches/load.py [--rounds 5] [--duration 10] [--connections 1,16,64,256]
                            [--out docs/benchmarks.md] [--chart docs/benchmarks.svg] [--json FILE]
                            [--compare suite|floor|floor-flat|metrics|request-logs|v2|clients|grpc|keys|binary
                             --other PATH]
                            [--build plain|pgo]

--compare picks the servers and scenarios measured side by side:
  suite         (the default) treeserve against the floor: /score with one row at 1, 16, 64
                and 256 connections, /score with 100-row batches and V2 infer with one row at
                64 connections. With --out, replaces the generated section of that markdown
                file; with --chart, writes an SVG of throughput and latency against connections;
  floor         treeserve (defaults) against the bare-hyper floor server (benches/floor_server.rs);
  floor-flat    treeserve against the floor writing each response with one plain send, as
                treeserve does (FLOOR_FLATTEN=1, hyper's writev(false)): what treeserve's own
                work costs, without the write strategy the floor lacks;
  metrics       treeserve (metrics and drift on, the default) against treeserve with
                TREESERVE_NO_METRICS=true (the baseline);
  request-logs  treeserve logging every request (TREESERVE_LOG=info,treeserve::request=debug,
                stderr to /dev/null) against treeserve's default logging (the baseline);
  v2            on one treeserve: V2 infer with one row (label only, and label + probabilities),
                a 1,000-row V2 batch and a 1,000-row /score batch, against /score with one row;
  clients       on one treeserve: one row through each other client's contract (MLflow's
                /invocations as dataframe_split, dataframe_records and CSV; KServe V1
                instances) against /score with one row (the baseline);
  grpc          on one treeserve with --grpc-listen: one row through V2 ModelInfer over gRPC
                (benches/grpc_load.rs, a Rust closed-loop client over hyper's HTTP/2, as
                tritonclient.grpc sends it: FP32 in raw_input_contents, both outputs) and
                V2 infer over HTTP/1.1 (both outputs) against /score with one row;
  tls           treeserve serving HTTPS (--tls-cert/--tls-key, an ECDSA P-256 certificate made
                with openssl) against plain HTTP (the baseline): /score with one row on
                keep-alive connections (what encryption costs a request), and with a new
                connection per request (Connection: close: what a handshake costs);
  feedback      treeserve remembering its answers for labels (--feedback-window 100000; every
                /score answer gets a generated request id and is remembered) against
                treeserve without (the baseline);
  shadow        treeserve scoring every request again with a shadow version (--shadow staging:
                the shipped IRIS model published again as version 2 under `staging` in a copy
                of the registry, so the shadow does production's work) against the same
                registry without (the baseline);
  keys          treeserve requiring API keys (--api-keys-file; every request sends a valid
                `Authorization: Bearer` key) against treeserve without (the baseline): what
                checking a key costs;
  binary        this tree's treeserve against another treeserve binary (--other, e.g. a
                release build of an earlier commit in a git worktree): a regression check.

Builds both release binaries (--build plain, the default: cargo build --release;
--build pgo: both profile-guided, with deploy/pgo.py's training load), starts them on
loopback (port 0), and for each scenario runs several rounds, each round running the same
wrk scenario against each server back to back (alternating which goes first; gRPC
targets run benches/grpc_load.rs the same way). Reports
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


def build(kind):
    """The two release binaries: plain `cargo build --release`, or both profile-guided
    (deploy/pgo.py, trained on this benchmark's scenarios)."""
    if kind == "pgo":
        sys.path.insert(0, str(ROOT / "deploy"))
        import pgo

        return tuple(pgo.build(with_floor=True))
    # One build: the dev-dependencies an example brings in change no feature of the
    # library's dependencies (Cargo.toml; .ci/run checks it), so the binary built beside the
    # example is the one `cargo run --release` and `cargo install` build, reused.
    subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "treeserve", "--example", "floor"],
                   cwd=ROOT, check=True)
    target = ROOT / "target" / "release"
    return target / "treeserve", target / "examples" / "floor"


GRPC_LOAD = ROOT / "target" / "release" / "examples" / "grpc_load"
# Each server's gRPC address (with --grpc-listen), by its HTTP address.
GRPC_ADDRS = {}
# The addresses that serve HTTPS.
HTTPS = set()


def tls_files():
    """A CA-signed ECDSA P-256 certificate for 127.0.0.1, made with openssl in target/bench-tls."""
    d = ROOT / "target" / "bench-tls"
    d.mkdir(parents=True, exist_ok=True)
    run = lambda *a: subprocess.run(["openssl", *a], cwd=d, check=True, capture_output=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=bench")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return ["--tls-cert", str(d / "server.pem"), "--tls-key", str(d / "server.key")]


def shadow_registry(treeserve):
    """A copy of models/ where the IRIS model is also version 2, aliased `staging`."""
    reg = ROOT / "target" / "bench-shadow-registry"
    shutil.rmtree(reg, ignore_errors=True)
    shutil.copytree(ROOT / "models", reg)
    artifact = ROOT / "models" / "iris" / "versions" / "1" / "model.tsm"
    subprocess.run([str(treeserve), "publish", str(artifact), "--registry", str(reg), "--alias", "staging"],
                   check=True, capture_output=True)
    return reg


def grpc_load(addr, connections, duration):
    """benches/grpc_load.rs against the gRPC port of the server at HTTP address `addr`."""
    cmd = [str(GRPC_LOAD), GRPC_ADDRS[addr], str(connections), str(duration)]
    if os.environ.get("WRK_AUTH"):
        cmd.append(os.environ["WRK_AUTH"])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("WRK_JSON "))
    return json.loads(line[len("WRK_JSON "):])


def load(addr, connections, duration, path="/score", body=None):
    """One closed-loop run: wrk, or for the path `grpc` benches/grpc_load.rs."""
    if path == "grpc":
        return grpc_load(addr, connections, duration)
    return wrk(addr, connections, duration, path, body)


def start(cmd, env=None):
    env = {**os.environ, **(env or {})}
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    line = proc.stdout.readline()
    m = re.search(r"https?://(\S+)", line)
    if not m:
        proc.kill()
        raise SystemExit(f"{cmd[0]} did not print its address: {line!r}")
    if "https://" in line:
        HTTPS.add(m.group(1))
    g = re.search(r"grpc://(\S+)", line)
    if g:
        GRPC_ADDRS[m.group(1)] = g.group(1)
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
    if isinstance(body, tuple):  # (content type, body)
        env["WRK_CONTENT_TYPE"], body = body
    if isinstance(body, dict):  # {"close": True}: a new connection per request
        env["WRK_CLOSE"], body = "1", None
    if body is not None:
        env["WRK_BODY"] = body
    scheme = "https" if addr in HTTPS else "http"
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "-s", str(LUA), f"{scheme}://{addr}{path}"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    line = next(l for l in out.splitlines() if l.startswith("WRK_JSON "))
    return json.loads(line[len("WRK_JSON "):])


SCORE_ROW = [6.6, 3, 4.4, 1.4]
FEATURES = ["SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm"]


def v2_body(rows, outputs):
    tensor = {"name": "input", "shape": [rows, 4], "datatype": "FP32", "data": SCORE_ROW * rows}
    return json.dumps({"inputs": [tensor], **outputs})


def score_rows(rows):
    return json.dumps([dict(zip(FEATURES, SCORE_ROW))] * rows)


LABEL_ONLY = {"outputs": [{"name": "label"}]}
V2_PATH = "/v2/models/iris/infer"


# The key every request sends (`Authorization: Bearer`; ignored by a server without keys).
BENCH_KEY = "bench-key-0123456789abcdef0123456789"


def keys_file():
    """A keys file with BENCH_KEY among 20 keys (each one is compared on every request)."""
    path = ROOT / "target" / "bench-keys.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    others = [f"other-key-{i:02}-0123456789abcdef0123" for i in range(19)]
    path.write_text("\n".join(others + [BENCH_KEY + " score"]) + "\n")
    os.environ["WRK_AUTH"] = BENCH_KEY
    return path


def plan(args, treeserve, floor):
    """Servers (name -> (command, environment)) and scenarios: (title, connection counts,
    targets: name -> (server, path, body, rows per request)); each scenario's last target is
    the baseline of its ratios."""
    artifact = ROOT / "models" / "iris" / "versions" / "1" / "model.tsm"
    serve = [str(treeserve), "serve", "--registry", "models", "--listen", "127.0.0.1:0"]
    conns = [int(c) for c in args.connections.split(",")] if args.connections else None
    one = lambda server: (server, "/score", None, 1)
    if args.compare == "shadow":
        reg = shadow_registry(treeserve)
        served = [str(treeserve), "serve", "--registry", str(reg), "--listen", "127.0.0.1:0"]
        servers = {"shadow on": (served + ["--shadow", "staging"], {}), "shadow off": (served, {})}
        return servers, [("--compare shadow", conns or [1, 64], {"shadow on": one("shadow on"), "shadow off": one("shadow off")})]
    if args.compare == "suite":
        servers = {"treeserve": (serve, {}), "floor": ([str(floor), str(artifact), "127.0.0.1:0"], {})}
        pair = lambda path, body, rows: {s: (s, path, body, rows) for s in servers}
        return servers, [
            ("/score, one row", conns or [1, 16, 64, 256], pair("/score", None, 1)),
            ("/score, 100-row batch", [64], pair("/score", score_rows(100), 100)),
            ("V2 infer, one row", [64], pair(V2_PATH, v2_body(1, LABEL_ONLY), 1)),
        ]
    servers, targets = {
        "floor": (
            {"treeserve": (serve, {}), "floor": ([str(floor), str(artifact), "127.0.0.1:0"], {})},
            {"treeserve": one("treeserve"), "floor": one("floor")},
        ),
        "floor-flat": (
            {
                "treeserve": (serve, {}),
                "flat floor": ([str(floor), str(artifact), "127.0.0.1:0"], {"FLOOR_FLATTEN": "1"}),
            },
            {"treeserve": one("treeserve"), "flat floor": one("flat floor")},
        ),
        "metrics": (
            {"metrics on": (serve, {}), "metrics off": (serve, {"TREESERVE_NO_METRICS": "true"})},
            {"metrics on": one("metrics on"), "metrics off": one("metrics off")},
        ),
        "request-logs": (
            {
                "request logs": (serve, {"TREESERVE_LOG": "info,treeserve::request=debug"}),
                "default logs": (serve, {}),
            },
            {"request logs": one("request logs"), "default logs": one("default logs")},
        ),
        "clients": (
            {"treeserve": (serve, {})},
            {
                "invocations split": ("treeserve", "/invocations", json.dumps(
                    {"dataframe_split": {"columns": FEATURES, "data": [SCORE_ROW]}}), 1),
                "invocations records": ("treeserve", "/invocations", json.dumps(
                    {"dataframe_records": [dict(zip(FEATURES, SCORE_ROW))]}), 1),
                "invocations csv": ("treeserve", "/invocations", (
                    "text/csv", ",".join(FEATURES) + "\n" + ",".join(map(str, SCORE_ROW)) + "\n"), 1),
                "v1 instances": ("treeserve", "/v1/models/iris:predict", json.dumps({"instances": [SCORE_ROW]}), 1),
                "/score": one("treeserve"),
            },
        ),
        "grpc": (
            {"treeserve": (serve + ["--grpc-listen", "127.0.0.1:0"], {})},
            {
                "grpc ModelInfer": ("treeserve", "grpc", None, 1),
                "v2 http": ("treeserve", V2_PATH, v2_body(1, {}), 1),
                "/score": one("treeserve"),
            },
        ),
        "tls": (
            {"tls": (serve + tls_files(), {}), "plain": (serve, {})},
            {
                "tls new conn": ("tls", "/score", {"close": True}, 1),
                "plain new conn": ("plain", "/score", {"close": True}, 1),
                "tls": one("tls"),
                "plain": one("plain"),
            },
        ),
        "feedback": (
            {"feedback on": (serve + ["--feedback-window", "100000"], {}), "feedback off": (serve, {})},
            {"feedback on": one("feedback on"), "feedback off": one("feedback off")},
        ),
        "keys": (
            {"keys": (serve + ["--api-keys-file", str(keys_file())], {}), "no keys": (serve, {})},
            {"keys": one("keys"), "no keys": one("no keys")},
        ),
        "binary": (
            {"this tree": (serve, {}), "other": ([str(args.other)] + serve[1:], {})},
            {"this tree": one("this tree"), "other": one("other")},
        ),
        "v2": (
            {"treeserve": (serve, {})},
            {
                "v2 label": ("treeserve", V2_PATH, v2_body(1, LABEL_ONLY), 1),
                "v2 label+proba": ("treeserve", V2_PATH, v2_body(1, {}), 1),
                "v2 1000 rows": ("treeserve", V2_PATH, v2_body(1000, LABEL_ONLY), 1000),
                "score 1000 rows": ("treeserve", "/score", score_rows(1000), 1000),
                "/score": one("treeserve"),
            },
        ),
    }[args.compare]
    if args.only:
        keep = set(args.only.split(",")) | {list(targets)[-1]}
        targets = {n: t for n, t in targets.items() if n in keep}
    return servers, [(f"--compare {args.compare}", conns or [1, 64], targets)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=10, help="seconds per measured wrk run (each follows a 1 s warm-up)")
    ap.add_argument("--connections", help="comma-separated connection counts (default: the scenario's)")
    ap.add_argument("--out", type=Path, help="write the markdown report here (for --compare suite: "
                    "replace the generated section of this file, e.g. docs/benchmarks.md)")
    ap.add_argument("--chart", type=Path, help="--compare suite: write the SVG chart here")
    ap.add_argument("--json", type=Path, help="write every round's raw figures here")
    ap.add_argument("--compare", choices=["suite", "floor", "floor-flat", "metrics", "request-logs", "v2", "clients", "grpc", "tls", "feedback", "shadow", "keys",
                             "binary"],
                    default="suite")
    ap.add_argument("--only", help="comma-separated target names to keep (the baseline is always kept)")
    ap.add_argument("--build", choices=["plain", "pgo"], default="plain",
                    help="how both servers are built: plain release builds, or profile-guided (deploy/pgo.py)")
    ap.add_argument("--other", type=Path, help="the other treeserve binary for --compare binary")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    if args.compare == "binary" and not (args.other and args.other.exists()):
        raise SystemExit("--compare binary needs --other PATH to a treeserve binary")
    treeserve, floor = build(args.build)
    if args.compare in ("grpc",):
        subprocess.run(["cargo", "build", "--release", "--locked", "--example", "grpc_load"], cwd=ROOT, check=True)
    servers, scenarios = plan(args, treeserve, floor)
    processes = {name: start(cmd, env) for name, (cmd, env) in servers.items()}
    results = {}
    try:
        time.sleep(0.5)
        idle_rss = {name: rss_kib(p.pid) for name, (p, _) in processes.items()}
        # Every target answers 200 before anything is measured.
        for _, _, targets in scenarios:
            for name, (server, path, body, _) in targets.items():
                check = load(processes[server][1], 1, 1, path, body)
                if check["non_2xx"] or not check["requests"]:
                    raise SystemExit(f"{name}: {path} does not answer 200: {check}")
        # Scenario by scenario (switching between 64 and 1 connections disturbs the next
        # few seconds of a 1-connection run), rounds within, alternating which target goes
        # first.
        for title, conns, targets in scenarios:
            for c in conns:
                for r in range(args.rounds):
                    order = list(targets) if r % 2 == 0 else list(reversed(list(targets)))
                    for name in order:
                        server, path, body, rows = targets[name]
                        proc, addr = processes[server]
                        load(addr, c, 1, path, body)  # warm-up, not recorded: settles the previous run
                        before = cpu_seconds(proc.pid)
                        res = load(addr, c, args.duration, path, body)
                        res["rows_per_s"] = res["requests"] * rows / (res["duration_us"] / 1e6)
                        res["cpu_us_per_req"] = (cpu_seconds(proc.pid) - before) * 1e6 / max(res["requests"], 1)
                        res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
                        res["errors"] = sum(
                            res[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts", "non_2xx")
                        )
                        results.setdefault((title, name, c), []).append(res)
                        print(
                            f"{title} round {r + 1} {name:15} c={c:<3} {res['rps']:>9.0f} req/s  "
                            f"p50 {res['p50_us']:>5} µs  p99 {res['p99_us']:>5} µs  "
                            f"cpu {res['cpu_us_per_req']:.1f} µs/req  errors {res['errors']}",
                            file=sys.stderr,
                        )
        load_rss = {name: rss_kib(p.pid) for name, (p, _) in processes.items()}
    finally:
        for p, _ in processes.values():
            p.kill()
            p.wait()

    summary = summarize(args, scenarios, results)
    lines = [
        f"Medians of {args.rounds} rounds, {args.duration} s per run, wrk and the servers on one "
        f"{os.cpu_count()}-core machine over loopback ({time.strftime('%Y-%m-%d')}); ratios are medians of the "
        "per-round ratios to the scenario's last target (rounds are paired: both back to back). "
        + ("Both servers are profile-guided builds (`--build pgo`, deploy/pgo.py)."
           if args.build == "pgo" else "Both servers are plain release builds."),
        "",
    ]
    for title, conns, targets in scenarios:
        baseline = list(targets)[-1]
        lines += [
            f"**{title}**",
            "",
            f"| connections | target | req/s | rows/s | p50 µs | p99 µs | p99.9 µs | server CPU µs/req | errors "
            f"| req/s ÷ {baseline} | CPU ÷ {baseline} | p50 ÷ {baseline} |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c in conns:
            for name in targets:
                m = summary[(title, name, c)]
                lines.append(
                    f"| {c} | {name} | {m['rps']:.0f} | {m['rows_per_s']:.0f} | {m['p50_us']:.0f} | "
                    f"{m['p99_us']:.0f} | {m['p999_us']:.0f} | {m['cpu_us_per_req']:.2f} | {m['errors']} | "
                    f"{m['rps_ratio']:.3f} | {m['cpu_ratio']:.3f} | {m['p50_ratio']:.3f} |"
                )
        lines.append("")
    lines += ["| server | idle RSS | RSS after all runs |", "|---|---|---|"]
    for name in processes:
        lines.append(f"| {name} | {idle_rss[name] / 1024:.1f} MiB | {load_rss[name] / 1024:.1f} MiB |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.json:
        raw = [{"scenario": t, "target": n, "connections": c, "rounds": v} for (t, n, c), v in results.items()]
        args.json.write_text(json.dumps({"rounds": raw, "idle_rss_kib": idle_rss, "load_rss_kib": load_rss}, indent=1))
    if args.out:
        write_section(args.out, report, args.build) if args.compare == "suite" else args.out.write_text(report)
    if args.chart and args.compare == "suite":
        title, conns, targets = scenarios[0]
        args.chart.write_text(chart({n: [summary[(title, n, c)] for c in conns] for n in targets}, conns))
        print(f"chart written to {args.chart}", file=sys.stderr)


def summarize(args, scenarios, results):
    """Medians over rounds, and medians of the per-round ratios to the baseline."""
    out = {}
    for title, conns, targets in scenarios:
        baseline = list(targets)[-1]
        for c in conns:
            base = results[(title, baseline, c)]
            for name in targets:
                runs = results[(title, name, c)]
                med = lambda k: statistics.median(x[k] for x in runs)
                ratio = lambda k: statistics.median(x[k] / max(b[k], 1e-9) for x, b in zip(runs, base))
                out[(title, name, c)] = {
                    **{k: med(k) for k in ("rps", "rows_per_s", "p50_us", "p99_us", "p999_us", "cpu_us_per_req")},
                    "errors": sum(x["errors"] for x in runs),
                    "rps_ratio": ratio("rps"),
                    "cpu_ratio": ratio("cpu_us_per_req"),
                    "p50_ratio": ratio("p50_us"),
                }
    return out


def write_section(path, report, build):
    """Replaces the generated section of `path` for this build (between its markers), or
    appends one."""
    name = "benches/load.py" if build == "plain" else f"benches/load.py --build {build}"
    begin, end = (f"<!-- {name}: generated section {w} -->" for w in ("begins", "ends"))
    text = path.read_text() if path.exists() else ""
    section = f"{begin}\n{report}{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end) :]
    else:
        text = text + ("\n" if text else "") + section + "\n"
    path.write_text(text)


def chart(series, conns):
    """An SVG with two panels against connections: throughput (req/s) and latency
    percentiles (p50, p99, p99.9, log scale), one colour per server."""
    import math

    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    W, H, P = 900, 380, 60  # size, panel padding
    pw = (W - 3 * P) / 2
    ph = H - 2 * P
    xs = lambda i: P + (pw * i / max(len(conns) - 1, 1))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
    ]

    def panel(x0, title, ylabel, values, log):
        lo = min(v for vs in values.values() for _, v in vs)
        hi = max(v for vs in values.values() for _, v in vs)
        if log:
            lo, hi = 10 ** math.floor(math.log10(max(lo, 1))), 10 ** math.ceil(math.log10(hi))
            ticks = [10**e for e in range(int(math.log10(lo)), int(math.log10(hi)) + 1)]
            ys = lambda v: P + ph - ph * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
        else:
            lo, step = 0, 10 ** math.floor(math.log10(hi))
            hi = step * math.ceil(hi / step)
            ticks = [lo + step * i for i in range(int(hi / step) + 1)]
            ys = lambda v: P + ph - ph * (v - lo) / (hi - lo)
        o = [f'<g transform="translate({x0 - P},0)">']
        o.append(f'<text x="{P + pw / 2}" y="{P - 25}" text-anchor="middle" font-size="14">{title}</text>')
        o.append(f'<rect x="{P}" y="{P}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>')
        for t in ticks:
            y = ys(t)
            label = f"{t / 1000:g}k" if t >= 1000 and not log else (f"{t:g}" if t < 1e5 else f"{t:.0e}")
            o.append(f'<line x1="{P}" x2="{P + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
            o.append(f'<text x="{P - 5}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
        for i, c in enumerate(conns):
            o.append(f'<text x="{xs(i):.1f}" y="{P + ph + 16}" text-anchor="middle">{c}</text>')
        o.append(f'<text x="{P + pw / 2}" y="{P + ph + 34}" text-anchor="middle">connections</text>')
        o.append(
            f'<text transform="translate({P - 45},{P + ph / 2}) rotate(-90)" text-anchor="middle">{ylabel}</text>'
        )
        for k, (name, vs) in enumerate(values.items()):
            colour, dash = name_style(name)
            pts = " ".join(f"{xs(i):.1f},{ys(v):.1f}" for i, v in vs)
            o.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2" {dash}/>')
            for i, v in vs:
                o.append(f'<circle cx="{xs(i):.1f}" cy="{ys(v):.1f}" r="3" fill="{colour}"/>')
            if k == 0:
                o.append(f'<rect x="{P + 5}" y="{P + 4}" width="130" height="{16 * len(values) + 6}" '
                         'fill="white" fill-opacity="0.85" stroke="#ccc"/>')
            o.append(f'<line x1="{P + 10}" x2="{P + 30}" y1="{P + 14 + 16 * k}" y2="{P + 14 + 16 * k}" '
                     f'stroke="{colour}" stroke-width="2" {dash}/>')
            o.append(f'<text x="{P + 35}" y="{P + 18 + 16 * k}">{name}</text>')
        o.append("</g>")
        return o

    servers = list(series)
    dashes = {"p50": "", "p99": 'stroke-dasharray="6,3"', "p99.9": 'stroke-dasharray="2,3"'}

    def name_style(name):
        server = name.split(" ")[0]
        pct = name.split(" ")[1] if " " in name else "p50"
        return colours[servers.index(server) % len(colours)], dashes[pct]

    rps = {s: [(i, m["rps"]) for i, m in enumerate(series[s])] for s in servers}
    lat = {
        f"{s} {pct}": [(i, max(m[key], 1)) for i, m in enumerate(series[s])]
        for s in servers
        for pct, key in (("p50", "p50_us"), ("p99", "p99_us"), ("p99.9", "p999_us"))
    }
    out += panel(P, "POST /score, one row: throughput", "requests per second", rps, log=False)
    out += panel(2 * P + pw, "POST /score, one row: latency", "microseconds (log scale)", lat, log=True)
    out.append("</svg>")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
