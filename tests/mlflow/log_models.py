"""Logs models with MLflow's own flavors, as a data scientist would, for the MLflow
registry tests (tests/it/registry_mlflow.rs).

Usage: python log_models.py TRACKING_URI FLAVOR NAME VERSIONS OUT.json [ALIAS]

FLAVOR is `xgboost` (an XGBClassifier on a DataFrame, 3 classes), `lightgbm` (a Booster
from lgb.train, 3 classes), `onnx` (a scikit-learn RandomForestClassifier converted by
skl2onnx, no zipmap) or `sklearn` (a DecisionTreeClassifier: a pickle). Each of the
VERSIONS versions is a differently trained model, logged with
`mlflow.FLAVOR.log_model(..., registered_model_name=NAME, input_example=...)` (with
`pip_requirements=[]`: MLflow's inference of requirements takes seconds and is not tested;
sklearn with `serialization_format="cloudpickle"`, the pickle the tests want refused). With ALIAS,
`MlflowClient().set_registered_model_alias(NAME, ALIAS, first version)`.

OUT.json: {"versions": [...], "features": [...], "classes": [...], "rows": [{feature:
value or null}, ...], "expected": {"VERSION": [[p_class0, p_class1, p_class2], ...]}}, the
framework's own probabilities on rows it was not trained on (some values missing).
"""

import json
import math
import sys

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient

FEATURES = ["x0", "x1", "x2", "x3", "x4"]


def data(seed, n, missing):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURES)))
    y = ((X[:, 0] + 0.5 * X[:, 1] > 0).astype(int) + (X[:, 2] - X[:, 3] > 0.7)).astype(int)
    if missing:
        X[rng.random(X.shape) < 0.05] = np.nan
    return pd.DataFrame(X, columns=FEATURES), y


def main():
    uri, flavor, name, versions, out = sys.argv[1:6]
    alias = sys.argv[6] if len(sys.argv) > 6 else None
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("flavors")
    missing = flavor in ("xgboost", "lightgbm")
    X, y = data(0, 600, missing=missing)
    rows, _ = data(1, 300, missing=missing)
    example = X.iloc[:5]
    logged, expected = [], {}
    for k in range(int(versions)):
        with mlflow.start_run():
            if flavor == "xgboost":
                import xgboost as xgb

                m = xgb.XGBClassifier(n_estimators=10 + 15 * k, max_depth=3 + k, learning_rate=0.3)
                m.fit(X, y)
                p = m.predict_proba(rows)
                info = mlflow.xgboost.log_model(m, name="model", registered_model_name=name,
                                                input_example=example, pip_requirements=[])
            elif flavor == "lightgbm":
                import lightgbm as lgb

                params = {"objective": "multiclass", "num_class": 3, "num_leaves": 7 + 8 * k,
                          "learning_rate": 0.2, "verbose": -1, "seed": k}
                b = lgb.train(params, lgb.Dataset(X, y), num_boost_round=10 + 10 * k)
                p = b.predict(rows)
                info = mlflow.lightgbm.log_model(b, name="model", registered_model_name=name,
                                                 input_example=example, pip_requirements=[])
            elif flavor == "sklearn":
                from sklearn.tree import DecisionTreeClassifier

                m = DecisionTreeClassifier(max_depth=2 + k, random_state=0).fit(X, y)
                p = m.predict_proba(rows)
                info = mlflow.sklearn.log_model(m, name="model", registered_model_name=name,
                                                input_example=example, pip_requirements=[],
                                                serialization_format="cloudpickle")
            elif flavor == "onnx":
                # What the pickle refusal tells users to do: scikit-learn through ONNX.
                from sklearn.ensemble import RandomForestClassifier
                from skl2onnx import to_onnx

                import onnxruntime as ort

                m = RandomForestClassifier(n_estimators=5 + 5 * k, max_depth=3 + k, random_state=k).fit(X, y)
                onx = to_onnx(m, X.iloc[:1].to_numpy(np.float32), options={id(m): {"zipmap": False}})
                # The oracle is ONNX Runtime on the logged graph (float32, as ONNX reads rows).
                session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
                p = session.run(["probabilities"], {session.get_inputs()[0].name: rows.to_numpy(np.float32)})[0]
                # The example names the columns (the graph reads one unnamed tensor).
                info = mlflow.onnx.log_model(onx, name="model", registered_model_name=name,
                                             input_example=example.astype(np.float32),
                                             pip_requirements=[])
            else:
                sys.exit(f"unknown flavor {flavor}")
        version = int(info.registered_model_version)
        logged.append(version)
        expected[str(version)] = np.asarray(p, dtype=float).tolist()
    if alias:
        MlflowClient().set_registered_model_alias(name, alias, str(logged[0]))
    clean = [
        {c: (None if math.isnan(v) else float(v)) for c, v in r.items()}
        for r in rows.to_dict(orient="records")
    ]
    with open(out, "w") as f:
        json.dump({"versions": logged, "features": FEATURES, "classes": ["0", "1", "2"],
                   "rows": clean, "expected": expected}, f)


if __name__ == "__main__":
    main()
