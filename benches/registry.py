#!/usr/bin/env python3
"""What following a remote registry costs: swap latency, idle requests, start-up time.

    python3 benches/registry.py [--stores s3,azure,mlflow] [--moves 50] [--poll-interval 10s]
                                [--idle 60] [--artifact FILE] [--json FILE] [--quick]

For each store (S3 on moto, Azure Blob on azurite, an MLflow tracking server; the servers
.ci/run installs into target/objstore-env, target/azurite and target/mlflow-env), with a
release treeserve:
  swap latency   one replica follows `production` at --poll-interval; the alias is moved
                 --moves times between two versions with `treeserve promote`, each at a
                 random point of the poll cycle; the time from
                 promote's exit to the first /score answer from the new version (polled every
                 5 ms), p50 / p99 / max;
  idle requests  every HTTP request the replica sends to the store while nothing moves,
                 counted by a proxy between them over --idle seconds, per hour; once with
                 --model (only the alias is read) and once discovering models (the listing too);
  start-up       time from spawn to /health/ready 200: from the store with an empty
                 --cache-dir, and from a warm cache (the artifact is not downloaded again);
                 median of 5 starts each. --artifact picks the model (default: IRIS trained
                 here; a large imported ensemble shows the download's share).
--quick: 3 moves at a 1 s interval, 13 s idle (a poll at the default interval), 1 start each (CI's check that it runs).
"""

