"""The IRIS tree behind FastAPI + uvicorn, the way users serve it today: a pickled
scikit-learn model, a pydantic row, `predict` on a one-row array (or the batch's rows).

    MODEL=model.pkl uvicorn fastapi_app:app --workers 2
"""

import os
import pickle
from typing import List, Union

import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

FEATURES = ["SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm"]

with open(os.environ["MODEL"], "rb") as f:
    model = pickle.load(f)

app = FastAPI()


class Row(BaseModel):
    SepalLengthCm: float
    SepalWidthCm: float
    PetalLengthCm: float
    PetalWidthCm: float


@app.post("/score")
def score(body: Union[Row, List[Row]]):
    rows = body if isinstance(body, list) else [body]
    x = np.array([[getattr(r, f) for f in FEATURES] for r in rows])
    labels = model.predict(x)
    out = [{"predicted_species": str(label)} for label in labels]
    return {"output": out if isinstance(body, list) else out[0]}
