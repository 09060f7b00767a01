"""LightGBM's fixtures (`make_fixtures.py`)."""

from fixtures_common import *  # noqa: F401,F403


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
