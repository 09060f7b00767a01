#!/usr/bin/env python3
"""Chaos run of the registry commands, through the real binary (CI's "Keep it fixed" step).

Random SIGKILLs during publish, promote, rollback, data add, train --publish and
retrain --once, with a consistency check of the registry after each kill:

* `treeserve models --json` and `treeserve data list` succeed, and no version is
  unreadable (a version is there whole or not at all);
* every alias points at a version that exists, loads and validates (`treeserve predict`
  with that alias scores IRIS), and every version does when first seen;
* a version's bytes and a dataset version's data never change once seen (immutable),
  and a dataset's data matches its manifest's sha256;
* every few kills, and at the end, a server started on the registry answers `/score`.

Then, when it may mount (root, or passwordless sudo): a disk-full registry (a small
tmpfs filled to a few free pages) and a read-only one (the tmpfs remounted read-only).
Every command must then succeed or fail with one `Error: ` line and a non-zero exit, no
panic or backtrace, and leave the registry consistent; a read-only registry still lists
and serves, and a full one works again once space is freed.

`--self-test` first proves the check can fail: it corrupts a registry by hand (an alias
to a missing version, an alias that is not JSON, a truncated artifact) and expects the
check to say so. Python 3 standard library only. Exit 0 when everything held, 1 with the
first inconsistency (and the registry left in place for a look) otherwise.
"""

import argparse
import errno
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IRIS = REPO / "models" / "data" / "iris.csv"
VERSICOLOR = {"SepalLengthCm": 6.6, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4}
COMMAND_TIMEOUT = 60


class Inconsistent(Exception):
    """The registry broke a promise."""


def log(*a):
    print(*a, flush=True)


