"""What the fixture makers share: the frameworks' imports, the synthetic data, where
fixtures are written, and the checks' helpers (`make_fixtures.py` runs them all)."""

import json
import os
import shutil
import sys
import time
import warnings

import numpy as np


import lightgbm as lgb
import onnx
import onnxmltools
import onnxruntime as ort
import pandas as pd
import sklearn
import skl2onnx
import xgboost as xgb
from onnxmltools.convert.common.data_types import FloatTensorType as MLFloatTensorType
from skl2onnx import to_onnx
from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

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


def diff(a, b):
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    d = np.abs(a - b)
    rel = d / np.maximum(np.abs(b), 1e-3)
    return {"max_abs": float(d.max()), "max_rel": float(rel.max())}
