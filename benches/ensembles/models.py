"""The three models of issue 21, made by the real frameworks, and their conversions.

Each model NAME in DIR gets: NAME.txt (LightGBM) or NAME.json (XGBoost), the framework's
own file; NAME.tsm (`treeserve import`); NAME.onnx (onnxmltools); NAME.so (treelite +
TL2cgen, gcc -O3, branch annotation, quantize=1) or NAME.tl2cgen-error.txt saying why not;
for LightGBM's models NAME.lleaves.o (lleaves, LLVM, its default flags) unless it fails (the
meta's lleaves_error says why);
NAME.rows.f64 (the benchmark rows: unseen, raw little-endian f64, row after row) and
NAME.json.meta (what the report needs). Deterministic: fixed seeds, one thread.
"""

import json
import subprocess
import time
from pathlib import Path

import numpy as np

# name -> spec. `trees`, `leaves` / `depth` are scaled down by --quick (see spec()).
MODELS = {
    "m1": {"framework": "lightgbm", "objective": "regression", "trees": 100, "leaves": 31, "features": 5,
           "title": "m1: LightGBM regression, 100 trees × 31 leaves, 5 features"},
    "m2": {"framework": "xgboost", "objective": "binary:logistic", "trees": 500, "depth": 8, "features": 30,
           "title": "m2: XGBoost binary:logistic, 500 trees, max_depth 8, 30 features"},
    "m3": {"framework": "lightgbm", "objective": "binary", "trees": 1000, "leaves": 31, "features": 15,
           "categorical": [8, 25, 60],
           "title": "m3: LightGBM binary, 1,000 trees × 31 leaves, 15 features (3 categorical: 8, 25, 60 levels)"},
}
QUICK = {"m1": {"trees": 20, "leaves": 7}, "m2": {"trees": 24, "depth": 4}, "m3": {"trees": 24, "leaves": 7}}


def spec(name, quick):
    s = dict(MODELS[name])
    if quick:
        s.update(QUICK[name])
        s["title"] += f" (--quick: {s['trees']} trees)"
    return s


def data(s, n, seed):
    """n synthetic rows and targets: numeric features N(0,1) then categorical codes."""
    r = np.random.default_rng(seed)
    cats = s.get("categorical", [])
    nnum = s["features"] - len(cats)
    X = r.normal(0, 1, (n, nnum))
    w = np.random.default_rng(1000).normal(0, 1, (nnum,))
    z = X @ w / np.sqrt(nnum) + np.sin(2 * X[:, 0]) + X[:, 1 % nnum] * X[:, 2 % nnum]
    for j, levels in enumerate(cats):
        codes = r.integers(0, levels, n)
        z += np.random.default_rng(2000 + j).normal(0, 0.8, levels)[codes]
        X = np.column_stack([X, codes.astype(np.float64)])
    if s["objective"] == "regression":
        y = 3 * z + r.normal(0, 1, n)
    else:
        y = (z + r.normal(0, 1.0, n) > 0).astype(np.float64)
    return X, y