class Chaos:
    def __init__(self, binary, work, rng):
        self.bin = str(binary)
        self.work = Path(work)
        self.rng = rng
        self.env = dict(os.environ, RUST_BACKTRACE="1", TREESERVE_LOG="warn")
        self.env.pop("TREESERVE_REGISTRY", None)
        self.header, self.rows = self._iris()
        self.artifacts = []
        self.seen_versions = {}  # (model, version) -> sha256 of model.tsm
        self.seen_datasets = {}  # (name, version) -> sha256 of data.csv
        self.csv_count = 0

    # ---- running the binary -------------------------------------------------------

    def run(self, args, check=True, timeout=COMMAND_TIMEOUT):
        p = subprocess.run([self.bin, *args], capture_output=True, text=True,
                           env=self.env, timeout=timeout)
        if check and p.returncode != 0:
            raise Inconsistent(f"treeserve {' '.join(args)} exited {p.returncode}: "
                               f"{p.stderr.strip()[-2000:]}")
        return p

    def _iris(self):
        lines = IRIS.read_text().splitlines()
        return lines[0], lines[1:]

    def new_csv(self, directory, name=None):
        """A CSV of IRIS rows, a random subset with small noise: a new dataset version."""
        self.csv_count += 1
        rows = self.rng.sample(self.rows, self.rng.randint(90, 150))
        out = [self.header]
        for r in rows:
            cells = r.split(",")
            for i in range(1, 5):
                cells[i] = f"{max(0.1, float(cells[i]) + self.rng.choice((-0.1, 0, 0, 0.1))):.1f}"
            cells[0] = str(int(cells[0]) + 1000 * self.csv_count)
            out.append(",".join(cells))
        path = Path(directory) / (name or f"rows-{self.csv_count}.csv")
        path.write_text("\n".join(out) + "\n")
        return path

    def train_artifacts(self):
        for i, extra in enumerate((["--seed", "1"], ["--algorithm", "random-forest", "--n-trees", "20"],
                                   ["--max-depth", "2", "--seed", "3"])):
            out = self.work / f"artifact-{i}.tsm"
            self.run(["train", "--data", str(IRIS), "--output", str(out), *extra])
            self.artifacts.append(out)

    def seed_registry(self, reg):
        self.run(["publish", str(self.artifacts[0]), "--registry", str(reg), "--alias", "production"])
        self.run(["data", "add", str(IRIS), "--name", "iris", "--registry", str(reg)])

    # ---- the operations killed --------------------------------------------------------

    def operation(self, reg, kind):
        """The argv of one random operation of `kind` on `reg`."""
        r = str(reg)
        rng = self.rng
        if kind == "publish":
            args = ["publish", str(rng.choice(self.artifacts)), "--registry", r]
            alias = rng.choice([None, "production", "staging"])
            return args + (["--alias", alias] if alias else [])
        if kind == "promote":
            versions = self.versions(reg, "iris") or [1]
            return ["promote", "iris", str(rng.choice(versions)), "--registry", r,
                    "--alias", rng.choice(["production", "staging", "canary"])]
        if kind == "rollback":
            return ["rollback", "iris", "--registry", r]
        if kind == "data add":
            csv = self.new_csv(self.work)
            return ["data", "add", str(csv), "--name", "iris", "--registry", r] + (
                ["--append"] if rng.random() < 0.3 else [])
        if kind == "train --publish":
            return ["train", "--dataset", "iris", "--name", "iris", "--registry", r, "--publish", r,
                    "--seed", str(rng.randint(1, 10**6))]
        if kind == "retrain":
            drop = self.work / "drop"
            drop.mkdir(exist_ok=True)
            self.new_csv(drop)
            return ["retrain", "--once", str(drop), "--name", "iris", "--registry", r,
                    "--seed", str(rng.randint(1, 10**6))]
        raise ValueError(kind)

    KINDS = ["publish", "promote", "rollback", "data add", "train --publish", "retrain"]

    def measure(self, reg):
        """How long each operation takes when left alone (the kill falls within it)."""
        runs = {kind: [] for kind in self.KINDS}
        for _ in range(3):
            for kind in self.KINDS:
                args = self.operation(reg, kind)
                start = time.monotonic()
                self.run(args, check=False)
                runs[kind].append(time.monotonic() - start)
        # The median of three: one slow run on a busy machine would put most kills after
        # the end.
        took = {kind: sorted(r)[1] for kind, r in runs.items()}
        self.check(reg)
        return took

    def kill_during(self, reg, kinds, took):
        """Starts the operations `kinds` at once and SIGKILLs each at a random moment
        within its undisturbed duration; returns the kinds killed before they finished."""
        procs = []
        for kind in kinds:
            args = self.operation(reg, kind)
            p = subprocess.Popen([self.bin, *args], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, env=self.env)
            procs.append((self.rng.uniform(0, took[kind] * 1.1), kind, args, p))
        started = time.monotonic()
        killed = []
        for at, kind, args, p in sorted(procs, key=lambda t: t[0]):
            time.sleep(max(0.0, at - (time.monotonic() - started)))
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                killed.append(kind)
        for _, kind, args, p in procs:
            _, err = p.communicate(timeout=COMMAND_TIMEOUT)
            if b"panicked" in err:
                raise Inconsistent(f"treeserve {' '.join(args)} panicked: {err.decode()[-2000:]}")
        return killed

    # ---- the consistency check ----------------------------------------------------------

    def versions(self, reg, model):
        d = Path(reg) / model / "versions"
        return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []

    def check(self, reg, serve=False):
        reg = Path(reg)
        p = self.run(["models", "--json", "--registry", str(reg)])
        try:
            listing = json.loads(p.stdout)
        except ValueError as e:
            raise Inconsistent(f"models --json printed no JSON ({e}): {p.stdout[:500]}")
        for m in listing:
            name = m["name"]
            listed = {v["version"] for v in m["versions"]}
            for v in m["versions"]:
                if "error" in v:
                    raise Inconsistent(f"{name} version {v['version']} is unreadable: {v['error']}")
            on_disk = set(self.versions(reg, name))
            if on_disk != listed:
                raise Inconsistent(f"{name}: versions on disk {sorted(on_disk)} but listed {sorted(listed)}")
            for v in sorted(listed):
                artifact = reg / name / "versions" / str(v) / "model.tsm"
                digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
                key = (name, v)
                if key not in self.seen_versions:
                    self.predict(reg, name, ["--version", str(v)])
                    self.seen_versions[key] = digest
                elif self.seen_versions[key] != digest:
                    raise Inconsistent(f"{name} version {v} changed after it was published")
            for alias, record in m["aliases"].items():
                if record["version"] not in listed:
                    raise Inconsistent(f"{name} alias {alias} points at version "
                                       f"{record['version']}, which is not in the registry")
                self.predict(reg, name, ["--alias", alias])
            # Records about versions (gate decisions) are whole JSON documents.
            records = reg / name / "records"
            for f in sorted(records.iterdir()) if records.is_dir() else []:
                if f.name.startswith(".") or not f.name.endswith(".json"):
                    continue
                try:
                    json.loads(f.read_text())
                except ValueError as e:
                    raise Inconsistent(f"{name}: record {f.name} is not whole JSON: {e}")
            # Every alias file is one `models` listed (none skipped as unreadable).
            alias_dir = reg / name / "aliases"
            files = {f.name for f in alias_dir.iterdir() if not f.name.startswith(".")} if alias_dir.is_dir() else set()
            if files != set(m["aliases"]):
                raise Inconsistent(f"{name}: alias files {sorted(files)} but listed {sorted(m['aliases'])}")
        self.run(["data", "list", "--registry", str(reg)])
        datasets = reg / "_datasets"
        for d in sorted(datasets.iterdir()) if datasets.is_dir() else []:
            for v in self.versions(datasets, d.name):
                vdir = datasets / d.name / "versions" / str(v)
                try:
                    manifest = json.loads((vdir / "dataset.json").read_text())
                    data = (vdir / "data.csv").read_bytes()
                except (OSError, ValueError) as e:
                    raise Inconsistent(f"dataset {d.name} version {v} is half there: {e}")
                digest = hashlib.sha256(data).hexdigest()
                if digest != manifest["sha256"]:
                    raise Inconsistent(f"dataset {d.name} version {v}: data.csv does not match its sha256")
                key = (d.name, v)
                if self.seen_datasets.setdefault(key, digest) != digest:
                    raise Inconsistent(f"dataset {d.name} version {v} changed after it was stored")
        if serve:
            self.serve_check(reg, [m["name"] for m in listing if "production" in m["aliases"]])

    def predict(self, reg, model, pick):
        p = self.run(["predict", "--registry", str(reg), "--model", model, *pick,
                      "--input", str(IRIS), "--output", "-"], check=False)
        if p.returncode != 0 or len(p.stdout.splitlines()) != 151:
            raise Inconsistent(f"{model} {' '.join(pick)} does not load and score: {p.stderr.strip()[-1000:]}")

    def serve_check(self, reg, models):
        server = subprocess.Popen([self.bin, "serve", "--registry", str(reg), "--listen", "127.0.0.1:0"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=self.env)
        try:
            base = server.stdout.readline().strip().rsplit(" ", 1)[-1]
            if not base.startswith("http://"):
                raise Inconsistent(f"the server did not start: {base!r}")
            deadline = time.monotonic() + 20
            while True:
                try:
                    urllib.request.urlopen(base + "/health/ready", timeout=5)
                    break
                except (urllib.error.URLError, OSError):
                    if time.monotonic() > deadline:
                        raise Inconsistent("a server started on the registry never got ready")
                    time.sleep(0.05)
            for model in models:
                req = urllib.request.Request(f"{base}/models/{model}/score", json.dumps(VERSICOLOR).encode(),
                                             {"content-type": "application/json"})
                try:
                    answer = json.load(urllib.request.urlopen(req, timeout=10))
                except urllib.error.HTTPError as e:
                    raise Inconsistent(f"/models/{model}/score answered {e.code}: {e.read()[:300]!r}")
                if "output" not in answer:
                    raise Inconsistent(f"/models/{model}/score answered {answer}")
        finally:
            server.terminate()
            server.wait(timeout=30)

    # ---- disk full and read-only ----------------------------------------------------------

    def one_line_error(self, args, what):
        """Runs a command expected to fail or succeed cleanly: never a panic or backtrace,
        and a failure says one `Error: ` line and exits non-zero."""
        p = self.run(args, check=False)
        if "panicked" in p.stderr or "stack backtrace" in p.stderr:
            raise Inconsistent(f"{what}: treeserve {' '.join(args)} panicked: {p.stderr[-2000:]}")
        if p.returncode != 0:
            errors = [l for l in p.stderr.splitlines() if l.startswith("Error: ")]
            if len(errors) != 1:
                raise Inconsistent(f"{what}: treeserve {' '.join(args)} exited {p.returncode} "
                                   f"without one Error line: {p.stderr[-2000:]!r}")
        return p


def sudo_prefix():
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    return None


def fill(mount, leave_kb):
    """Fills the tmpfs at `mount` to `leave_kb` KiB free (tmpfs counts 4 KiB pages)."""
    filler = Path(mount) / "filler"
    # Unbuffered writes: a buffered file keeps the bytes a full disk refused and raises
    # ENOSPC again when closed. A short write is followed by one that raises ENOSPC; then
    # smaller writes take the last pages.
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for size in (64 << 10, 4 << 10):
            chunk = b"\0" * size
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - leave_kb * 1024))
    return filler


