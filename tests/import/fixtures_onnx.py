"""The ONNX fixtures: scikit-learn's via skl2onnx, LightGBM's and XGBoost's via onnxmltools
(`make_fixtures.py`)."""

from fixtures_common import *  # noqa: F401,F403


# ---------------------------------------------------------------------------------------
# ONNX (scikit-learn via skl2onnx; LightGBM and XGBoost via onnxmltools)


def ort_session(onx):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # onnxmltools' LightGBM graph declares label shape [1]: a warning per run
    return ort.InferenceSession(onx.SerializeToString(), so, providers=["CPUExecutionProvider"])


def onnx_info(onx):
    ops = sorted({f"{n.domain or 'ai.onnx'}:{n.op_type}" for n in onx.graph.node})
    opsets = {o.domain or "ai.onnx": o.version for o in onx.opset_import}
    inp = onx.graph.input[0]
    elem = onnx.helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type).name
    return {"onnx_ops": ops, "onnx_opsets": opsets, "onnx_input": {"name": inp.name, "dtype": elem},
            "onnx_outputs": [o.name for o in onx.graph.output]}


def ort_run(onx, X, dtype, classifier):
    sess = ort_session(onx)
    res = sess.run(None, {sess.get_inputs()[0].name: X.astype(dtype)})
    if classifier:
        return res[0], np.asarray(res[1], dtype=np.float64)
    return None, np.asarray(res[0], dtype=np.float64).reshape(-1)


SKL_TOL_DOUBLE = ("double input, but skl2onnx stores thresholds and leaf values as float32 (FLOATS "
                  "attributes): ORT compares the float64 input with the float32 threshold widened to "
                  "float64 and sums float32 leaf values; scikit-learn compares the input cast to float32 "
                  "with its float64 thresholds. Expect ~1e-7 relative.")
SKL_TOL_FLOAT = ("float input: every reference value is exactly a float32; the file holds float32 "
                 "thresholds and leaf values (ORT: x <= threshold in float32, sums in float32). "
                 "ort_vs_framework is the measured gap between ORT's float32 sums and scikit-learn's "
                 "float64 ones: a float64 evaluation of the file lands within it of either.")


def skl_trees(model):
    if hasattr(model, "estimators_"):
        return int(np.asarray(model.estimators_).size)
    if hasattr(model, "n_iter_"):
        return int(model.n_iter_ * model.n_trees_per_iteration_)
    return 1


def skl_objective(model):
    p = model.get_params()
    return str(p.get("loss", p.get("criterion")))


def skl_convert(model, n_features, classifier, float_input):
    """The ONNX model and its input dtype: double input when onnxruntime accepts skl2onnx's
    double conversion, else float input; and why double was not used."""
    options = {id(model): {"zipmap": False}} if classifier else None
    refused = None
    if not float_input:
        onx = to_onnx(model, initial_types=[("X", DoubleTensorType([None, n_features]))],
                      options=options)
        try:
            ort_session(onx)
            return onx, np.float64, None
        except Exception as e:  # onnxruntime refuses the model
            refused = str(e).split("\n")[0]
    onx = to_onnx(model, initial_types=[("X", FloatTensorType([None, n_features]))],
                  options=options)
    return onx, np.float32, refused


