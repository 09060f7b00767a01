"""MLflow's scoring protocol against treeserve, as MLflow's users send it
(tests/it/protocols.rs runs this with the MLflow venv, target/mlflow-env).

Usage: python mlflow_scoring.py BASE_URL IRIS_CSV

1. MLflow's own client for a scoring server (mlflow.pyfunc.scoring_server.client.
   ScoringServerClient): wait_server_ready (GET /ping), then invoke() with a pandas
   DataFrame and a numpy array.
2. The payloads of MLflow's documentation ("Deploy MLflow Model as a Local Inference
   Server"), posted with requests: dataframe_split, dataframe_records, instances, inputs
   (rows and columnar), and text/csv; and pandas' own df.to_json(orient="split").
Every answer must equal treeserve's /score answer for the same rows (30 different rows,
every class among them). Prints one line per form.
"""

import json
import sys
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import requests
from mlflow.pyfunc.scoring_server.client import ScoringServerClient

FEATURES = ["SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm"]


def main():
    base, iris = sys.argv[1], sys.argv[2]
    df = pd.read_csv(iris)
    rows = df.iloc[::5][FEATURES].reset_index(drop=True)  # 30 rows, all three classes
    want = [
        o["predicted_species"]
        for o in requests.post(base + "/score", json=rows.to_dict(orient="records"), timeout=10).json()["output"]
    ]
    assert len(set(want)) == 3, want

    def check(form, got):
        assert got == want, f"{form}: {got} != {want}"
        print(f"{form}: {len(got)} rows, as /score")

    u = urlparse(base)
    client = ScoringServerClient(u.hostname, u.port)
    client.wait_server_ready(timeout=30)
    check("ScoringServerClient.invoke(DataFrame)", client.invoke(rows)["predictions"])
    check("ScoringServerClient.invoke(ndarray)", client.invoke(rows.to_numpy())["predictions"])
    # (invoke() with a dict of arrays fails inside MLflow 3.17.2 itself: dump_input_data
    # iterates the dict's keys as pairs. The columnar form is posted below.)

    def post(form, body, content_type="application/json"):
        r = requests.post(base + "/invocations", data=body, headers={"Content-Type": content_type}, timeout=10)
        assert r.status_code == 200, f"{form}: {r.status_code} {r.text}"
        check(form, r.json()["predictions"])

    split = rows.to_dict(orient="split")
    post("dataframe_split", json.dumps({"dataframe_split": {"columns": split["columns"], "data": split["data"]}}))
    post("dataframe_split (pandas to_json, with index)",
         '{"dataframe_split": ' + rows.to_json(orient="split") + "}")
    post("dataframe_records", json.dumps({"dataframe_records": rows.to_dict(orient="records")}))
    post("instances", json.dumps({"instances": rows.to_dict(orient="records")}))
    post("inputs (rows)", json.dumps({"inputs": rows.to_numpy().tolist()}))
    post("inputs (columns)", json.dumps({"inputs": {c: rows[c].tolist() for c in FEATURES}}))
    post("text/csv", rows.to_csv(index=False), "text/csv")
    # An extra column is ignored, as MLflow ignores it.
    extra = rows.assign(customer_id=range(len(rows)))
    post("dataframe_split with an extra column",
         json.dumps({"dataframe_split": extra.to_dict(orient="split") | {"index": None}}))
    # A missing column is a 400 with a JSON error naming it.
    r = requests.post(base + "/invocations", json={"dataframe_split": {"columns": FEATURES[:3], "data": [[1, 2, 3]]}},
                      timeout=10)
    assert r.status_code == 400 and "PetalWidthCm" in r.json()["error"], (r.status_code, r.text)
    print("missing column: 400,", r.json()["error_type"])


if __name__ == "__main__":
    main()