def disk_and_readonly(chaos, sudo, work):
    """Disk-full and read-only registries on a small tmpfs."""
    mount = work / "tmpfs"
    mount.mkdir()
    subprocess.run([*sudo, "mount", "-t", "tmpfs", "-o", "size=8m,mode=1777", "tmpfs", str(mount)], check=True)
    try:
        reg = mount / "reg"
        chaos.seen_versions.clear()
        chaos.seen_datasets.clear()
        chaos.seed_registry(reg)
        chaos.run(["publish", str(chaos.artifacts[1]), "--registry", str(reg), "--alias", "staging"])
        chaos.check(reg)
        attempts = failed = 0
        for leave_kb in (0, 4, 12, 24, 48, 96):
            filler = fill(mount, leave_kb)
            for kind in Chaos.KINDS:
                for _ in range(2):
                    attempts += 1
                    p = chaos.one_line_error(chaos.operation(reg, kind), f"disk full ({leave_kb} KiB free)")
                    if p.returncode != 0:
                        failed += 1
                        line = p.stderr.strip().splitlines()[-1]
                        if "No space left" in line and "free space and run it again" not in line:
                            raise Inconsistent(f"disk full: no hint in {line!r}")
                        if leave_kb == 0:
                            log(f"  disk full, {kind}: {p.stderr.strip().splitlines()[-1]}")
                    chaos.check(reg)
            # The operations' own inputs (CSV files) live outside the tmpfs.
            filler.unlink()
            chaos.check(reg)
        chaos.check(reg, serve=True)
        # After the disk was full the registry works again.
        chaos.run(["publish", str(chaos.artifacts[2]), "--registry", str(reg), "--alias", "production"])
        chaos.check(reg, serve=True)
        log(f"disk full: {attempts} commands at 0-96 KiB free, {failed} failed with one line, "
            "consistent after each; works again once freed")

        subprocess.run([*sudo, "mount", "-o", "remount,ro", str(mount)], check=True)
        try:
            refused = 0
            for kind in Chaos.KINDS:
                args = chaos.operation(reg, kind)
                p = chaos.one_line_error(args, "read-only registry")
                if p.returncode == 0 and kind not in ("rollback",):
                    raise Inconsistent(f"read-only registry: treeserve {' '.join(args)} succeeded")
                refused += p.returncode != 0
                if p.returncode != 0:
                    line = p.stderr.strip().splitlines()[-1]
                    # The error says what is wrong and what to do.
                    if "registry is read-only here" not in line:
                        raise Inconsistent(f"read-only registry: no hint in {line!r}")
                    log(f"  read-only, {kind}: {line}")
            chaos.check(reg, serve=True)
            log(f"read-only: {refused} of {len(Chaos.KINDS)} writing commands refused with one line; "
                "models, data list, predict and serve work")
        finally:
            subprocess.run([*sudo, "mount", "-o", "remount,rw", str(mount)], check=True)
        chaos.check(reg)
    finally:
        subprocess.run([*sudo, "umount", str(mount)], check=False)