def skl_fixture(out, name, model, *, domain, seed, target, task, y_fn, class_names=None,
                nan_cols=(), nan_rate=0.1, ort_oracle=False, note=""):
    r, features, X = make_data(seed, domain, N_TRAIN + N_REF)
    k = len(class_names) if class_names is not None and len(class_names) > 2 else 1
    y = y_fn(r, latent(r, X, k))
    if class_names is not None:
        y = np.asarray(class_names, dtype=object)[y]
        if all(isinstance(c, (int, np.integer)) for c in class_names):
            y = y.astype(np.int64)
    if nan_cols:
        X = inject_nan(r, X, [features.index(c) for c in nan_cols], nan_rate)
    # skl2onnx writes float32 thresholds (even for double input) and scikit-learn's trees see
    # float32 inputs: with float32 values throughout, the file and scikit-learn route the same.
    X = to_f32(X)
    Xtr, ytr, Xref, yref = split(X, y)
    model.fit(Xtr, ytr)
    classifier = task == "classification"
    onx, dtype, refused = skl_convert(model, len(features), classifier, ort_oracle)
    path = out.file(f"{name}.onnx")
    with open(path, "wb") as f:
        f.write(onx.SerializeToString())

    if classifier:
        classes = [str(c) for c in model.classes_]
        sk_p, sk_l = model.predict_proba(Xref), model.predict(Xref)
        ref = sk_p
    else:
        classes = None
        ref = model.predict(Xref)
    ort_l, ort_v = ort_run(onx, Xref, dtype, classifier)
    d = diff(ort_v, ref)
    a, b = np.asarray(ort_v).reshape(-1), np.asarray(ref, dtype=np.float64).reshape(-1)
    within = bool(np.all(np.abs(a - b) <= ORT_REL * np.maximum(np.abs(b), 1e-3)))
    label_mismatch = int(sum(str(u) != str(v) for u, v in zip(ort_l, sk_l))) if classifier else 0
    agree = within and label_mismatch == 0
    # ORT sums float32 leaf values in float32 (the file has no float64 values): beyond the strict
    # check, differences that small are arithmetic; larger ones mean the trees route differently.
    arithmetic = label_mismatch == 0 and bool(np.all(np.abs(a - b) <= 1e-4 * np.maximum(np.abs(b), 1.0)))
    ort_name = (f"onnxruntime {ort.__version__} single-threaded (intra/inter_op_num_threads=1), "
                f"{np.dtype(dtype).name} input")
    if ort_oracle or not agree:
        oracle = ort_name
        labels, values = ort_l, ort_v
        check = (f"oracle=ORT; vs sklearn max_abs={d['max_abs']:.3g} max_rel={d['max_rel']:.3g}"
                 + ("" if agree else " beyond 1e-6 (float32 sums)" if arithmetic
                    else f" DISAGREES BEYOND FLOAT32 ARITHMETIC ({label_mismatch} labels differ)"))
    else:
        oracle = ("scikit-learn " + ("predict_proba, label = predict" if classifier else "predict")
                  + f" on the {np.dtype(dtype).name} reference values (ORT agrees within "
                  f"{ORT_REL:g} * max(|v|, 1e-3))")
        labels, values = (sk_l, sk_p) if classifier else (None, ref)
        check = f"ORT ok ({np.dtype(dtype).name}): max_abs={d['max_abs']:.3g} max_rel={d['max_rel']:.3g}"
    entry = {
        "name": name, "file": f"{name}.onnx", "format": "onnx", "framework": "scikit-learn",
        "framework_version": sklearn.__version__, "task": task, "classes": classes,
        "features": features, "target": target, "categorical": [], "trees": skl_trees(model),
        "objective": skl_objective(model), "oracle": oracle,
        "tolerance_note": SKL_TOL_DOUBLE if dtype == np.float64 else SKL_TOL_FLOAT,
        "estimator": type(model).__name__, "converter": f"skl2onnx {skl2onnx.__version__}",
        "ort_vs_framework": d, "ort_agrees": agree, "ort_label_mismatches": label_mismatch,
        "ort_differs_by_float32_arithmetic_only": arithmetic,
        "feature_names_in_file": False,
    }
    entry.update(onnx_info(onx))
    notes = []
    if refused:
        notes.append("converted with FloatTensorType: skl2onnx's DoubleTensorType conversion "
                     f"declares a double output that onnxruntime refuses ({refused})")
    if ort_oracle:
        notes.append("FloatTensorType input with onnxruntime as the oracle")
    if not agree and not ort_oracle:
        notes.append(
            f"onnxruntime differs from scikit-learn by more than {ORT_REL:g} * max(|v|, 1e-3) "
            f"(max_abs {d['max_abs']:.3g}, max_rel {d['max_rel']:.3g}), so expected.csv holds "
            "onnxruntime's output (what the file computes); "
            + ("the difference is float32 arithmetic: ORT sums the file's float32 leaf values in "
               "float32 (within 1e-4 * max(|v|, 1), no label differs), so a float64 evaluation of "
               "the file lands between the two" if arithmetic else
               "the difference is beyond float32 arithmetic: the file routes some rows differently "
               "from scikit-learn (a converter discrepancy)"))
    if note:
        notes.append(note)
    if notes:
        entry["note"] = "; ".join(notes)
    out.add(entry, Xref, yref, labels, values, check)


