"""One framework contender of benches/ensembles.py, in its own process.

    worker.py CONTENDER DIR MODEL --threads N [--batches 1,100,10000] [--predictions OUT.f64]

CONTENDER: xgboost (Booster.inplace_predict), lightgbm (Booster.predict), onnxruntime
(InferenceSession.run), tl2cgen (Predictor.predict on the compiled .so), lleaves
(Model.predict on the object file models.py compiled; LightGBM's models). Reads DIR/MODEL's
rows (raw little-endian f64) into a numpy array of the framework's dtype once, then times one
pass over every row at each batch size, on 1 thread and on N threads (set explicitly:
nthread, num_threads, intra_op_num_threads, Predictor(nthread=), n_jobs). Prints one JSON line; with
--predictions writes the batch-10,000 one-thread predictions (the positive class's
probability, or the regression value) as little-endian f64.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def contender(kind, d: Path, name, features):
    """(dtype, make(threads) -> predict(X) -> 1-d float64 array)."""
    meta = json.loads((d / f"{name}.json.meta").read_text())
    if kind == "xgboost":
        import xgboost as xgb

        bst = xgb.Booster(model_file=str(d / meta["model_file"]))

        def make(t):
            bst.set_param({"nthread": t})
            return lambda X: bst.inplace_predict(X)

        return np.float32, make
    if kind == "lightgbm":
        import lightgbm as lgb

        bst = lgb.Booster(model_file=str(d / meta["model_file"]))
        return np.float64, lambda t: (lambda X: bst.predict(X, num_threads=t))
    if kind == "onnxruntime":
        import onnxruntime as ort

        def make(t):
            o = ort.SessionOptions()
            o.intra_op_num_threads = t
            o.inter_op_num_threads = 1
            o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            s = ort.InferenceSession(str(d / f"{name}.onnx"), o, providers=["CPUExecutionProvider"])
            outs = [x.name for x in s.get_outputs()]
            last = outs[-1]  # regressor: "variable" (n, 1); classifier: label, probabilities (n, 2)

            def predict(X):
                y = s.run([last], {"X": X})[0]
                return y[:, -1]

            return predict

        return np.float32, make
    if kind == "tl2cgen":
        import tl2cgen

        dtype = np.float64 if meta["model_file"].endswith(".txt") else np.float32

        def make(t):
            p = tl2cgen.Predictor(str(d / f"{name}.so"), nthread=t)
            return lambda X: p.predict(tl2cgen.DMatrix(X)).reshape(len(X), -1)[:, -1]

        return dtype, make
    if kind == "lleaves":
        import lleaves

        m = lleaves.Model(model_file=str(d / meta["model_file"]))
        m.compile(cache=str(d / f"{name}.lleaves.o"))  # loads the object file models.py made
        return np.float64, lambda t: (lambda X: m.predict(X, n_jobs=t))
    raise SystemExit(f"unknown contender {kind}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("contender")
    ap.add_argument("dir", type=Path)
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--batches", default="1,100,10000")
    ap.add_argument("--predictions", type=Path)
    a = ap.parse_args()
    meta = json.loads((a.dir / f"{a.model}.json.meta").read_text())
    rows = np.fromfile(a.dir / f"{a.model}.rows.f64", dtype="<f8").reshape(-1, meta["features"])
    dtype, make = contender(a.contender, a.dir, a.model, meta["features"])
    X = np.ascontiguousarray(rows.astype(dtype))
    n = len(X)
    batches = [int(b) for b in a.batches.split(",")]
    results, preds = [], None
    for threads in sorted({1, a.threads}):
        predict = make(threads)
        predict(X[:100])  # warm-up: libraries loaded, pools started, pages touched
        for b in batches:
            if threads > 1 and b == 1:
                continue  # one row per call: the 1-thread figure
            chunks = [X[i : i + b] for i in range(0, n, b)]  # views, made before the clock
            out = []
            t = time.perf_counter()
            for c in chunks:
                out.append(predict(c))
            secs = time.perf_counter() - t
            got = np.concatenate([np.asarray(o, dtype=np.float64).reshape(-1) for o in out])
            if len(got) != n:
                raise SystemExit(f"{a.contender} {a.model}: {len(got)} predictions for {n} rows")
            if threads == 1 and b == max(batches):
                preds = got
            results.append({"batch": b, "threads": threads, "seconds": [secs]})
    if a.predictions is not None and preds is not None:
        preds.astype("<f8").tofile(a.predictions)
    print(json.dumps({"contender": a.contender, "rows": n, "results": results}))


if __name__ == "__main__":
    sys.exit(main())
