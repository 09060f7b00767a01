#!/usr/bin/env python3
"""Offline batch scoring: `treeserve predict` against pandas `read_csv` + scikit-learn
`predict` + `to_csv` on the same generated CSV (IRIS-like rows), same machine, same run.

    python3 benches/batch.py [--rows 1000000] [--rounds 3] [--python PYTHON]

PYTHON must have pandas and scikit-learn (default: target/peers-venv, installed by
benches/peers.py from benches/peers/requirements.txt); without one only treeserve is timed. scikit-learn's tree is trained on the same IRIS CSV
with its defaults, as treeserve's shipped tree was with smartcore's. Reports medians.
"""

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SKLEARN = r"""
import sys, time
import pandas as pd
from sklearn.tree import DecisionTreeClassifier
train = pd.read_csv(sys.argv[1])
features = ["SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm"]
model = DecisionTreeClassifier(random_state=0).fit(train[features], train["Species"])
t = time.perf_counter()
df = pd.read_csv(sys.argv[2])
out = pd.DataFrame({"Id": df["Id"], "predicted_species": model.predict(df[features])})
out.to_csv(sys.argv[3], index=False)
print(time.perf_counter() - t)
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    peers = ROOT / "target" / "peers-venv" / "bin" / "python"
    ap.add_argument(
        "--python",
        default=str(peers) if peers.exists() else None,
        help="a Python with pandas and scikit-learn (default: target/peers-venv, which "
        "benches/peers.py installs with the pinned versions)",
    )
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "treeserve"], cwd=ROOT, check=True)
    bin_ = ROOT / "target" / "release" / "treeserve"
    work = Path(tempfile.mkdtemp(prefix="treeserve-batch-"))
    src = (ROOT / "models" / "data" / "iris.csv").read_text().splitlines()
    header, rows = src[0], [l.split(",") for l in src[1:]]
    rng = random.Random(1984)
    data = work / "rows.csv"
    with data.open("w") as f:
        f.write(header + "\n")
        for i in range(args.rows):
            r = rows[i % len(rows)]
            vals = [f"{float(v) + rng.uniform(-0.3, 0.3):.2f}" for v in r[1:5]]
            f.write(f"{i + 1},{','.join(vals)},{r[5]}\n")
    size_mb = data.stat().st_size / 1e6
    results = {"treeserve predict": []}
    if args.python:
        results["pandas + scikit-learn"] = []
    for _ in range(args.rounds):
        t = time.perf_counter()
        subprocess.run([str(bin_), "predict", "--registry", "models", "--input", str(data),
                        "--output", str(work / "ts.csv")], cwd=ROOT, check=True, capture_output=True)
        results["treeserve predict"].append(time.perf_counter() - t)
        if args.python:
            out = subprocess.run([args.python, "-c", SKLEARN, str(ROOT / "models/data/iris.csv"), str(data),
                                  str(work / "sk.csv")], check=True, capture_output=True, text=True).stdout
            results["pandas + scikit-learn"].append(float(out.strip().splitlines()[-1]))
    agree = None
    if args.python:
        a = (work / "ts.csv").read_text().splitlines()[1:]
        b = (work / "sk.csv").read_text().splitlines()[1:]
        agree = sum(x.split(",")[1] == y.split(",")[1] for x, y in zip(a, b)) / len(a)
    print(f"{args.rows} rows ({size_mb:.0f} MB CSV), medians of {args.rounds} rounds, {Path('/proc/cpuinfo').read_text().count('processor')} cores\n")
    print("| tool | seconds | rows/s |")
    print("|---|---|---|")
    base = statistics.median(results["treeserve predict"])
    for name, times in results.items():
        m = statistics.median(times)
        print(f"| {name} | {m:.2f} | {args.rows / m:,.0f} |")
    if agree is not None:
        sk = statistics.median(results["pandas + scikit-learn"])
        print(f"\ntreeserve is {sk / base:.1f}x faster; the two trees agree on {agree:.1%} of the noisy rows "
              f"(different trainers, same data)")


if __name__ == "__main__":
    sys.exit(main())