def sklearn_fixtures(out):
    bin_y = labels_binary
    species = ["adelie", "chinstrap", "gentoo"]
    skl_fixture(out, "skl_dt_classifier", DecisionTreeClassifier(max_depth=8, random_state=0),
                domain="weather", seed=41, target="species", task="classification",
                y_fn=labels_multi, class_names=species,
                note="string class labels: the file carries classlabels_strings")
    skl_fixture(out, "skl_dt_regressor", DecisionTreeRegressor(max_depth=8, random_state=0),
                domain="credit", seed=42, target="credit_limit", task="regression",
                y_fn=lambda r, z: 5000.0 + 2000.0 * z[:, 0] + r.normal(0, 300.0, len(z)))
    skl_fixture(out, "skl_rf_classifier_500",
                RandomForestClassifier(n_estimators=500, max_depth=4, random_state=0, n_jobs=1),
                domain="shop", seed=43, target="segment", task="classification",
                y_fn=labels_multi, class_names=[0, 1, 2])
    skl_fixture(out, "skl_rf_regressor",
                RandomForestRegressor(n_estimators=100, max_depth=8, random_state=0, n_jobs=1),
                domain="weather", seed=44, target="rainfall_mm", task="regression",
                y_fn=rainfall)
    skl_fixture(out, "skl_et_classifier",
                ExtraTreesClassifier(n_estimators=100, max_depth=8, random_state=0, n_jobs=1),
                domain="credit", seed=45, target="risk_band", task="classification",
                y_fn=labels_multi, class_names=["high", "low", "medium", "very_high"],
                note="string class labels (sorted, as scikit-learn orders classes_)")
    skl_fixture(out, "skl_gb_binary",
                GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0),
                domain="credit", seed=46, target="defaulted", task="classification",
                y_fn=bin_y, class_names=[0, 1])
    skl_fixture(out, "skl_gb_multiclass",
                GradientBoostingClassifier(n_estimators=50, max_depth=3, random_state=0),
                domain="shop", seed=47, target="segment", task="classification",
                y_fn=labels_multi, class_names=[0, 1, 2])
    skl_fixture(out, "skl_gb_regressor",
                GradientBoostingRegressor(n_estimators=100, max_depth=3, random_state=0),
                domain="weather", seed=48, target="rainfall_mm", task="regression",
                y_fn=rainfall)
    skl_fixture(out, "skl_hgb_classifier_nan",
                HistGradientBoostingClassifier(max_iter=100, max_leaf_nodes=15, random_state=0,
                                               early_stopping=False),
                domain="credit", seed=49, target="defaulted", task="classification",
                y_fn=bin_y, class_names=[0, 1], nan_cols=["income", "debt_ratio"],
                note="NaNs in training and reference rows")
    skl_fixture(out, "skl_hgb_regressor_nan",
                HistGradientBoostingRegressor(max_iter=100, max_leaf_nodes=15, random_state=0,
                                              early_stopping=False),
                domain="weather", seed=50, target="rainfall_mm", task="regression",
                y_fn=rainfall,
                nan_cols=["temperature_c", "wind_speed"], note="NaNs in training and reference rows")
    skl_fixture(out, "skl_gb_regressor_float",
                GradientBoostingRegressor(n_estimators=100, max_depth=3, random_state=0),
                domain="credit", seed=51, target="credit_limit", task="regression",
                y_fn=lambda r, z: 5000.0 + 2000.0 * z[:, 0] + r.normal(0, 300.0, len(z)),
                ort_oracle=True)
    # ai.onnx.ml opset 5 (TreeEnsemble), which no converter writes yet.
    v5_fixture(out, "skl_rf_regressor")


