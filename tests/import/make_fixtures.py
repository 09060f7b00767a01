#!/usr/bin/env python3
"""Model fixtures for `treeserve import`, made by the real frameworks.

    make_fixtures.py OUT_DIR

Trains XGBoost, LightGBM and scikit-learn tree models on synthetic data (fixed seeds,
single-threaded), saves them in each framework's own format (XGBoost .json/.ubj,
LightGBM .txt, scikit-learn and the onnxmltools conversions as .onnx) and writes, per
fixture NAME:

    NAME.<ext>            the model file
    NAME.reference.csv    feature columns in model order, then the true target; floats as
                          repr(float) (round-trip), a missing value is an empty cell
    NAME.expected.csv     what `treeserve predict --probabilities` should write for the
                          reference rows: predicted_<target>, then p_<label> per class;
                          the framework's own predictions (see each entry's "oracle")

and OUT_DIR/fixtures.json describing every fixture (tests/import/README.md). Nothing here
is committed: CI (.ci/run) runs this in target/importenv and exports
TREESERVE_IMPORT_FIXTURES=OUT_DIR.
"""

import json
import os
import shutil
import sys
import time
import warnings

if __name__ == "__main__" and os.environ.get("PYTHONHASHSEED") != "0":
    # skl2onnx lists opset imports in set order: fixed string hashes make every run write the
    # same bytes.
    os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, PYTHONHASHSEED="0"))

import numpy as np  # noqa: E402

START = time.monotonic()

import lightgbm as lgb  # noqa: E402
import onnx  # noqa: E402
import onnxmltools  # noqa: E402
import onnxruntime as ort  # noqa: E402
import pandas as pd  # noqa: E402
import sklearn  # noqa: E402
import skl2onnx  # noqa: E402
import xgboost as xgb  # noqa: E402
from onnxmltools.convert.common.data_types import FloatTensorType as MLFloatTensorType  # noqa: E402
from skl2onnx import to_onnx  # noqa: E402
from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType  # noqa: E402
from sklearn.ensemble import (  # noqa: E402
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor  # noqa: E402

NAN = float("nan")
N_TRAIN = 3000
N_REF = 1000
# The ORT check of the scikit-learn → ONNX fixtures: scikit-learn is the oracle when
# |ort - sklearn| <= ORT_REL * max(|sklearn|, 1e-3) for every value (else ORT is, with a note).
ORT_REL = 1e-6

# ---------------------------------------------------------------------------------------
# Synthetic data: realistic names, varied scales, negatives, exact zeros, tiny values.


def _balance(r, n):
    x = r.normal(1500.0, 6000.0, n)
    x[r.random(n) < 0.12] = 0.0
    return x


def _discount(r, n):
    return np.where(r.random(n) < 0.45, 0.0, r.uniform(0.5, 40.0, n))


def _drift(r, n):
    # Sensor drift around zero: negatives, exact zeros and values with |x| < 1e-35 (LightGBM
    # counts |x| <= kZeroThreshold = 1e-35 as zero; -3e-40 is subnormal in float32).
    x = r.normal(0.0, 0.002, n)
    u = r.random(n)
    x[u < 0.08] = 0.0
    tiny = (u >= 0.08) & (u < 0.16)
    x[tiny] = r.choice([1e-36, -1e-36, 5e-36, -5e-36, 9.9e-36, -3e-40, 2e-35, -2e-35], tiny.sum())
    return x


FEATURES = {
    # credit
    "age": lambda r, n: r.integers(18, 91, n).astype(float),
    "income": lambda r, n: np.round(r.lognormal(10.8, 0.7, n), 2),
    "account_balance": _balance,
    "credit_score": lambda r, n: np.clip(np.round(r.normal(680.0, 70.0, n)), 300, 850),
    "debt_ratio": lambda r, n: r.beta(2.0, 5.0, n),
    "tenure_months": lambda r, n: r.integers(0, 241, n).astype(float),
    # weather
    "temperature_c": lambda r, n: r.normal(14.0, 11.0, n),
    "humidity": lambda r, n: r.uniform(0.05, 1.0, n),
    "wind_speed": lambda r, n: r.gamma(2.0, 3.0, n),
    "pressure_hpa": lambda r, n: r.normal(1013.0, 9.0, n),
    "elevation_m": lambda r, n: r.normal(400.0, 700.0, n),
    "sensor_drift": _drift,
    # web shop
    "latency_ms": lambda r, n: r.exponential(40.0, n),
    "error_rate": lambda r, n: r.beta(0.5, 30.0, n),
    "visits_last_30d": lambda r, n: r.poisson(4.0, n).astype(float),
    "discount_pct": _discount,
    "session_minutes": lambda r, n: r.lognormal(1.5, 1.0, n),
    "cart_value": lambda r, n: r.normal(80.0, 60.0, n),
}

DOMAINS = {
    "credit": ["age", "income", "account_balance", "credit_score", "debt_ratio", "tenure_months"],
    "weather": ["temperature_c", "humidity", "wind_speed", "pressure_hpa", "elevation_m", "sensor_drift"],
    "shop": ["latency_ms", "error_rate", "visits_last_30d", "discount_pct", "session_minutes", "cart_value", "age"],
    "small": ["age", "income", "debt_ratio", "temperature_c"],
}


def make_data(seed, domain, n_rows):
    """The domain's RNG (for labels, NaNs, ...), feature names and float64 feature matrix."""
    r = np.random.default_rng(seed)
    names = DOMAINS[domain]
    X = np.column_stack([FEATURES[f](r, n_rows) for f in names]).astype(np.float64)
    return r, names, X


def latent(r, X, k=1):
    """k nonlinear signals of the rows (robustly standardized features, interactions, steps)."""
    med = np.median(X, axis=0)
    scale = np.percentile(X, 75, axis=0) - np.percentile(X, 25, axis=0)
    scale[scale == 0] = 1.0
    S = (X - med) / scale
    W = r.normal(0.0, 1.0, (X.shape[1], k))
    z = S @ W
    z += 0.9 * np.tanh(S[:, [0]] * S[:, [1]])
    z += 0.7 * (S[:, [2]] > 0.3)
    z -= 0.5 * np.abs(S[:, [-1]])
    return z


def labels_binary(r, z):
    return (r.random(len(z)) < 1.0 / (1.0 + np.exp(-1.6 * z[:, 0]))).astype(int)


def labels_multi(r, z):
    return np.argmax(1.5 * z + r.gumbel(size=z.shape), axis=1)


def rainfall(r, z):
    """A positive, skewed amount (millimetres of rain)."""
    return np.round(np.exp(3.0 + 0.35 * z[:, 0] + r.normal(0.0, 0.2, len(z))), 1)


def inject_nan(r, X, cols, rate):
    X = X.copy()
    for c in cols:
        X[r.random(len(X)) < rate, c] = NAN
    return X


def split(X, y):
    return X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:]


def to_f32(X):
    """The rows rounded to float32, so the CSV's float64 text is exactly the model's input."""
    return X.astype(np.float32).astype(np.float64)


