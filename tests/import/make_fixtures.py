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

START = time.monotonic()

from fixtures_common import Out, lgb, np, onnx, onnxmltools, ort, skl2onnx, sklearn, xgb  # noqa: E402
from fixtures_lightgbm import lightgbm_fixtures  # noqa: E402
from fixtures_onnx import mltools_fixtures, sklearn_fixtures  # noqa: E402
from fixtures_xgboost import xgboost_fixtures  # noqa: E402

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