import argparse
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = Path(os.environ.get("TREESERVE_OBJSTORE_ENV", ROOT / "target/objstore-env"))
AZURITE = Path(
    os.environ.get("TREESERVE_AZURITE", ROOT / "target/azurite/node_modules/.bin/azurite-blob")
)
MLFLOW_ENV = Path(os.environ.get("TREESERVE_MLFLOW_ENV", ROOT / "target/mlflow-env"))
AZ_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
VERSICOLOR = b'{"SepalLengthCm": 6.6, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4}'
REQUEST_LINE = re.compile(rb"(?:^|\r\n\r\n)(GET|PUT|POST|HEAD|DELETE) ")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Proxy:
    """A TCP proxy that counts the HTTP requests passing through it."""

    def __init__(self, upstream):
        self.upstream, self.requests, self.lock = upstream, 0, threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            client, _ = self.sock.accept()
            server = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self.pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self.pipe, args=(server, client, False), daemon=True).start()

    def pipe(self, src, dst, count):
        try:
            while data := src.recv(65536):
                if count:
                    with self.lock:
                        self.requests += len(REQUEST_LINE.findall(data))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class Store:
    """moto or azurite on a free port, one bucket, behind a counting proxy."""

    def __init__(self, kind, work):
        self.kind, self.port = kind, free_port()
        if kind == "mlflow":
            self.start_mlflow(work)
            return
        if kind == "s3":
            cmd = [str(ENV / "bin/moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]
        else:
            cmd = [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
                   "--location", str(work / "azurite"), "--silent", "--skipApiVersionCheck", "--loose"]
        for tool in (cmd[0],):
            if not Path(tool).exists():
                sys.exit(f"{tool} is missing: run `bash .ci/run`, which installs the store servers")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.proxy = Proxy(self.port)
        deadline = time.time() + 60
        while subprocess.run([str(ENV / "bin/python"), str(ROOT / "tests/objstore/store.py"),
                              "az" if kind == "azure" else "s3", f"http://127.0.0.1:{self.port}",
                              "bench", "make"], capture_output=True).returncode != 0:
            if time.time() > deadline or self.proc.poll() is not None:
                sys.exit(f"the {kind} server did not start")
            time.sleep(0.2)

    def start_mlflow(self, work):
        """`mlflow server` (sqlite, proxied artifacts) by tests/mlflow/server.py, which stops
        it when its standard input closes."""
        python = MLFLOW_ENV / "bin/python"
        if not python.exists():
            sys.exit(f"{python} is missing: run `bash .ci/run`, which installs MLflow")
        self.proc = subprocess.Popen([str(python), str(ROOT / "tests/mlflow/server.py"), str(work / "mlflow")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("READY "):
            sys.exit(f"mlflow server did not start: {line!r}")
        self.port = int(line.rsplit(":", 1)[1])
        self.proxy = Proxy(self.port)

    def registry(self, direct=False):
        if self.kind == "mlflow":
            return f"mlflow+http://127.0.0.1:{self.port if direct else self.proxy.port}"
        return f"{'s3' if self.kind == 's3' else 'az'}://bench/models"

    def env(self, direct=False):
        port = self.port if direct else self.proxy.port
        e = dict(os.environ)
        e.pop("TREESERVE_REGISTRY", None)
        if self.kind == "mlflow":
            pass
        elif self.kind == "s3":
            e.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ALLOW_HTTP="true",
                     AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1")
        else:
            e.update(AZURE_STORAGE_ACCOUNT_NAME="devstoreaccount1", AZURE_STORAGE_ACCOUNT_KEY=AZ_KEY,
                     AZURE_STORAGE_ENDPOINT=f"http://127.0.0.1:{port}/devstoreaccount1",
                     AZURE_ALLOW_HTTP="true")
        return e

    def stop(self):
        if self.kind == "mlflow":
            self.proc.stdin.close()  # server.py stops the server and removes its directory
        else:
            self.proc.kill()
        self.proc.wait()


def treeserve(binary, store, *args):
    """A lifecycle command against the store directly (not through the counting proxy)."""
    args = [store.registry(direct=True) if a == "REGISTRY" else a for a in args]
    subprocess.run([binary, *args], env=store.env(direct=True), check=True, capture_output=True)


class Replica:
    def __init__(self, binary, store, *args):
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--registry", store.registry(), *args],
            env={**store.env(), "TREESERVE_LOG": "warn"}, stdout=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        self.url = "http://" + line.strip().rsplit("http://", 1)[1]

    def ready_after(self):
        while True:
            try:
                with urllib.request.urlopen(self.url + "/health/ready", timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(0.005)

    def version(self):
        req = urllib.request.Request(self.url + "/score", data=VERSICOLOR,
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=2) as r:
                return int(r.headers["x-model-version"])
        except OSError:
            return None

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def parse_seconds(text):
    """`10s`, `500ms`, `1m` → seconds."""
    m = re.fullmatch(r"([0-9.]+)\s*(ms|s|m)?", text.strip())
    if not m:
        sys.exit(f"--poll-interval {text!r}: use e.g. 10s, 500ms, 1m")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[m.group(2)]


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def measure(binary, kind, artifact, args, work):
    store = Store(kind, work)
    reg = "REGISTRY"
    try:
        treeserve(binary, store, "publish", str(artifact), "--registry", reg, "--alias", "production")
        treeserve(binary, store, "publish", str(artifact), "--registry", reg)
        out = {"store": kind}
        # Swap latency.
        r = Replica(binary, store, "--poll-interval", args.poll_interval)
        r.ready_after()
        lat, current = [], 1
        rng = random.Random(7)
        interval = parse_seconds(args.poll_interval)
        for _ in range(args.moves):
            current = 3 - current
            # A move lands at a random point of the poll cycle (moving right after the last
            # swap was seen would always land just after a poll: the worst case).
            time.sleep(rng.uniform(0, interval))
            treeserve(binary, store, "promote", "iris", str(current), "--registry", reg,
                      "--alias", "production")
            t0 = time.perf_counter()
            while r.version() != current:
                if time.perf_counter() - t0 > 120:
                    sys.exit(f"{kind}: the replica did not follow the alias within 120 s")
                time.sleep(0.005)
            lat.append(time.perf_counter() - t0)
        out["swap_s"] = {"p50": pct(lat, 50), "p99": pct(lat, 99), "max": max(lat),
                         "moves": len(lat), "interval": args.poll_interval}
        # Idle requests per hour at the default interval, with and without --model.
        r.stop()
        for label, extra in (("with --model", ["--model", "iris"]), ("discovering", [])):
            idle = Replica(binary, store, *extra)
            idle.ready_after()
            before = store.proxy.requests
            time.sleep(args.idle)
            n = store.proxy.requests - before
            idle.stop()
            out.setdefault("idle_per_hour", {})[label] = round(n * 3600 / args.idle)
        # Start-up: an empty cache (from the store) against a warm one.
        starts = {"store": [], "cache": []}
        for _ in range(args.starts):
            for how in ("store", "cache"):
                cache = work / f"cache-{kind}"
                if how == "store":
                    subprocess.run(["rm", "-rf", str(cache)], check=True)
                s = Replica(binary, store, "--cache-dir", str(cache))
                starts[how].append(s.ready_after())
                s.stop()
        out["startup_s"] = {k: statistics.median(v) for k, v in starts.items()}
        return out
    finally:
        store.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stores", default="s3,azure,mlflow")
    ap.add_argument("--moves", type=int, default=50)
    ap.add_argument("--poll-interval", default="10s")
    ap.add_argument("--idle", type=float, default=60)
    ap.add_argument("--starts", type=int, default=5)
    ap.add_argument("--artifact", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.moves, args.poll_interval, args.idle, args.starts = 3, "1s", 13, 1
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    binary = str(ROOT / "target/release/treeserve")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        artifact = args.artifact
        if artifact is None:
            artifact = work / "iris.tsm"
            subprocess.run([binary, "train", "--data", str(ROOT / "models/data/iris.csv"),
                            "--output", str(artifact)], check=True, capture_output=True)
        for kind in args.stores.split(","):
            results.append(measure(binary, kind, artifact, args, work))
    print(f"| store | swap p50 | swap p99 | max | moves @ interval | idle req/h (--model) "
          f"| idle req/h (discovering) | start from store | start from cache |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        s, i, u = r["swap_s"], r["idle_per_hour"], r["startup_s"]
        print(f"| {r['store']} | {s['p50']:.2f} s | {s['p99']:.2f} s | {s['max']:.2f} s "
              f"| {s['moves']} @ {s['interval']} | {i['with --model']} | {i['discovering']} "
              f"| {u['store'] * 1000:.0f} ms | {u['cache'] * 1000:.0f} ms |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