# ---------------------------------------------------------------------------------------
# Writing fixtures.


def num(x):
    x = float(x)
    return "" if np.isnan(x) else repr(x)


class Out:
    def __init__(self, path):
        self.path = path
        self.entries = []
        os.makedirs(path, exist_ok=True)

    def file(self, name):
        return os.path.join(self.path, name)

    def write_csvs(self, name, features, target, X, y, classes, labels, values):
        """reference.csv (X, y) and expected.csv (labels and probabilities, or values)."""
        with open(self.file(f"{name}.reference.csv"), "w", newline="") as f:
            f.write(",".join(features + [target]) + "\n")
            for row, t in zip(X, y):
                tv = str(t) if classes is not None else num(t)
                f.write(",".join([num(v) for v in row] + [tv]) + "\n")
        with open(self.file(f"{name}.expected.csv"), "w", newline="") as f:
            head = [f"predicted_{target}"]
            if classes is not None:
                head += [f"p_{c}" for c in classes]
            f.write(",".join(head) + "\n")
            if classes is not None:
                assert values.shape == (len(X), len(classes)), (name, values.shape)
                for lab, p in zip(labels, values):
                    f.write(",".join([str(lab)] + [num(v) for v in p]) + "\n")
            else:
                values = np.asarray(values).reshape(-1)
                assert len(values) == len(X)
                for v in values:
                    assert np.isfinite(v), (name, v)
                    f.write(num(v) + "\n")

    def add(self, entry, X, y, labels, values, ort_note=""):
        name = entry["name"]
        classes = entry["classes"]
        # Always NAME.reference.csv and NAME.expected.csv (tests/it/import_fixtures.rs builds
        # the names); the fields say so too.
        entry["reference"] = f"{name}.reference.csv"
        entry["expected"] = f"{name}.expected.csv"
        self.write_csvs(name, entry["features"], entry["target"], X, y, classes, labels, values)
        entry["rows"] = int(len(X))
        entry["missing"] = bool(np.isnan(X).any())
        entry["size_bytes"] = os.path.getsize(self.file(entry["file"]))
        # A fixed key order keeps fixtures.json readable.
        first = ["name", "file", "reference", "expected", "format", "framework", "framework_version",
                 "task", "classes", "features", "target", "missing", "categorical", "trees", "objective",
                 "oracle", "tolerance_note"]
        ordered = {k: entry[k] for k in first}
        ordered.update({k: v for k, v in entry.items() if k not in ordered})
        self.entries.append(ordered)
        size = entry["size_bytes"]
        print(f"{name:28s} {entry['format']:8s} {entry['task']:14s} trees={entry['trees']:<5d} "
              f"size={size / 1024:8.1f} KiB  {ort_note}", flush=True)


def class_rows(p1):
    """Binary probabilities p(1) as the two columns [1 - p, p], and the label p > 0.5."""
    p1 = np.asarray(p1, dtype=np.float64).reshape(-1)
    return np.where(p1 > 0.5, 1, 0), np.column_stack([1.0 - p1, p1])


def argmax_rows(P):
    P = np.asarray(P, dtype=np.float64)
    return np.argmax(P, axis=1), P


# ---------------------------------------------------------------------------------------
# XGBoost


XGB_TOL = ("XGBoost works in float32: inputs are cast to float32 and compared with float32 "
           "split_conditions (left when x < split; NaN follows default_left); it sums the float32 "
           "leaf values in float32 and transforms in float32. f64_vs_framework is the measured gap "
           "between XGBoost and a float64 evaluation of the same leaves (base margin + float64 sum, "
           "float64 transform): a fair tolerance. Routing must match exactly.")

# How XGBoost turns learner_model_param.base_score into the starting margin.
XGB_LINK = {
    "binary:logistic": "logit", "reg:logistic": "logit", "count:poisson": "log", "reg:gamma": "log",
    "reg:tweedie": "log", "reg:squarederror": "identity", "multi:softprob": "identity",
}


def xgb_float64_check(bst, trees, tree_info, objective, base_score, dmatrix, pred):
    """The base margin from base_score, and the gap between XGBoost's predictions and a float64
    evaluation of the leaves XGBoost picked (pred_leaf)."""
    n = bst.num_boosted_rounds()
    leaf = bst.predict(dmatrix, pred_leaf=True, iteration_range=(0, n)).reshape(len(pred), -1)
    k = max(tree_info) + 1
    total = np.zeros((len(pred), k))
    for t, tree in enumerate(trees):
        values = np.array(tree["split_conditions"], dtype=np.float32).astype(np.float64)
        total[:, tree_info[t]] += values[leaf[:, t].astype(int)]
    base = np.array([float(np.float32(v)) for v in base_score.strip("[]").split(",")])
    link = XGB_LINK[objective]
    margin0 = {"logit": np.log(base / (1 - base)), "log": np.log(base), "identity": base}[link]
    m = total + margin0
    if objective in ("binary:logistic", "reg:logistic"):
        f64 = 1.0 / (1.0 + np.exp(-m[:, 0]))
    elif objective == "multi:softprob":
        e = np.exp(m - m.max(axis=1, keepdims=True))
        f64 = e / e.sum(axis=1, keepdims=True)
    elif link == "log":
        f64 = np.exp(m[:, 0])
    else:
        f64 = m[:, 0]
    d = diff(pred, f64)
    # A wrong base margin or transform would show as a gap far beyond float32 rounding.
    assert d["max_rel"] < 1e-3, (objective, d)
    return link, [float(v) for v in margin0], d


def xgb_trees(path):
    with open(path) as f:
        model = json.load(f)
    trees = model["learner"]["gradient_booster"]["model"]["trees"]
    return model, trees


def xgb_thresholds(trees):
    out = []
    for t in trees:
        for i, (l, st) in enumerate(zip(t["left_children"], t["split_type"])):
            if l != -1 and st == 0:
                out.append((t["split_indices"][i], float(np.float32(t["split_conditions"][i]))))
    return out


def edge_rows(r, X, splits, n_rows, widen):
    """Rows whose values sit exactly on split thresholds or next to them.

    widen(t) gives the values tried around threshold t."""
    picked = r.integers(0, len(X), n_rows)
    rows = X[picked].copy()
    for row in rows:
        for _ in range(3):
            f, t = splits[r.integers(0, len(splits))]
            cands = widen(t)
            row[f] = cands[r.integers(0, len(cands))]
    return rows, picked