def make(name, out: Path, *, quick, rows, treeserve, log):
    """Trains and converts one model unless DIR already holds it with the same spec."""
    from importlib.metadata import version

    s = spec(name, quick)
    meta_path = out / f"{name}.json.meta"
    pkgs = ("xgboost-cpu", "lightgbm", "onnxmltools", "onnx", "treelite", "tl2cgen", "lleaves", "llvmlite", "numpy")
    want = {"spec": s, "rows": rows, "versions": {p: version(p) for p in pkgs}}
    if meta_path.exists() and json.loads(meta_path.read_text()).get("want") == want:
        # The frameworks' files are reused; the artifact is always made again by this binary.
        meta = json.loads(meta_path.read_text())
        meta["import_seconds"] = import_tsm(name, out, out / meta["model_file"], treeserve)
        return meta
    t0 = time.monotonic()
    train_n = 4000 if quick else 40_000
    X, y = data(s, train_n, seed=21)
    B, _ = data(s, rows, seed=2100)  # the benchmark rows: another seed, never trained on
    feats = [f"f{i}" for i in range(s["features"])]
    if s["framework"] == "lightgbm":
        import lightgbm as lgb

        ncat = len(s.get("categorical", []))
        cat_idx = list(range(s["features"] - ncat, s["features"]))
        p = {"objective": s["objective"], "num_leaves": s["leaves"], "learning_rate": 0.05, "seed": 0,
             "deterministic": True, "num_threads": 1, "force_col_wise": True, "verbose": -1,
             "min_data_in_leaf": 5, "max_cat_to_onehot": 4}
        ds = lgb.Dataset(X, y, feature_name=feats, categorical_feature=cat_idx or "auto", free_raw_data=False)
        bst = lgb.train(p, ds, num_boost_round=s["trees"])
        model_file = out / f"{name}.txt"
        bst.save_model(str(model_file))
        dump = bst.dump_model()
        leaves = [t["num_leaves"] for t in dump["tree_info"]]
        cat_splits = sum(json.dumps(t["tree_structure"]).count('"decision_type": "=="') for t in dump["tree_info"])
    else:
        import xgboost as xgb

        p = {"objective": s["objective"], "max_depth": s["depth"], "eta": 0.1, "nthread": 1, "seed": 0,
             "tree_method": "hist", "min_child_weight": 0.1}
        bst = xgb.train(p, xgb.DMatrix(X, y, feature_names=feats), num_boost_round=s["trees"])
        model_file = out / f"{name}.json"
        bst.save_model(str(model_file))
        leaves = [d.count("leaf=") for d in bst.get_dump()]
        cat_splits = 0
    B.astype("<f8").tofile(out / f"{name}.rows.f64")
    log(f"{name}: trained {s['trees']} trees in {time.monotonic() - t0:.1f} s, mean {np.mean(leaves):.1f} leaves")

    import_s = import_tsm(name, out, model_file, treeserve)

    onnx_error = to_onnx(s, bst, out / f"{name}.onnx")
    tl_error, tl_s = to_tl2cgen(s, model_file, B, out / f"{name}.so")
    (out / f"{name}.tl2cgen-error.txt").unlink(missing_ok=True)
    if tl_error:
        (out / f"{name}.tl2cgen-error.txt").write_text(tl_error)
    ll_error, ll_s = to_lleaves(s, model_file, out / f"{name}.lleaves.o")
    meta = {"want": want, "name": name, "title": s["title"], "trees": len(leaves),
            "mean_leaves": float(np.mean(leaves)), "categorical_splits": cat_splits,
            "features": s["features"], "rows": rows, "model_file": model_file.name,
            "import_seconds": import_s, "tl2cgen_build_seconds": tl_s, "onnx_error": onnx_error,
            "tl2cgen_error": tl_error, "lleaves_build_seconds": ll_s, "lleaves_error": ll_error}
    meta_path.write_text(json.dumps(meta, indent=1))
    log(f"{name}: import {import_s:.2f} s, onnx {'ok' if not onnx_error else onnx_error}, "
        f"tl2cgen {'ok' if not tl_error else tl_error} ({tl_s:.0f} s), "
        f"lleaves {'ok' if not ll_error else ll_error} ({ll_s:.0f} s)")
    return meta


def import_tsm(name, out, model_file, treeserve):
    """`treeserve import` to NAME.tsm; its own error stops the run (never worked around
    here). Returns the seconds it took."""
    t = time.monotonic()
    r = subprocess.run([str(treeserve), "import", "--name", name, "--output", str(out / f"{name}.tsm"),
                        str(model_file)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"treeserve import refused {name}: {r.stderr.strip()}")
    return time.monotonic() - t


def to_onnx(s, bst, path):
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    types = [("X", FloatTensorType([None, s["features"]]))]
    try:
        if s["framework"] == "lightgbm":
            onx = onnxmltools.convert_lightgbm(bst, initial_types=types, zipmap=False)
        else:
            anon = bst.copy()
            anon.feature_names = None  # the converter reads the dump, which must name f0..fN
            anon.feature_types = None
            onx = onnxmltools.convert_xgboost(anon, initial_types=types)
        path.write_bytes(onx.SerializeToString())
        return None
    except Exception as e:  # reported, not fatal: ONNX is one contender among several
        return f"onnxmltools: {type(e).__name__}: {e}"


def to_tl2cgen(s, model_file, rows, path):
    """treelite 4.8 reads the model, TL2cgen compiles it with gcc -O3 (branch annotation,
    quantize=1); (error, seconds)."""
    t = time.monotonic()
    try:
        import tl2cgen
        import treelite

        if s["framework"] == "lightgbm":
            model = treelite.frontend.load_lightgbm_model(str(model_file))
        else:
            model = treelite.frontend.load_xgboost_model(str(model_file))
        # Annotation from other rows than the benchmark's (a fresh draw of the training
        # distribution), as a deployment would annotate from its training data.
        A, _ = data(s, 5000, seed=777)
        dtype = "float64" if s["framework"] == "lightgbm" else "float32"
        ann = path.with_suffix(".annotation.json")
        tl2cgen.annotate_branch(model, tl2cgen.DMatrix(A.astype(dtype)), str(ann), nthread=1)
        tl2cgen.export_lib(model, toolchain="gcc", libpath=str(path),
                           params={"annotate_in": str(ann), "quantize": 1, "parallel_comp": 16},
                           nthread=2)
        return None, time.monotonic() - t
    except Exception as e:
        return f"{type(e).__name__}: {e}".strip()[:500], time.monotonic() - t


def to_lleaves(s, model_file, path):
    """lleaves compiles a LightGBM model to an object file (LLVM, lleaves' default flags);
    (error, seconds). XGBoost's models: ("not a LightGBM model", 0): lleaves reads only
    LightGBM's text format."""
    if s["framework"] != "lightgbm":
        return "not a LightGBM model", 0.0
    t = time.monotonic()
    try:
        import lleaves

        path.unlink(missing_ok=True)
        lleaves.Model(model_file=str(model_file)).compile(cache=str(path))
        return None, time.monotonic() - t
    except Exception as e:
        return f"{type(e).__name__}: {e}".strip()[:500], time.monotonic() - t
