"""XGBoost's fixtures (`make_fixtures.py`)."""

from fixtures_common import *  # noqa: F401,F403


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