def xgb_fixture(out, name, *, domain, seed, objective, rounds, params=None, classes=None,
                nan_cols=(), nan_rate=0.1, target, y_fn, early_stopping=None, edge=0,
                categorical=None, ubj=True, note=""):
    n_valid = N_TRAIN // 2 if early_stopping else 0
    r, features, X = make_data(seed, domain, N_TRAIN + N_REF + n_valid)
    feature_types = None
    cat_info = None
    if categorical:
        # categorical: {feature name: [category names]}; codes are drawn and stored as numbers.
        for fname, cats in categorical.items():
            features = features + [fname]
            X = np.column_stack([X, r.integers(0, len(cats), len(X)).astype(float)])
        feature_types = ["q"] * (len(features) - len(categorical)) + ["c"] * len(categorical)
        cat_info = categorical
    z = latent(r, X, 1 if classes is None or len(classes) == 2 else len(classes))
    if categorical:
        for j, (fname, cats) in enumerate(categorical.items()):
            effect = np.random.default_rng(seed + j).normal(0, 1.2, len(cats))
            z += effect[X[:, features.index(fname)].astype(int)][:, None]
    y = y_fn(r, z)
    if nan_cols:
        X = inject_nan(r, X, [features.index(c) for c in nan_cols], nan_rate)
    Xtr, ytr, Xref, yref = split(X[: N_TRAIN + N_REF], y[: N_TRAIN + N_REF])
    Xv, yv = X[N_TRAIN + N_REF:], y[N_TRAIN + N_REF:]

    p = {"objective": objective, "tree_method": "hist", "nthread": 1, "seed": 0,
         "max_depth": 4, "eta": 0.1}
    if classes is not None and len(classes) > 2:
        p["num_class"] = len(classes)
    p.update(params or {})
    if categorical:
        frame = pd.DataFrame(Xtr, columns=features)
        for fname, cats in categorical.items():
            frame[fname] = pd.Categorical.from_codes(frame[fname].astype(int), categories=cats)
        dtrain = xgb.DMatrix(frame, ytr, enable_categorical=True)
    else:
        dtrain = xgb.DMatrix(Xtr, ytr, missing=NAN, feature_names=features)
    evals = []
    if early_stopping:
        evals = [(xgb.DMatrix(Xv, yv, missing=NAN, feature_names=features), "valid")]
    bst = xgb.train(p, dtrain, rounds, evals=evals, early_stopping_rounds=early_stopping,
                    verbose_eval=False)

    json_path = out.file(f"{name}.json")
    bst.save_model(json_path)
    model, trees = xgb_trees(json_path)
    loaded = xgb.Booster(model_file=json_path)

    if edge:
        splits = xgb_thresholds(trees)

        def around(t):
            # t is a float32; its float64 neighbours round back to t in float32, so XGBoost
            # (x < t on float32) sends them right; only values below t by more than half a
            # float32 ulp go left.
            t32 = np.float32(t)
            below32 = float(np.nextafter(t32, np.float32(-np.inf)))
            return [t, float(np.nextafter(t, -np.inf)), float(np.nextafter(t, np.inf)), below32,
                    (t + below32) / 2]
        rows, picked = edge_rows(r, Xref, splits, edge, around)
        Xref, yref = np.vstack([Xref, rows]), np.concatenate([yref, yref[picked]])

    dref = xgb.DMatrix(Xref, missing=NAN, feature_names=features, feature_types=feature_types,
                       enable_categorical=bool(categorical))
    n_rounds = bst.num_boosted_rounds()
    pred = bst.predict(dref, iteration_range=(0, n_rounds))
    # The model as read back from its file predicts the same.
    assert np.array_equal(pred, loaded.predict(dref, iteration_range=(0, n_rounds))), name
    if categorical:
        frame = pd.DataFrame(Xref, columns=features)
        for fname, cats in categorical.items():
            frame[fname] = pd.Categorical.from_codes(frame[fname].astype(int), categories=cats)
        assert np.array_equal(pred, bst.predict(xgb.DMatrix(frame, enable_categorical=True),
                                                iteration_range=(0, n_rounds))), name
    if classes is None:
        labels, values = None, pred.astype(np.float64)
        task = "regression"
    elif len(classes) == 2:
        labels, values = class_rows(pred)
        task = "classification"
    else:
        labels, values = argmax_rows(pred)
        task = "classification"

    cat_feats = sorted({features[t["split_indices"][i]] for t in trees
                        for i, st in enumerate(t["split_type"]) if st == 1})
    lp = model["learner"]["learner_model_param"]
    link, margin0, f64_gap = xgb_float64_check(
        bst, trees, model["learner"]["gradient_booster"]["model"]["tree_info"], objective,
        lp["base_score"], dref, pred)
    entry = {
        "name": name, "file": f"{name}.json", "format": "xgboost", "framework": "xgboost",
        "framework_version": xgb.__version__, "task": task,
        "classes": [str(c) for c in classes] if classes is not None else None,
        "features": features, "target": target, "categorical": cat_feats,
        "trees": len(trees), "objective": objective,
        "oracle": "xgboost Booster.predict(DMatrix(X, missing=nan), "
                  f"iteration_range=(0, {n_rounds})): all trees"
                  + ("; binary: [1-p, p], label p > 0.5" if task == "classification" and len(classes) == 2 else "")
                  + ("; label = argmax" if task == "classification" and len(classes) > 2 else ""),
        "tolerance_note": XGB_TOL,
        "base_score": lp["base_score"],
        "base_margin": margin0,
        "base_score_note": {
            "logit": "the starting margin is logit(base_score); base_score is a probability",
            "log": "the starting margin is log(base_score); base_score is in the output's units",
            "identity": ("base_score holds one starting margin per class, used as is"
                         if objective == "multi:softprob" else "the starting margin is base_score"),
        }[link],
        "f64_vs_framework": f64_gap,
        "num_boosted_rounds": n_rounds,
    }
    if early_stopping:
        entry["best_iteration"] = bst.best_iteration
        entry["note"] = (f"early-stopped (early_stopping_rounds={early_stopping}): the file keeps all "
                         f"{n_rounds} rounds and records best_iteration={bst.best_iteration} in "
                         "learner.attributes; expected.csv uses ALL trees")
    if categorical:
        entry["category_codes"] = cat_info
        entry["note"] = ("trained on a pandas DataFrame with category dtype (enable_categorical=True); "
                         "the reference CSV holds each category's CODE (its index in category_codes) "
                         "as a number; predictions from codes equal those from the DataFrame")
    if edge:
        entry["edge_rows"] = edge
        entry["edge_note"] = (f"the last {edge} reference rows put values exactly on float32 split "
                              "conditions, on their float64 neighbours (which round to the same float32) "
                              "and half a float32 ulp below: they separate x < t in float32 from float64 "
                              "comparisons; each keeps the target of the row it was copied from")
    if note:
        entry["note"] = (entry.get("note", "") + "; " + note).lstrip("; ")
    out.add(dict(entry), Xref, yref, labels, values,
            f"f64 vs xgboost max_abs={f64_gap['max_abs']:.3g} max_rel={f64_gap['max_rel']:.3g}")

    if ubj:
        ubj_path = out.file(f"{name}.ubj")
        bst.save_model(ubj_path)
        again = xgb.Booster(model_file=ubj_path)
        assert np.array_equal(pred, again.predict(dref, iteration_range=(0, n_rounds))), name
        twin = dict(entry, name=f"{name}_ubj", file=f"{name}.ubj", same_model_as=name)
        twin.pop("reference", None)
        twin.pop("expected", None)
        twin["note"] = (entry.get("note", "") + "; " if entry.get("note") else "") + \
            f"the same booster as {name}, saved as UBJSON; its CSVs are copies of {name}'s"
        out.add(twin, Xref, yref, labels, values, "same booster, UBJSON")
    return bst, features, Xref, yref


