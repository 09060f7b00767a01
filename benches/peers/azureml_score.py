"""The IRIS tree behind Azure ML's inference server (azureml-inference-server-http), as its
documentation's scoring scripts do: `init()` loads the pickle, `run()` takes the raw JSON.

    MODEL=model.pkl azmlinfsrv --entry_script azureml_score.py --worker_count 2
"""

import json
import os
import pickle

import numpy as np

FEATURES = ["SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm"]
model = None


def init():
    global model
    with open(os.environ["MODEL"], "rb") as f:
        model = pickle.load(f)


def run(raw_data):
    body = json.loads(raw_data)
    rows = body if isinstance(body, list) else [body]
    labels = model.predict(np.array([[r[f] for f in FEATURES] for r in rows]))
    out = [{"predicted_species": str(label)} for label in labels]
    return {"output": out if isinstance(body, list) else out[0]}
