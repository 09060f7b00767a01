"""NVIDIA's tritonclient over gRPC against a running treeserve (`--grpc-listen`): the Open
Inference Protocol's `inference.GRPCInferenceService` as Triton and KServe users call it,
with the client's defaults. Predictions are checked against the same rows over HTTP
`/score`.

    python triton_grpc.py GRPC_HOST:PORT HTTP_HOST:PORT MODEL PINNED_VERSION CSV [KEY]

With KEY, the server requires API keys: calls without it are refused UNAUTHENTICATED
(the liveness and readiness probes stay open), calls with it pass. Exits non-zero (an
AssertionError or a client exception) on any mismatch.
"""

import json
import sys
import urllib.request

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

grpc_url, http_url, model, pinned, csv_path = sys.argv[1:6]
key = sys.argv[6] if len(sys.argv) > 6 else None
headers = {"authorization": f"Bearer {key}"} if key else None
c = grpcclient.InferenceServerClient(url=grpc_url)


def status(e):
    return e.status() or ""


def refused(call, code):
    try:
        call()
    except InferenceServerException as e:
        assert code in status(e), (status(e), e.message())
        return e
    raise AssertionError(f"expected {code}")


# Probes are open, with or without keys.
assert c.is_server_live(), "server not live"
assert c.is_server_ready(), "server not ready"
if key:
    e = refused(lambda: c.is_model_ready(model), "UNAUTHENTICATED")
    assert "API key" in e.message(), e.message()
    refused(lambda: c.is_model_ready(model, headers={"authorization": "Bearer wrong"}), "UNAUTHENTICATED")
    refused(lambda: c.get_model_metadata(model, headers={"x-api-key": "wrong"}), "UNAUTHENTICATED")
assert c.is_model_ready(model, headers=headers), "model not ready"
assert c.is_model_ready(model, model_version=pinned, headers=headers), "pinned version not ready"
assert not c.is_model_ready("no-such-model", headers=headers), "an unknown model is ready"

server = c.get_server_metadata(headers=headers, as_json=True)
assert server["name"] == "treeserve", server
meta = c.get_model_metadata(model, headers=headers, as_json=True)
assert meta["name"] == model, meta
assert meta["inputs"][0]["shape"] == ["-1", "4"], meta
assert [o["name"] for o in meta["outputs"]] == ["label", "probabilities"], meta
assert pinned in meta["versions"], meta

rows = []
with open(csv_path) as f:
    next(f)
    for line in f:
        rows.append([float(x) for x in line.split(",")[1:5]])


def http(path, body=None):
    req = urllib.request.Request(f"http://{http_url}{path}", data=body, headers={"Content-Type": "application/json"})
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(req) as resp:
        return json.load(resp)


details = http(f"/v2/models/{model}")
features, classes = details["parameters"]["features"], details["parameters"]["classes"]
alias_version = details["parameters"]["model_version"]
assert alias_version != pinned, (alias_version, pinned)


def score(batch):
    """/score for the same rows: labels and probabilities by class."""
    path = f"/models/{model}/score?probabilities=true"
    out = http(path, json.dumps([dict(zip(features, r)) for r in batch]).encode())["output"]
    k = next(k for k in out[0] if k.startswith("predicted_"))
    return [o[k] for o in out], [[o["probabilities"][c] for c in classes] for o in out]


def infer(batch, dtype=np.float32, datatype="FP32", version="", outputs=None, **kw):
    x = np.array(batch, dtype=dtype)
    inp = grpcclient.InferInput("input", list(x.shape), datatype)
    inp.set_data_from_numpy(x)
    outs = None if outputs is None else [grpcclient.InferRequestedOutput(n) for n in outputs]
    return c.infer(model, [inp], model_version=version, outputs=outs, headers=headers, **kw)


# One row, the client's defaults.
one = infer([rows[75]], request_id="req-42")
labels = [l.decode() for l in one.as_numpy("label")]
want_labels, want_proba = score([rows[75]])
assert labels == want_labels, (labels, want_labels)
assert np.allclose(one.as_numpy("probabilities"), np.array(want_proba, dtype=np.float32)), one.as_numpy("probabilities")
response = one.get_response(as_json=True)
assert response["model_version"] == alias_version, response
assert response["id"] == "req-42", response

# A batch of every row in FP64, both outputs and each alone.
want_labels, want_proba = score(rows)
batch = infer(rows, dtype=np.float64, datatype="FP64")
assert [l.decode() for l in batch.as_numpy("label")] == want_labels
assert batch.as_numpy("probabilities").shape == (len(rows), len(classes))
assert np.allclose(batch.as_numpy("probabilities"), np.array(want_proba, dtype=np.float32))
only = infer(rows, outputs=["probabilities"])
assert only.as_numpy("label") is None and only.as_numpy("probabilities").shape == (len(rows), len(classes))
only = infer(rows, outputs=["label"])
assert only.as_numpy("probabilities") is None and len(only.as_numpy("label")) == len(rows)

# A pinned version answers as itself, and as V2 over HTTP pinned to it does.
old = infer(rows, version=pinned)
assert old.get_response(as_json=True)["model_version"] == pinned
body = {"inputs": [{"name": "input", "shape": [len(rows), 4], "datatype": "FP64", "data": rows}]}
over_http = http(f"/v2/models/{model}/versions/{pinned}/infer", json.dumps(body).encode())
assert [l.decode() for l in old.as_numpy("label")] == over_http["outputs"][0]["data"]
assert [l.decode() for l in old.as_numpy("label")] != want_labels, "the pinned version answers as the alias's"

# Integer datatypes are accepted as over HTTP.
ints = infer([[5, 3, 1, 0]], dtype=np.int32, datatype="INT32")
assert len(ints.as_numpy("label")) == 1

# Errors: the HTTP error's message with a gRPC code.
e = refused(lambda: infer([[1.0, 2.0, 3.0]]), "INVALID_ARGUMENT")
assert "shape" in e.message(), e.message()
refused(lambda: infer([rows[0]], outputs=["nope"]), "INVALID_ARGUMENT")
refused(lambda: infer([rows[0]], version="999"), "NOT_FOUND")
bad = grpcclient.InferInput("input", [1, 4], "FP32")
bad.set_data_from_numpy(np.array([rows[0]], dtype=np.float32))
refused(lambda: c.infer("no-such-model", [bad], headers=headers), "NOT_FOUND")
strings = grpcclient.InferInput("input", [1, 4], "BYTES")
strings.set_data_from_numpy(np.array([["a", "b", "c", "d"]], dtype=np.object_))
refused(lambda: c.infer(model, [strings], headers=headers), "INVALID_ARGUMENT")

c.close()
print("tritonclient.grpc: all checks passed")