def xgboost_fixtures(out):
    bin_y = labels_binary
    multi_y = labels_multi
    binary_nan = xgb_fixture(out, "xgb_binary_nan", domain="credit", seed=11, objective="binary:logistic",
                rounds=120, classes=[0, 1], target="defaulted", y_fn=bin_y,
                nan_cols=["income", "account_balance", "debt_ratio"], nan_rate=0.12,
                note="NaNs in training and reference rows (income, account_balance, debt_ratio): "
                     "XGBoost sends them along default_left")
    xgb_fixture(out, "xgb_multiclass", domain="shop", seed=12, objective="multi:softprob",
                rounds=60, classes=[0, 1, 2, 3], target="segment", y_fn=multi_y)
    xgb_fixture(out, "xgb_regression_500", domain="weather", seed=13, objective="reg:squarederror",
                rounds=500, params={"eta": 0.05}, target="rainfall_mm",
                y_fn=rainfall, edge=200)
    xgb_fixture(out, "xgb_poisson", domain="shop", seed=14, objective="count:poisson", rounds=80,
                target="purchases", y_fn=lambda r, z: r.poisson(np.exp(0.5 * z[:, 0] + 0.8)))
    xgb_fixture(out, "xgb_tweedie", domain="weather", seed=15, objective="reg:tweedie", rounds=80,
                params={"tweedie_variance_power": 1.4}, target="claim_amount",
                y_fn=lambda r, z: np.where(r.random(len(z)) < 0.4, 0.0,
                                           r.gamma(2.0, np.exp(0.4 * z[:, 0] + 3.0) / 2.0)))
    xgb_fixture(out, "xgb_gamma", domain="credit", seed=16, objective="reg:gamma", rounds=60,
                target="loss_amount",
                y_fn=lambda r, z: r.gamma(3.0, np.exp(0.3 * z[:, 0] + 6.0) / 3.0))
    xgb_fixture(out, "xgb_logistic", domain="credit", seed=17, objective="reg:logistic", rounds=60,
                target="utilization",
                y_fn=lambda r, z: 1.0 / (1.0 + np.exp(-(z[:, 0] + r.normal(0, 0.3, len(z))))))
    regions = ["north", "south", "east", "west", "central", "islands"]
    lines = ["bikes", "books", "cameras", "coffee", "desks", "drones", "garden", "games", "jackets",
             "lamps", "music", "phones", "shoes", "tools", "toys"]
    xgb_fixture(out, "xgb_categorical", domain="small", seed=18, objective="binary:logistic",
                rounds=60, classes=[0, 1], target="returned", y_fn=bin_y,
                categorical={"store_region": regions, "product_line": lines})
    xgb_fixture(out, "xgb_early_stopped", domain="credit", seed=19, objective="binary:logistic",
                rounds=1000, params={"eta": 0.3, "max_depth": 5}, classes=[0, 1], target="churned",
                y_fn=bin_y, early_stopping=10)
    return binary_nan


# ---------------------------------------------------------------------------------------
# LightGBM


LGB_TOL = ("LightGBM works in float64: x <= threshold (double, written with 17 digits), leaf values "
           "summed in tree order, then the transform; a float64 evaluation should agree to ~1e-12 "
           "relative.")


def lgb_text_splits(path):
    """(feature index, threshold) of every numerical split in a LightGBM text model."""
    splits = []
    feats = thr = dec = None
    with open(path) as f:
        for line in f:
            if line.startswith("split_feature="):
                feats = [int(v) for v in line.split("=", 1)[1].split()]
            elif line.startswith("threshold="):
                thr = [float(v) for v in line.split("=", 1)[1].split()]
            elif line.startswith("decision_type="):
                dec = [int(v) for v in line.split("=", 1)[1].split()]
            elif line.startswith("left_child=") and feats is not None:
                splits += [(fi, t) for fi, t, d in zip(feats, thr, dec) if not d & 1]
                feats = thr = dec = None
    return splits


def lgb_fixture(out, name, *, domain, seed, objective, rounds, params=None, classes=None,
                nan_cols=(), nan_rate=0.1, target, y_fn, categorical=None, edge=0, note=""):
    r, features, X = make_data(seed, domain, N_TRAIN + N_REF)
    cat_names = []
    if categorical:
        # categorical: {feature name: number of categories}; integer codes 0..n-1.
        for fname, ncat in categorical.items():
            features = features + [fname]
            X = np.column_stack([X, r.integers(0, ncat, len(X)).astype(float)])
            cat_names.append(fname)
    z = latent(r, X, 1 if classes is None or len(classes) == 2 else len(classes))
    if categorical:
        for j, (fname, ncat) in enumerate(categorical.items()):
            effect = np.random.default_rng(seed + j).normal(0, 1.2, ncat)
            z += effect[X[:, features.index(fname)].astype(int)][:, None]
    y = y_fn(r, z)
    if nan_cols:
        X = inject_nan(r, X, [features.index(c) for c in nan_cols], nan_rate)
    Xtr, ytr, Xref, yref = split(X, y)
    if categorical:
        # A few reference rows carry codes never seen in training.
        for fname, ncat in categorical.items():
            c = features.index(fname)
            Xref[r.random(len(Xref)) < 0.02, c] = float(ncat + 1)

    p = {"objective": objective, "num_leaves": 15, "learning_rate": 0.1, "seed": 0,
         "deterministic": True, "num_threads": 1, "force_col_wise": True, "verbose": -1}
    if classes is not None and len(classes) > 2:
        p["num_class"] = len(classes)
    p.update(params or {})
    dtrain = lgb.Dataset(Xtr, ytr, feature_name=features,
                         categorical_feature=cat_names or "auto", free_raw_data=False)
    bst = lgb.train(p, dtrain, num_boost_round=rounds)
    path = out.file(f"{name}.txt")
    bst.save_model(path)
    loaded = lgb.Booster(model_file=path)

    if edge:
        splits = lgb_text_splits(path)

        def around(t):
            return [t, float(np.nextafter(t, -np.inf)), float(np.nextafter(t, np.inf))]
        rows, picked = edge_rows(r, Xref, splits, edge, around)
        Xref, yref = np.vstack([Xref, rows]), np.concatenate([yref, yref[picked]])

    pred = bst.predict(Xref.astype(np.float64))
    assert np.array_equal(pred, loaded.predict(Xref.astype(np.float64))), name
    if classes is None:
        labels, values, task = None, pred, "regression"
    elif len(classes) == 2:
        (labels, values), task = class_rows(pred), "classification"
    else:
        (labels, values), task = argmax_rows(pred), "classification"

    dump = bst.dump_model()
    cat_feats = set()
    single_leaf = 0

    def walk(node):
        if "split_index" not in node:
            return
        if node["decision_type"] == "==":
            cat_feats.add(features[node["split_feature"]])
        walk(node["left_child"])
        walk(node["right_child"])
    for t in dump["tree_info"]:
        if "split_index" not in t["tree_structure"]:
            single_leaf += 1
        walk(t["tree_structure"])
    with open(path) as f:
        header = f.read().split("\nTree=", 1)[0]
    head = dict(line.split("=", 1) for line in header.splitlines() if "=" in line)
    entry = {
        "name": name, "file": f"{name}.txt", "format": "lightgbm", "framework": "lightgbm",
        "framework_version": lgb.__version__, "task": task,
        "classes": [str(c) for c in classes] if classes is not None else None,
        "features": features, "target": target, "categorical": sorted(cat_feats),
        "trees": bst.num_trees(), "objective": head["objective"],
        "oracle": "lightgbm Booster.predict(X float64), all trees"
                  + ("; binary: [1-p, p], label p > 0.5" if task == "classification" and len(classes) == 2 else "")
                  + ("; label = argmax" if task == "classification" and len(classes) > 2 else ""),
        "tolerance_note": LGB_TOL,
        "average_output": "average_output" in head or "\naverage_output" in header,
        "single_leaf_trees": single_leaf,
    }
    if categorical:
        entry["note"] = ("categorical_feature=" + ",".join(cat_names) + ": integer codes in the data; "
                         "about 2% of reference rows carry a code never seen in training (goes right)")
    if edge:
        entry["edge_rows"] = edge
        entry["edge_note"] = (f"the last {edge} reference rows put values exactly on split thresholds "
                              "and on their float64 neighbours (x <= threshold goes left); each keeps the "
                              "target of the row it was copied from")
    if note:
        entry["note"] = (entry.get("note", "") + "; " + note).lstrip("; ")
    out.add(entry, Xref, yref, labels, values)
    return bst, features, Xref, yref