def tree_ensemble_v5(onx3):
    """An opset-3 TreeEnsembleRegressor (one target, SUM, float input) rewritten as the
    ai.onnx.ml opset-5 TreeEnsemble: neither skl2onnx nor onnxmltools writes opset 5."""
    from onnx import TensorProto, helper
    n = onx3.graph.node[0]
    assert n.op_type == "TreeEnsembleRegressor", n.op_type
    A = {a.name: helper.get_attribute_value(a) for a in n.attribute}
    # Opset 5 has no base_values: only models without them translate.
    assert not any(A.get("base_values", [])), "base_values have no opset-5 form"
    aggregate = {b"SUM": 1, b"AVERAGE": 0}[A.get("aggregate_function", b"SUM")]
    tid, nid, modes = A["nodes_treeids"], A["nodes_nodeids"], A["nodes_modes"]
    idx = {(t, k): i for i, (t, k) in enumerate(zip(tid, nid))}
    leaf_of, leaf_weights = {}, []
    for t, k, w in zip(A["target_treeids"], A["target_nodeids"], A["target_weights"]):
        leaf_of[(t, k)] = len(leaf_weights)
        leaf_weights.append(w)
    splits = [i for i, m in enumerate(modes) if m != b"LEAF"]
    assert all(modes[i] == b"BRANCH_LEQ" for i in splits)
    pos = {i: j for j, i in enumerate(splits)}

    def child(t, k):
        i = idx[(t, k)]
        return (leaf_of[(t, k)], 1) if modes[i] == b"LEAF" else (pos[i], 0)

    tv, tl, fv, fl = [], [], [], []
    for i in splits:
        a, b = child(tid[i], A["nodes_truenodeids"][i])
        c, d = child(tid[i], A["nodes_falsenodeids"][i])
        tv.append(a), tl.append(b), fv.append(c), fl.append(d)
    roots, seen = [], set()
    for i, t in enumerate(tid):
        if t not in seen:
            seen.add(t)
            roots.append(pos[i])
    m = len(splits)
    node = helper.make_node(
        "TreeEnsemble", ["X"], ["Y"], domain="ai.onnx.ml", tree_roots=roots,
        nodes_featureids=[A["nodes_featureids"][i] for i in splits],
        nodes_truenodeids=tv, nodes_trueleafs=tl, nodes_falsenodeids=fv, nodes_falseleafs=fl,
        nodes_missing_value_tracks_true=[A.get("nodes_missing_value_tracks_true", [0] * len(modes))[i]
                                         for i in splits],
        nodes_modes=helper.make_tensor("modes", TensorProto.UINT8, [m], [0] * m),
        nodes_splits=helper.make_tensor("splits", TensorProto.FLOAT, [m],
                                        [A["nodes_values"][i] for i in splits]),
        leaf_targetids=[0] * len(leaf_weights),
        leaf_weights=helper.make_tensor("weights", TensorProto.FLOAT, [len(leaf_weights)],
                                        leaf_weights),
        n_targets=1, aggregate_function=aggregate)
    f = onx3.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    g = helper.make_graph([node], "tree_ensemble_v5",
                          [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, f])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21),
                                                helper.make_opsetid("ai.onnx.ml", 5)])
    model.ir_version = 10
    return model


def v5_fixture(out, source):
    """The opset-5 form of fixture `source` (a float-input regressor), with ORT as the oracle
    and onnx.reference as a second one."""
    from onnx.reference import ReferenceEvaluator
    src = next(e for e in out.entries if e["name"] == source)
    onx = tree_ensemble_v5(onnx.load(out.file(src["file"])))
    name = f"{source}_v5"
    with open(out.file(f"{name}.onnx"), "wb") as f:
        f.write(onx.SerializeToString())
    ref = pd.read_csv(out.file(src["reference"]))
    X = ref[src["features"]].to_numpy(dtype=np.float64)
    y = ref[src["target"]].to_numpy(dtype=np.float64)
    _, v = ort_run(onx, X, np.float32, False)
    _, v3 = ort_run(onnx.load(out.file(src["file"])), X, np.float32, False)
    r = ReferenceEvaluator(onx).run(None, {"X": X.astype(np.float32)})[0].reshape(-1)
    d3, dr = diff(v, v3), diff(v, r)
    assert d3["max_rel"] <= ORT_REL and dr["max_rel"] <= ORT_REL, (d3, dr)
    entry = {k: src[k] for k in ("format", "framework", "framework_version", "task", "classes",
                                 "features", "target", "categorical", "trees", "objective")}
    entry.update({
        "name": name, "file": f"{name}.onnx",
        "oracle": (f"onnxruntime {ort.__version__} single-threaded on the float32 input; "
                   "onnx.reference agrees"),
        "tolerance_note": SKL_TOL_FLOAT, "converter": f"{source} rewritten as ai.onnx.ml opset 5",
        "ort_vs_opset3": d3, "ort_vs_onnx_reference": dr, "feature_names_in_file": False,
    })
    entry.update(onnx_info(onx))
    out.add(entry, X, y, None, v, f"oracle=ORT; vs opset 3 {d3['max_rel']:.3g}, "
            f"vs onnx.reference {dr['max_rel']:.3g}")


