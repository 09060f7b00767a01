"""NVIDIA's tritonclient (HTTP) against a running treeserve: the Open Inference Protocol as
Triton and KServe users speak it, with the client's defaults (binary tensor data) and
with JSON tensors.

    python triton_client.py HOST:PORT MODEL PINNED_VERSION

The server must serve MODEL (IRIS features) with its alias at a version other than
PINNED_VERSION. Exits non-zero (an AssertionError or a client exception) on any mismatch.
"""

import json
import sys
import urllib.request

import numpy as np
import tritonclient.http as httpclient

url, model, pinned = sys.argv[1], sys.argv[2], sys.argv[3]
c = httpclient.InferenceServerClient(url=url)

assert c.is_server_live(), "server not live"
assert c.is_server_ready(), "server not ready"
assert c.is_model_ready(model), "model not ready"
assert c.is_model_ready(model, model_version=pinned), "pinned version not ready"
assert not c.is_model_ready("no-such-model"), "an unknown model is ready"

server = c.get_server_metadata()
assert server["name"] == "treeserve", server
meta = c.get_model_metadata(model)
assert meta["name"] == model, meta
assert meta["inputs"][0]["shape"] == [-1, 4], meta
assert [o["name"] for o in meta["outputs"]] == ["label", "probabilities"], meta
alias_version = meta["parameters"]["model_version"]
assert alias_version != pinned, (alias_version, pinned)
assert pinned in meta["versions"], meta
pinned_meta = c.get_model_metadata(model, model_version=pinned)
assert pinned_meta["parameters"]["model_version"] == pinned, pinned_meta

rows = []
with open(sys.argv[4] if len(sys.argv) > 4 else "models/data/iris.csv") as f:
    next(f)
    for line in f:
        rows.append([float(x) for x in line.split(",")[1:5]])
features = meta["parameters"]["features"]
classes = meta["parameters"]["classes"]


def score(rows, version=None):
    """/score for the same rows: labels and probabilities by class."""
    path = f"/models/{model}/score?probabilities=true"
    body = json.dumps([dict(zip(features, r)) for r in rows]).encode()
    req = urllib.request.Request(f"http://{url}{path}", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as resp:
        out = json.load(resp)["output"]
    key = next(k for k in out[0] if k.startswith("predicted_"))
    return [o[key] for o in out], [[o["probabilities"][k] for k in classes] for o in out]


def infer(batch, binary, version="", outputs=None):
    x = np.array(batch, dtype=np.float32)
    inp = httpclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    outs = None
    if outputs is not None:
        outs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in outputs]
    r = c.infer(model, [inp], model_version=version, outputs=outs, request_id="req-42")
    return r


# One row, the client's defaults (binary in, binary out).
one = infer([rows[75]], binary=True)
labels = [l.decode() for l in one.as_numpy("label")]
want_labels, want_proba = score([rows[75]])
assert labels == want_labels, (labels, want_labels)
assert np.allclose(one.as_numpy("probabilities"), np.array(want_proba, dtype=np.float32)), one.as_numpy("probabilities")
response = one.get_response()
assert response["model_version"] == alias_version, response
assert response["id"] == "req-42", response

# A batch of every row, binary and JSON, each output alone and both.
want_labels, want_proba = score(rows)
for binary in (True, False):
    r = infer(rows, binary=binary, outputs=["label", "probabilities"])
    got = r.as_numpy("label")
    got = [l.decode() if isinstance(l, bytes) else l for l in got]
    assert got == want_labels, f"binary={binary}: labels differ"
    p = r.as_numpy("probabilities")
    assert p.shape == (len(rows), len(classes)), p.shape
    assert np.allclose(p, np.array(want_proba, dtype=np.float32)), f"binary={binary}: probabilities differ"
    only = infer(rows[:5], binary=binary, outputs=["probabilities"])
    assert only.as_numpy("label") is None
    assert only.as_numpy("probabilities").shape == (5, len(classes))

# The pinned version answers as itself.
r = infer(rows[:10], binary=True, version=pinned)
assert r.get_response()["model_version"] == pinned, r.get_response()

# Errors come back as client exceptions with the server's message.
for bad, needle in [
    (np.zeros((1, 3), dtype=np.float32), "shape"),
]:
    inp = httpclient.InferInput("input", list(bad.shape), "FP32")
    inp.set_data_from_numpy(bad)
    try:
        c.infer(model, [inp])
    except httpclient.InferenceServerException as e:
        assert needle in str(e), str(e)
    else:
        raise AssertionError("a wrong shape was accepted")
try:
    c.get_model_metadata("no-such-model")
except httpclient.InferenceServerException as e:
    assert "not served" in str(e), str(e)
else:
    raise AssertionError("metadata of an unknown model")
print(f"tritonclient: {len(rows)} rows agree with /score; pinned version {pinned} served; errors are exceptions")