def lightgbm_fixtures(out):
    bin_y = labels_binary
    res = {}
    res["binary"] = lgb_fixture(out, "lgb_binary", domain="credit", seed=21, objective="binary",
                                rounds=100, classes=[0, 1], target="defaulted", y_fn=bin_y)
    lgb_fixture(out, "lgb_multiclass", domain="shop", seed=22, objective="multiclass", rounds=50,
                classes=[0, 1, 2], target="segment", y_fn=labels_multi)
    lgb_fixture(out, "lgb_regression_500", domain="weather", seed=23, objective="regression",
                rounds=500, params={"learning_rate": 0.05}, target="rainfall_mm",
                y_fn=rainfall, edge=200)
    lgb_fixture(out, "lgb_regression_l1", domain="credit", seed=24, objective="regression_l1",
                rounds=80, target="credit_limit",
                y_fn=lambda r, z: 5000.0 + 2000.0 * z[:, 0] + r.standard_t(2, len(z)) * 300.0)
    lgb_fixture(out, "lgb_huber", domain="shop", seed=25, objective="huber", rounds=80,
                params={"alpha": 15.0}, target="basket_value",
                y_fn=lambda r, z: 60.0 + 25.0 * z[:, 0] + r.standard_t(2, len(z)) * 10.0)
    lgb_fixture(out, "lgb_poisson", domain="shop", seed=26, objective="poisson", rounds=80,
                target="purchases", y_fn=lambda r, z: r.poisson(np.exp(0.5 * z[:, 0] + 0.8)))
    lgb_fixture(out, "lgb_zero_as_missing", domain="weather", seed=27, objective="regression",
                rounds=100, params={"zero_as_missing": True}, target="rainfall_mm",
                nan_cols=["humidity", "sensor_drift"], nan_rate=0.08,
                y_fn=rainfall, edge=100,
                note="zero_as_missing=True: 0.0, values with |x| <= 1e-35 (sensor_drift) and NaN all "
                     "take the missing direction of zero-as-missing splits")
    lgb_fixture(out, "lgb_nan", domain="weather", seed=28, objective="binary", rounds=100,
                classes=[0, 1], target="storm", y_fn=bin_y,
                nan_cols=["temperature_c", "wind_speed", "sensor_drift"], nan_rate=0.1,
                note="NaNs in training and reference rows (use_missing default): NaN-as-missing "
                     "splits; sensor_drift also holds exact zeros and |x| < 1e-35")
    lgb_fixture(out, "lgb_categorical", domain="small", seed=29, objective="binary", rounds=80,
                params={"min_data_per_group": 20, "cat_smooth": 5.0, "max_cat_threshold": 64},
                classes=[0, 1], target="returned", y_fn=bin_y,
                categorical={"store_region": 6, "product_line": 40})
    lgb_fixture(out, "lgb_rf_binary", domain="credit", seed=30, objective="binary", rounds=100,
                params={"boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.7,
                        "feature_fraction": 0.8, "num_leaves": 31},
                classes=[0, 1], target="defaulted", y_fn=bin_y,
                note="random forest (boosting=rf): the file says average_output; the raw score is "
                     "the mean of the trees, then the sigmoid")
    lgb_fixture(out, "lgb_rf_regression", domain="weather", seed=31, objective="regression",
                rounds=100, params={"boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.6,
                                    "feature_fraction": 0.7, "num_leaves": 31},
                target="rainfall_mm",
                y_fn=rainfall,
                note="random forest (boosting=rf): average_output, the prediction is the mean of "
                     "the trees")
    return res


# ---------------------------------------------------------------------------------------
# ONNX (scikit-learn via skl2onnx; LightGBM and XGBoost via onnxmltools)


def ort_session(onx):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # onnxmltools' LightGBM graph declares label shape [1]: a warning per run
    return ort.InferenceSession(onx.SerializeToString(), so, providers=["CPUExecutionProvider"])


def onnx_info(onx):
    ops = sorted({f"{n.domain or 'ai.onnx'}:{n.op_type}" for n in onx.graph.node})
    opsets = {o.domain or "ai.onnx": o.version for o in onx.opset_import}
    inp = onx.graph.input[0]
    elem = onnx.helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type).name
    return {"onnx_ops": ops, "onnx_opsets": opsets, "onnx_input": {"name": inp.name, "dtype": elem},
            "onnx_outputs": [o.name for o in onx.graph.output]}


def diff(a, b):
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    d = np.abs(a - b)
    rel = d / np.maximum(np.abs(b), 1e-3)
    return {"max_abs": float(d.max()), "max_rel": float(rel.max())}


def ort_run(onx, X, dtype, classifier):
    sess = ort_session(onx)
    res = sess.run(None, {sess.get_inputs()[0].name: X.astype(dtype)})
    if classifier:
        return res[0], np.asarray(res[1], dtype=np.float64)
    return None, np.asarray(res[0], dtype=np.float64).reshape(-1)


SKL_TOL_DOUBLE = ("double input, but skl2onnx stores thresholds and leaf values as float32 (FLOATS "
                  "attributes): ORT compares the float64 input with the float32 threshold widened to "
                  "float64 and sums float32 leaf values; scikit-learn compares the input cast to float32 "
                  "with its float64 thresholds. Expect ~1e-7 relative.")