def mltools_fixture(out, name, onx, *, source, framework, version, features, target, classes,
                    trees, objective, Xref, yref, framework_pred, note):
    # onnxmltools names the graph with a random uuid4; a fixed name keeps runs byte-identical.
    onx.graph.name = name
    path = out.file(f"{name}.onnx")
    with open(path, "wb") as f:
        f.write(onx.SerializeToString())
    classifier = classes is not None
    ort_l, ort_v = ort_run(onx, Xref, np.float32, classifier)
    d = diff(ort_v, framework_pred)
    entry = {
        "name": name, "file": f"{name}.onnx", "format": "onnx", "framework": framework,
        "framework_version": version, "task": "classification" if classifier else "regression",
        "classes": classes, "features": features, "target": target, "categorical": [],
        "trees": trees, "objective": objective,
        "oracle": (f"onnxruntime {ort.__version__} single-threaded (intra/inter_op_num_threads=1) "
                   "on the float32 input"),
        "tolerance_note": ("float input: the reference values are exactly float32; ORT compares with "
                           "float32 thresholds and sums in float32. ort_vs_framework is the measured "
                           f"gap between ORT and {framework} itself on these rows: a fair tolerance."),
        "converter": f"onnxmltools {onnxmltools.__version__}", "source_model": source,
        "ort_vs_framework": d,
        "ort_label_mismatches": (int(sum(int(a) != int(b) for a, b in zip(
            ort_l, np.argmax(framework_pred, axis=1)))) if classifier else 0),
        "feature_names_in_file": False, "note": note,
    }
    entry.update(onnx_info(onx))
    out.add(entry, Xref, yref, ort_l, ort_v,
            f"oracle=ORT; vs {framework} max_abs={d['max_abs']:.3g} max_rel={d['max_rel']:.3g}")


def mltools_fixtures(out, lgb_binary, xgb_binary):
    # LightGBM binary → ONNX. onnxmltools takes float input only.
    bst, features, Xref, yref = lgb_binary
    Xref = to_f32(Xref)
    onx = onnxmltools.convert_lightgbm(
        bst, initial_types=[("X", MLFloatTensorType([None, len(features)]))], zipmap=False)
    p = bst.predict(Xref)
    mltools_fixture(out, "lgb_binary_onnx", onx, source="lgb_binary", framework="lightgbm",
                    version=lgb.__version__, features=features, target="defaulted",
                    classes=["0", "1"], trees=bst.num_trees(), objective="binary",
                    Xref=Xref, yref=yref, framework_pred=np.column_stack([1 - p, p]),
                    note="the lgb_binary booster converted by onnxmltools (convert_lightgbm, "
                         "zipmap=False); reference rows are lgb_binary's rounded to float32; "
                         "graph.name set to the fixture's name (onnxmltools writes a random uuid)")

    # XGBoost binary with NaNs → ONNX. onnxmltools reads the trees from the text dump, which
    # names features f0, f1, ...: convert a copy without feature names.
    bst, features, Xref, yref = xgb_binary
    Xref = to_f32(Xref)
    anon = xgb.Booster(model_file=out.file("xgb_binary_nan.json"))
    anon.feature_names = None
    anon.feature_types = None
    onx = onnxmltools.convert_xgboost(
        anon, initial_types=[("X", MLFloatTensorType([None, len(features)]))])
    p = bst.predict(xgb.DMatrix(Xref, missing=NAN, feature_names=features),
                    iteration_range=(0, bst.num_boosted_rounds()))
    p = p.astype(np.float64)
    mltools_fixture(out, "xgb_binary_nan_onnx", onx, source="xgb_binary_nan", framework="xgboost",
                    version=xgb.__version__, features=features, target="defaulted",
                    classes=["0", "1"], trees=bst.num_boosted_rounds(), objective="binary:logistic",
                    Xref=Xref, yref=yref, framework_pred=np.column_stack([1 - p, p]),
                    note="the xgb_binary_nan booster converted by onnxmltools (convert_xgboost) "
                         "without feature names (the converter needs f0..fN); NaNs follow "
                         "nodes_missing_value_tracks_true; reference rows are xgb_binary_nan's "
                         "rounded to float32; graph.name set to the fixture's name (onnxmltools "
                         "writes a random uuid)")
