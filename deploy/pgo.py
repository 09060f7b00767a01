#!/usr/bin/env python3
"""Profile-guided build of treeserve (and, for the benchmark, the floor server).

    python3 deploy/pgo.py [--profile release] [--target TRIPLE] [--floor] [--instrumented-only]

Four steps, all in the open:
  1. an instrumented build (RUSTFLAGS -Cprofile-generate) into target/pgo/instrumented;
  2. a training load on the instrumented servers: they serve the shipped IRIS registry on
     loopback while wrk sends the benchmark's requests (/score with one row at 64 and at 1
     connection, 100-row batches, V2 infer with one row), then a SIGINT stops them so they
     write their profiles;
  3. llvm-profdata merges the profiles into target/pgo/merged-HASH.profdata;
  4. the optimized build (-Cprofile-use) with the same profile and target, into the
     usual target directory (target/TRIPLE/PROFILE/), where the container build expects it.

The optimization changes only code layout and inlining decisions, never behaviour: the
optimized binary passes the same tests. It needs wrk and llvm-profdata of rustc's LLVM major
version (Debian: `apt-get install llvm-22` for rustc's LLVM 22); it says so if either is
missing. Extra RUSTFLAGS (e.g. `-C target-feature=+crt-static`) are kept in both builds.
Prints the optimized binaries' paths, one per line, last. --instrumented-only stops after
step 1 (CI builds it while other steps run; the whole build later finds it up to date).
"""

import argparse
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PGO_DIR = ROOT / "target" / "pgo"
sys.path.insert(0, str(ROOT / "benches"))
# The load benchmark's server start-up, wrk runner and request bodies.
from load import LABEL_ONLY, V2_PATH, score_rows, start, v2_body, wrk  # noqa: E402

# (path, body, connections, seconds): the benchmark's scenarios, /score one row weighted most.
TRAINING = [
    ("/score", None, 64, 6),
    ("/score", None, 1, 2),
    ("/score", score_rows(100), 16, 2),
    (V2_PATH, v2_body(1, LABEL_ONLY), 64, 2),
]


def rustc_facts():
    """(host triple, LLVM major version) of the toolchain cargo uses."""
    out = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    host = re.search(r"^host: (\S+)", out, re.M).group(1)
    llvm = re.search(r"^LLVM version: (\d+)", out, re.M).group(1)
    return host, llvm


def find_profdata(llvm_major):
    """llvm-profdata whose LLVM major version is rustc's (profiles are not portable across
    major versions)."""
    sysroot = subprocess.run(["rustc", "--print", "sysroot"], capture_output=True, text=True, check=True).stdout.strip()
    candidates = [f"llvm-profdata-{llvm_major}", f"/usr/lib/llvm-{llvm_major}/bin/llvm-profdata"]
    candidates += [str(p) for p in Path(sysroot).glob("lib/rustlib/*/bin/llvm-profdata")]
    candidates.append("llvm-profdata")
    for c in candidates:
        path = shutil.which(c) or (c if Path(c).is_file() else None)
        if not path:
            continue
        version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
        if re.search(rf"LLVM version {llvm_major}\.", version):
            return path
    raise SystemExit(
        f"error: no llvm-profdata for LLVM {llvm_major} (rustc's); install it: "
        f"apt-get install llvm-{llvm_major} (or rustup component add llvm-tools)"
    )


def cargo_build(profile, target, rustflags, target_dir, with_floor, lto=True):
    cmd = ["cargo", "build", "--locked", "--profile", profile, "--target", target, "--bin", "treeserve"]
    if not lto:
        cmd += ["--config", f"profile.{profile}.lto=false"]
    if with_floor:
        cmd += ["--example", "floor"]
    if target_dir:
        cmd += ["--target-dir", str(target_dir)]
    env = {**os.environ, "RUSTFLAGS": rustflags.strip()}
    print(f"pgo: RUSTFLAGS={env['RUSTFLAGS']!r} {' '.join(cmd)}", file=sys.stderr, flush=True)
    # cargo's output passed on, and rustc's warnings that a function's profile does not
    # match its code (the profile would then be silently lost for it) counted.
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True, errors="replace")
    mismatched = 0
    for line in proc.stderr:
        sys.stderr.write(line)
        mismatched += "function control flow change detected" in line
    if proc.wait() != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed (exit {proc.returncode})")
    if mismatched:
        raise SystemExit(f"error: the profile does not match the code of {mismatched} function(s) (rustc's "
                         "warnings above): the instrumented and the optimized builds compiled different code")
    out = (target_dir or ROOT / "target") / target / profile
    return [out / "treeserve"] + ([out / "examples" / "floor"] if with_floor else [])