SKL_TOL_FLOAT = ("float input: every reference value is exactly a float32; the file holds float32 "
                 "thresholds and leaf values (ORT: x <= threshold in float32, sums in float32). "
                 "ort_vs_framework is the measured gap between ORT's float32 sums and scikit-learn's "
                 "float64 ones: a float64 evaluation of the file lands within it of either.")


def skl_trees(model):
    if hasattr(model, "estimators_"):
        return int(np.asarray(model.estimators_).size)
    if hasattr(model, "n_iter_"):
        return int(model.n_iter_ * model.n_trees_per_iteration_)
    return 1


def skl_objective(model):
    p = model.get_params()
    return str(p.get("loss", p.get("criterion")))


def skl_convert(model, n_features, classifier, float_input):
    """The ONNX model and its input dtype: double input when onnxruntime accepts skl2onnx's
    double conversion, else float input; and why double was not used."""
    options = {id(model): {"zipmap": False}} if classifier else None
    refused = None
    if not float_input:
        onx = to_onnx(model, initial_types=[("X", DoubleTensorType([None, n_features]))],
                      options=options)
        try:
            ort_session(onx)
            return onx, np.float64, None
        except Exception as e:  # onnxruntime refuses the model
            refused = str(e).split("\n")[0]
    onx = to_onnx(model, initial_types=[("X", FloatTensorType([None, n_features]))],
                  options=options)
    return onx, np.float32, refused


def skl_fixture(out, name, model, *, domain, seed, target, task, y_fn, class_names=None,
                nan_cols=(), nan_rate=0.1, ort_oracle=False, note=""):
    r, features, X = make_data(seed, domain, N_TRAIN + N_REF)
    k = len(class_names) if class_names is not None and len(class_names) > 2 else 1
    y = y_fn(r, latent(r, X, k))
    if class_names is not None:
        y = np.asarray(class_names, dtype=object)[y]
        if all(isinstance(c, (int, np.integer)) for c in class_names):
            y = y.astype(np.int64)
    if nan_cols:
        X = inject_nan(r, X, [features.index(c) for c in nan_cols], nan_rate)
    # skl2onnx writes float32 thresholds (even for double input) and scikit-learn's trees see
    # float32 inputs: with float32 values throughout, the file and scikit-learn route the same.
    X = to_f32(X)
    Xtr, ytr, Xref, yref = split(X, y)
    model.fit(Xtr, ytr)
    classifier = task == "classification"
    onx, dtype, refused = skl_convert(model, len(features), classifier, ort_oracle)
    path = out.file(f"{name}.onnx")
    with open(path, "wb") as f:
        f.write(onx.SerializeToString())

    if classifier:
        classes = [str(c) for c in model.classes_]
        sk_p, sk_l = model.predict_proba(Xref), model.predict(Xref)
        ref = sk_p
    else:
        classes = None
        ref = model.predict(Xref)
    ort_l, ort_v = ort_run(onx, Xref, dtype, classifier)
    d = diff(ort_v, ref)
    a, b = np.asarray(ort_v).reshape(-1), np.asarray(ref, dtype=np.float64).reshape(-1)
    within = bool(np.all(np.abs(a - b) <= ORT_REL * np.maximum(np.abs(b), 1e-3)))
    label_mismatch = int(sum(str(u) != str(v) for u, v in zip(ort_l, sk_l))) if classifier else 0
    agree = within and label_mismatch == 0
    # ORT sums float32 leaf values in float32 (the file has no float64 values): beyond the strict
    # check, differences that small are arithmetic; larger ones mean the trees route differently.
    arithmetic = label_mismatch == 0 and bool(np.all(np.abs(a - b) <= 1e-4 * np.maximum(np.abs(b), 1.0)))
    ort_name = (f"onnxruntime {ort.__version__} single-threaded (intra/inter_op_num_threads=1), "
                f"{np.dtype(dtype).name} input")
    if ort_oracle or not agree:
        oracle = ort_name
        labels, values = ort_l, ort_v
        check = (f"oracle=ORT; vs sklearn max_abs={d['max_abs']:.3g} max_rel={d['max_rel']:.3g}"
                 + ("" if agree else " beyond 1e-6 (float32 sums)" if arithmetic
                    else f" DISAGREES BEYOND FLOAT32 ARITHMETIC ({label_mismatch} labels differ)"))
    else:
        oracle = ("scikit-learn " + ("predict_proba, label = predict" if classifier else "predict")
                  + f" on the {np.dtype(dtype).name} reference values (ORT agrees within "
                  f"{ORT_REL:g} * max(|v|, 1e-3))")
        labels, values = (sk_l, sk_p) if classifier else (None, ref)
        check = f"ORT ok ({np.dtype(dtype).name}): max_abs={d['max_abs']:.3g} max_rel={d['max_rel']:.3g}"
    entry = {
        "name": name, "file": f"{name}.onnx", "format": "onnx", "framework": "scikit-learn",
        "framework_version": sklearn.__version__, "task": task, "classes": classes,
        "features": features, "target": target, "categorical": [], "trees": skl_trees(model),
        "objective": skl_objective(model), "oracle": oracle,
        "tolerance_note": SKL_TOL_DOUBLE if dtype == np.float64 else SKL_TOL_FLOAT,
        "estimator": type(model).__name__, "converter": f"skl2onnx {skl2onnx.__version__}",
        "ort_vs_framework": d, "ort_agrees": agree, "ort_label_mismatches": label_mismatch,
        "ort_differs_by_float32_arithmetic_only": arithmetic,
        "feature_names_in_file": False,
    }
    entry.update(onnx_info(onx))
    notes = []
    if refused:
        notes.append("converted with FloatTensorType: skl2onnx's DoubleTensorType conversion "
                     f"declares a double output that onnxruntime refuses ({refused})")
    if ort_oracle:
        notes.append("FloatTensorType input with onnxruntime as the oracle")
    if not agree and not ort_oracle:
        notes.append(
            f"onnxruntime differs from scikit-learn by more than {ORT_REL:g} * max(|v|, 1e-3) "
            f"(max_abs {d['max_abs']:.3g}, max_rel {d['max_rel']:.3g}), so expected.csv holds "
            "onnxruntime's output (what the file computes); "
            + ("the difference is float32 arithmetic: ORT sums the file's float32 leaf values in "
               "float32 (within 1e-4 * max(|v|, 1), no label differs), so a float64 evaluation of "
               "the file lands between the two" if arithmetic else
               "the difference is beyond float32 arithmetic: the file routes some rows differently "
               "from scikit-learn (a converter discrepancy)"))
    if note:
        notes.append(note)
    if notes:
        entry["note"] = "; ".join(notes)
    out.add(entry, Xref, yref, labels, values, check)