def self_test(chaos, work):
    """The check catches a registry broken by hand."""
    def broken(name, damage):
        reg = work / f"selftest-{name}"
        chaos.seen_versions.clear()
        chaos.seen_datasets.clear()
        chaos.seed_registry(reg)
        chaos.check(reg)
        damage(reg)
        try:
            chaos.check(reg)
        except Inconsistent as e:
            log(f"self-test: {name}: caught ({str(e)[:120]})")
            return
        raise SystemExit(f"self-test: the check missed {name}")

    def alias_to(version):
        return lambda reg: (reg / "iris/aliases/production").write_text(
            json.dumps({"version": version, "updated": "2026-01-01T00:00:00Z", "history": []}))

    broken("an alias to a missing version", alias_to(7))
    broken("an alias that is not JSON", lambda reg: (reg / "iris/aliases/production").write_text("{garbage"))

    def truncate(reg):
        a = reg / "iris/versions/1/model.tsm"
        a.write_bytes(a.read_bytes()[:-40])
    broken("a truncated artifact", truncate)
    broken("a half-visible version", lambda reg: (reg / "iris/versions/2").mkdir())

    def half_record(reg):
        (reg / "iris/records").mkdir(exist_ok=True)
        (reg / "iris/records/1.gate.json").write_text('{"model": "iris", "decis')
    broken("a half-written record", half_record)

    def bad_dataset(reg):
        (reg / "_datasets/iris/versions/1/data.csv").write_text("a,b\n1,2\n")
    broken("a dataset whose data does not match its sha256", bad_dataset)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_bin = REPO / "target/release/treeserve"
    if not default_bin.exists():
        default_bin = REPO / "target/debug/treeserve"
    ap.add_argument("--bin", default=str(default_bin))
    ap.add_argument("--kills", type=int, default=150, help="SIGKILLed operations")
    ap.add_argument("--serve-every", type=int, default=25)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--self-test", action="store_true", help="first prove the check can fail")
    ap.add_argument("--require-mount", action="store_true",
                    help="fail (instead of skipping) when the disk-full and read-only parts cannot mount")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="treeserve-chaos-"))
    log(f"chaos: {a.bin}, seed {seed} (rerun with --seed {seed}), work in {work}")
    chaos = Chaos(a.bin, work, rng)
    ok = False
    try:
        chaos.train_artifacts()
        if a.self_test:
            self_test(chaos, work)
        reg = work / "reg"
        chaos.seen_versions.clear()
        chaos.seen_datasets.clear()
        chaos.seed_registry(reg)
        took = chaos.measure(reg)
        log("undisturbed: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in took.items()))
        killed = {k: 0 for k in Chaos.KINDS}
        tries = 0
        while sum(killed.values()) < a.kills:
            tries += 1
            if tries > a.kills * 4:
                raise Inconsistent("the operations finish before the kill too often")
            # One in four rounds runs two operations at once (the registry's lock held
            # by a process that is killed).
            kinds = rng.sample(Chaos.KINDS, 2 if rng.random() < 0.25 else 1)
            for kind in chaos.kill_during(reg, kinds, took):
                killed[kind] += 1
            n = sum(killed.values())
            chaos.check(reg, serve=n % a.serve_every == 0 and n > 0)
        chaos.check(reg, serve=True)
        versions = len(chaos.versions(reg, "iris"))
        log(f"kills: {sum(killed.values())} SIGKILLs in {tries} rounds "
            f"({', '.join(f'{k} {v}' for k, v in killed.items())}); "
            f"{tries} consistency checks, {versions} versions; consistent after each")
        sudo = sudo_prefix()
        if sudo is None:
            if a.require_mount:
                raise SystemExit("disk-full and read-only parts need root or passwordless sudo")
            log("SKIPPED disk-full and read-only parts: they need root or passwordless sudo")
        else:
            disk_and_readonly(chaos, sudo, work)
        ok = True
    except Inconsistent as e:
        log(f"INCONSISTENT (seed {seed}): {e}")
        log(f"the registry is left in {work}")
        a.keep = True
    finally:
        log(f"chaos: {'passed' if ok else 'FAILED'} in {time.monotonic() - started:.1f} s")
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