def train(cmd):
    """Runs one instrumented server under the training load; it must exit cleanly."""
    proc, addr = start(cmd)
    try:
        for path, body, conns, seconds in TRAINING:
            summary = wrk(addr, conns, seconds, path, body)
            if not summary["requests"] or summary["non_2xx"]:
                raise SystemExit(f"error: training {path} on {cmd[0]} failed: {summary}")
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        if code != 0:
            raise SystemExit(f"error: {cmd[0]} exited {code} after the training load")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def instrumented(profile, target, rustflags, with_floor):
    """Step 1: the instrumented build, writing its profiles into `raw` (emptied first)."""
    raw = PGO_DIR / "raw"
    shutil.rmtree(raw, ignore_errors=True)
    raw.mkdir(parents=True)
    # No link-time optimization (a single-threaded third of the build): LLVM instruments
    # each function before inlining, so the counts match the optimized build's functions
    # all the same (rustc warns "function control flow change detected" otherwise).
    bins = cargo_build(profile, target, f"{rustflags} -Cprofile-generate={raw}", PGO_DIR / "instrumented", with_floor,
                       lto=False)
    return raw, bins


def build(profile="release", target=None, rustflags="", with_floor=False):
    """The whole profile-guided build; returns the optimized binaries (treeserve first)."""
    if not shutil.which("wrk"):
        raise SystemExit("error: wrk is not installed (apt-get install wrk); it drives the training load")
    host, llvm = rustc_facts()
    target = target or host
    profdata = find_profdata(llvm)
    raw, bins = instrumented(profile, target, rustflags, with_floor)
    artifact = ROOT / "models" / "iris" / "versions" / "1" / "model.tsm"
    started = time.monotonic()
    train([str(bins[0]), "serve", "--registry", "models", "--listen", "127.0.0.1:0"])
    if with_floor:
        train([str(bins[1]), str(artifact), "127.0.0.1:0"])
    profiles = sorted(raw.glob("*.profraw"))
    if not profiles:
        raise SystemExit(f"error: the training load wrote no profile into {raw}")
    merged = PGO_DIR / "merged.profdata"
    subprocess.run([profdata, "merge", "-o", str(merged)] + [str(p) for p in profiles], check=True)
    # Named by content: cargo sees the flags change whenever the profile does, so every
    # crate (not only the edited ones) is rebuilt with the profile it was trained with.
    for old in PGO_DIR.glob("merged-*.profdata"):
        old.unlink()
    merged = merged.rename(PGO_DIR / f"merged-{hashlib.sha256(merged.read_bytes()).hexdigest()[:16]}.profdata")
    print(f"pgo: trained in {time.monotonic() - started:.0f} s, {len(profiles)} profile(s) merged into {merged}",
          file=sys.stderr, flush=True)
    return cargo_build(profile, target, f"{rustflags} -Cprofile-use={merged}", None, with_floor)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="release", help="cargo profile (the container image uses `container`)")
    ap.add_argument("--target", help="target triple (default: the host's)")
    ap.add_argument("--floor", action="store_true", help="also build the floor server (benches/floor_server.rs)")
    ap.add_argument("--instrumented-only", action="store_true", help="only build the instrumented binaries (step 1)")
    args = ap.parse_args()
    rustflags = os.environ.get("RUSTFLAGS", "")
    if args.instrumented_only:
        target = args.target or rustc_facts()[0]
        for b in instrumented(args.profile, target, rustflags, args.floor)[1]:
            print(b)
        return
    for b in build(args.profile, args.target, rustflags, args.floor):
        print(b)


if __name__ == "__main__":
    main()