def sklearn_fixtures(out):
    bin_y = labels_binary
    species = ["adelie", "chinstrap", "gentoo"]
    skl_fixture(out, "skl_dt_classifier", DecisionTreeClassifier(max_depth=8, random_state=0),
                domain="weather", seed=41, target="species", task="classification",
                y_fn=labels_multi, class_names=species,
                note="string class labels: the file carries classlabels_strings")
    skl_fixture(out, "skl_dt_regressor", DecisionTreeRegressor(max_depth=8, random_state=0),
                domain="credit", seed=42, target="credit_limit", task="regression",
                y_fn=lambda r, z: 5000.0 + 2000.0 * z[:, 0] + r.normal(0, 300.0, len(z)))
    skl_fixture(out, "skl_rf_classifier_500",
                RandomForestClassifier(n_estimators=500, max_depth=4, random_state=0, n_jobs=1),
                domain="shop", seed=43, target="segment", task="classification",
                y_fn=labels_multi, class_names=[0, 1, 2])
    skl_fixture(out, "skl_rf_regressor",
                RandomForestRegressor(n_estimators=100, max_depth=8, random_state=0, n_jobs=1),
                domain="weather", seed=44, target="rainfall_mm", task="regression",
                y_fn=rainfall)
    skl_fixture(out, "skl_et_classifier",
                ExtraTreesClassifier(n_estimators=100, max_depth=8, random_state=0, n_jobs=1),
                domain="credit", seed=45, target="risk_band", task="classification",
                y_fn=labels_multi, class_names=["high", "low", "medium", "very_high"],
                note="string class labels (sorted, as scikit-learn orders classes_)")
    skl_fixture(out, "skl_gb_binary",
                GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0),
                domain="credit", seed=46, target="defaulted", task="classification",
                y_fn=bin_y, class_names=[0, 1])
    skl_fixture(out, "skl_gb_multiclass",
                GradientBoostingClassifier(n_estimators=50, max_depth=3, random_state=0),
                domain="shop", seed=47, target="segment", task="classification",
                y_fn=labels_multi, class_names=[0, 1, 2])
    skl_fixture(out, "skl_gb_regressor",
                GradientBoostingRegressor(n_estimators=100, max_depth=3, random_state=0),
                domain="weather", seed=48, target="rainfall_mm", task="regression",
                y_fn=rainfall)
    skl_fixture(out, "skl_hgb_classifier_nan",
                HistGradientBoostingClassifier(max_iter=100, max_leaf_nodes=15, random_state=0,
                                               early_stopping=False),
                domain="credit", seed=49, target="defaulted", task="classification",
                y_fn=bin_y, class_names=[0, 1], nan_cols=["income", "debt_ratio"],
                note="NaNs in training and reference rows")
    skl_fixture(out, "skl_hgb_regressor_nan",
                HistGradientBoostingRegressor(max_iter=100, max_leaf_nodes=15, random_state=0,
                                              early_stopping=False),
                domain="weather", seed=50, target="rainfall_mm", task="regression",
                y_fn=rainfall,
                nan_cols=["temperature_c", "wind_speed"], note="NaNs in training and reference rows")
    skl_fixture(out, "skl_gb_regressor_float",
                GradientBoostingRegressor(n_estimators=100, max_depth=3, random_state=0),
                domain="credit", seed=51, target="credit_limit", task="regression",
                y_fn=lambda r, z: 5000.0 + 2000.0 * z[:, 0] + r.normal(0, 300.0, len(z)),
                ort_oracle=True)
    # ai.onnx.ml opset 5 (TreeEnsemble), which no converter writes yet.
    v5_fixture(out, "skl_rf_regressor")


def tree_ensemble_v5(onx3):
    """An opset-3 TreeEnsembleRegressor (one target, SUM, float input) rewritten as the
    ai.onnx.ml opset-5 TreeEnsemble: neither skl2onnx nor onnxmltools writes opset 5."""
    from onnx import TensorProto, helper
    n = onx3.graph.node[0]
    assert n.op_type == "TreeEnsembleRegressor", n.op_type
    A = {a.name: helper.get_attribute_value(a) for a in n.attribute}
    # Opset 5 has no base_values: only models without them translate.
    assert not any(A.get("base_values", [])), "base_values have no opset-5 form"
    aggregate = {b"SUM": 1, b"AVERAGE": 0}[A.get("aggregate_function", b"SUM")]
    tid, nid, modes = A["nodes_treeids"], A["nodes_nodeids"], A["nodes_modes"]
    idx = {(t, k): i for i, (t, k) in enumerate(zip(tid, nid))}
    leaf_of, leaf_weights = {}, []
    for t, k, w in zip(A["target_treeids"], A["target_nodeids"], A["target_weights"]):
        leaf_of[(t, k)] = len(leaf_weights)
        leaf_weights.append(w)
    splits = [i for i, m in enumerate(modes) if m != b"LEAF"]
    assert all(modes[i] == b"BRANCH_LEQ" for i in splits)
    pos = {i: j for j, i in enumerate(splits)}

    def child(t, k):
        i = idx[(t, k)]
        return (leaf_of[(t, k)], 1) if modes[i] == b"LEAF" else (pos[i], 0)

    tv, tl, fv, fl = [], [], [], []
    for i in splits:
        a, b = child(tid[i], A["nodes_truenodeids"][i])
        c, d = child(tid[i], A["nodes_falsenodeids"][i])
        tv.append(a), tl.append(b), fv.append(c), fl.append(d)
    roots, seen = [], set()
    for i, t in enumerate(tid):
        if t not in seen:
            seen.add(t)
            roots.append(pos[i])
    m = len(splits)
    node = helper.make_node(
        "TreeEnsemble", ["X"], ["Y"], domain="ai.onnx.ml", tree_roots=roots,
        nodes_featureids=[A["nodes_featureids"][i] for i in splits],
        nodes_truenodeids=tv, nodes_trueleafs=tl, nodes_falsenodeids=fv, nodes_falseleafs=fl,
        nodes_missing_value_tracks_true=[A.get("nodes_missing_value_tracks_true", [0] * len(modes))[i]
                                         for i in splits],
        nodes_modes=helper.make_tensor("modes", TensorProto.UINT8, [m], [0] * m),
        nodes_splits=helper.make_tensor("splits", TensorProto.FLOAT, [m],
                                        [A["nodes_values"][i] for i in splits]),
        leaf_targetids=[0] * len(leaf_weights),
        leaf_weights=helper.make_tensor("weights", TensorProto.FLOAT, [len(leaf_weights)],
                                        leaf_weights),
        n_targets=1, aggregate_function=aggregate)
    f = onx3.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    g = helper.make_graph([node], "tree_ensemble_v5",
                          [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, f])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21),
                                                helper.make_opsetid("ai.onnx.ml", 5)])
    model.ir_version = 10
    return model


def v5_fixture(out, source):
    """The opset-5 form of fixture `source` (a float-input regressor), with ORT as the oracle
    and onnx.reference as a second one."""
    from onnx.reference import ReferenceEvaluator
    src = next(e for e in out.entries if e["name"] == source)
    onx = tree_ensemble_v5(onnx.load(out.file(src["file"])))
    name = f"{source}_v5"
    with open(out.file(f"{name}.onnx"), "wb") as f:
        f.write(onx.SerializeToString())
    ref = pd.read_csv(out.file(src["reference"]))
    X = ref[src["features"]].to_numpy(dtype=np.float64)
    y = ref[src["target"]].to_numpy(dtype=np.float64)
    _, v = ort_run(onx, X, np.float32, False)
    _, v3 = ort_run(onnx.load(out.file(src["file"])), X, np.float32, False)
    r = ReferenceEvaluator(onx).run(None, {"X": X.astype(np.float32)})[0].reshape(-1)
    d3, dr = diff(v, v3), diff(v, r)
    assert d3["max_rel"] <= ORT_REL and dr["max_rel"] <= ORT_REL, (d3, dr)
    entry = {k: src[k] for k in ("format", "framework", "framework_version", "task", "classes",
                                 "features", "target", "categorical", "trees", "objective")}
    entry.update({
        "name": name, "file": f"{name}.onnx",
        "oracle": (f"onnxruntime {ort.__version__} single-threaded on the float32 input; "
                   "onnx.reference agrees"),
        "tolerance_note": SKL_TOL_FLOAT, "converter": f"{source} rewritten as ai.onnx.ml opset 5",
        "ort_vs_opset3": d3, "ort_vs_onnx_reference": dr, "feature_names_in_file": False,
    })
    entry.update(onnx_info(onx))
    out.add(entry, X, y, None, v, f"oracle=ORT; vs opset 3 {d3['max_rel']:.3g}, "
            f"vs onnx.reference {dr['max_rel']:.3g}")


def mltools_fixture(out, name, onx, *, source, framework, version, features, target, classes,
                    trees, objective, Xref, yref, framework_pred, note):
    # onnxmltools names the graph with a random uuid4; a fixed name keeps runs byte-identical.
    onx.graph.name = name
    path = out.file(f"{name}.onnx")
    with open(path, "wb") as f:
        f.write(onx.SerializeToString())
    classifier = classes is not None
    ort_l, ort_v = ort_run(onx, Xref, np.float32, classifier)
    d = diff(ort_v, framework_pred)
    entry = {
        "name": name, "file": f"{name}.onnx", "format": "onnx", "framework": framework,
        "framework_version": version, "task": "classification" if classifier else "regression",
        "classes": classes, "features": features, "target": target, "categorical": [],
        "trees": trees, "objective": objective,
        "oracle": (f"onnxruntime {ort.__version__} single-threaded (intra/inter_op_num_threads=1) "
                   "on the float32 input"),
        "tolerance_note": ("float input: the reference values are exactly float32; ORT compares with "
                           "float32 thresholds and sums in float32. ort_vs_framework is the measured "
                           f"gap between ORT and {framework} itself on these rows: a fair tolerance."),
        "converter": f"onnxmltools {onnxmltools.__version__}", "source_model": source,
        "ort_vs_framework": d,
        "ort_label_mismatches": (int(sum(int(a) != int(b) for a, b in zip(
            ort_l, np.argmax(framework_pred, axis=1)))) if classifier else 0),
        "feature_names_in_file": False, "note": note,
    }
    entry.update(onnx_info(onx))
    out.add(entry, Xref, yref, ort_l, ort_v,
            f"oracle=ORT; vs {framework} max_abs={d['max_abs']:.3g} max_rel={d['max_rel']:.3g}")


def mltools_fixtures(out, lgb_binary, xgb_binary):
    # LightGBM binary → ONNX. onnxmltools takes float input only.
    bst, features, Xref, yref = lgb_binary
    Xref = to_f32(Xref)
    onx = onnxmltools.convert_lightgbm(
        bst, initial_types=[("X", MLFloatTensorType([None, len(features)]))], zipmap=False)
    p = bst.predict(Xref)
    mltools_fixture(out, "lgb_binary_onnx", onx, source="lgb_binary", framework="lightgbm",
                    version=lgb.__version__, features=features, target="defaulted",
                    classes=["0", "1"], trees=bst.num_trees(), objective="binary",
                    Xref=Xref, yref=yref, framework_pred=np.column_stack([1 - p, p]),
                    note="the lgb_binary booster converted by onnxmltools (convert_lightgbm, "
                         "zipmap=False); reference rows are lgb_binary's rounded to float32; "
                         "graph.name set to the fixture's name (onnxmltools writes a random uuid)")

    # XGBoost binary with NaNs → ONNX. onnxmltools reads the trees from the text dump, which
    # names features f0, f1, ...: convert a copy without feature names.
    bst, features, Xref, yref = xgb_binary
    Xref = to_f32(Xref)
    anon = xgb.Booster(model_file=out.file("xgb_binary_nan.json"))
    anon.feature_names = None
    anon.feature_types = None
    onx = onnxmltools.convert_xgboost(
        anon, initial_types=[("X", MLFloatTensorType([None, len(features)]))])
    p = bst.predict(xgb.DMatrix(Xref, missing=NAN, feature_names=features),
                    iteration_range=(0, bst.num_boosted_rounds()))
    p = p.astype(np.float64)
    mltools_fixture(out, "xgb_binary_nan_onnx", onx, source="xgb_binary_nan", framework="xgboost",
                    version=xgb.__version__, features=features, target="defaulted",
                    classes=["0", "1"], trees=bst.num_boosted_rounds(), objective="binary:logistic",
                    Xref=Xref, yref=yref, framework_pred=np.column_stack([1 - p, p]),
                    note="the xgb_binary_nan booster converted by onnxmltools (convert_xgboost) "
                         "without feature names (the converter needs f0..fN); NaNs follow "
                         "nodes_missing_value_tracks_true; reference rows are xgb_binary_nan's "
                         "rounded to float32; graph.name set to the fixture's name (onnxmltools "
                         "writes a random uuid)")


# ---------------------------------------------------------------------------------------


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    final = os.path.abspath(sys.argv[1])
    if os.path.isdir(final) and os.listdir(final) and not os.path.exists(os.path.join(final, "fixtures.json")):
        raise SystemExit(f"{final} holds files but no fixtures.json: not replacing it")
    # Made in OUT_DIR.partial and moved into place at the end: a failed run leaves no
    # half-made OUT_DIR, and a finished one no stale files.
    partial = final + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    out = Out(partial)
    warnings.filterwarnings("ignore", category=UserWarning)
    print(f"xgboost {xgb.__version__}, lightgbm {lgb.__version__}, scikit-learn {sklearn.__version__}, "
          f"skl2onnx {skl2onnx.__version__}, onnxmltools {onnxmltools.__version__}, "
          f"onnxruntime {ort.__version__}, onnx {onnx.__version__}, numpy {np.__version__}", flush=True)
    xgb_binary = xgboost_fixtures(out)
    lgb_res = lightgbm_fixtures(out)
    sklearn_fixtures(out)
    mltools_fixtures(out, lgb_res["binary"], xgb_binary)

    with open(out.file("fixtures.json"), "w") as f:
        json.dump(out.entries, f, indent=1)
        f.write("\n")
    shutil.rmtree(final, ignore_errors=True)
    os.rename(partial, final)
    total = sum(e["size_bytes"] for e in out.entries if not e.get("same_model_as"))
    print(f"{len(out.entries)} fixtures, {total / 1e6:.1f} MB of models, in {final}; "
          f"{time.monotonic() - START:.1f} s")


if __name__ == "__main__":
    main()
