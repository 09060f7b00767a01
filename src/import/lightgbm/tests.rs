//! Hand-written LightGBM text models with hand-computed predictions; refusals.

use super::read;
use crate::import::{ImportError, ImportedTask};
use crate::model::ensemble::{Aggregation, OutputKind, Transform};
use crate::model::flat::{FlatEnsemble, Scratch};

mod hostile;

/// A LightGBM file: header with `objective` and `extra` header lines, then `trees`
/// (each the lines after `Tree=i`), then the sections after the trees.
pub(super) fn model(objective: &str, num_class: u32, extra: &str, trees: &[&str]) -> String {
    let mut s = format!(
        "tree\nversion=v4\nnum_class={num_class}\nnum_tree_per_iteration={num_class}\n\
         label_index=0\nmax_feature_idx=1\nobjective={objective}\n{extra}\
         feature_names=a b\nfeature_infos=[0:1] none\ntree_sizes={}\n\n",
        vec!["1"; trees.len()].join(" ")
    );
    for (i, t) in trees.iter().enumerate() {
        s += &format!("Tree={i}\n{t}\nis_linear=0\nshrinkage=1\n\n\n");
    }
    s += "end of trees\n\nfeature_importances:\na=1\n\nparameters:\n[boosting: gbdt]\n\
          [linear_tree: 0]\n\nend of parameters\n\npandas_categorical:null\n";
    s
}

/// Three leaves: `a <= 0.5` (missing None, default left) → leaf 0, else `b <= -1`
/// (missing NaN, default right) → leaf 1, else leaf 2.
pub(super) const TREE: &str = "num_leaves=3\nnum_cat=0\nsplit_feature=0 1\n\
    split_gain=1 1\nthreshold=0.5 -1\ndecision_type=2 8\nleft_child=-1 -2\n\
    right_child=1 -3\nleaf_value=0.25 -0.5 1.5\nleaf_weight=1 1 1\nleaf_count=1 1 1\n\
    internal_value=0 0\ninternal_weight=0 0\ninternal_count=3 2";

/// A constant tree.
fn constant(v: f64) -> String {
    format!("num_leaves=1\nnum_cat=0\nsplit_feature=\nthreshold=\nleaf_value={v}")
}

/// Imports and predicts `rows`, returning (class, scores) per row.
fn predict(text: &str, rows: &[[f64; 2]]) -> Vec<(usize, Vec<f64>)> {
    let imported = read(text.as_bytes()).unwrap();
    let flat = FlatEnsemble::compile(&imported.ensemble).unwrap();
    let mut scratch = Scratch::default();
    rows.iter()
        .map(|row| {
            let mut scores = vec![0.0; flat.num_scores()];
            let class = flat.predict(row, &mut scratch, &mut scores);
            (class, scores)
        })
        .collect()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

const NAN: f64 = f64::NAN;

#[test]
fn binary_tree_routes_and_transforms() {
    let text = model("binary sigmoid:1", 1, "", &[TREE]);
    let imported = read(text.as_bytes()).unwrap();
    assert_eq!(imported.task, ImportedTask::Classification);
    assert_eq!(imported.features, Some(vec!["a".into(), "b".into()]));
    assert_eq!(imported.classes, None);
    assert!(imported.missing_aware);
    assert_eq!(imported.format, "lightgbm");
    assert_eq!(imported.source, "LightGBM v4 text model");
    assert_eq!(imported.objective, "binary sigmoid:1");
    let e = &imported.ensemble;
    assert_eq!(e.output, OutputKind::BinaryOneMinus);
    assert_eq!(e.transform, Transform::LgbSigmoid { alpha: 1.0 });
    assert!(e.zero_snap && e.base.is_empty());
    assert_eq!(e.trees[0].nodes.len(), 5);
    let out = predict(
        &text,
        &[
            [0.5, 9.0],   // a <= 0.5: leaf 0
            [0.6, -1.0],  // b <= -1: leaf 1
            [0.6, -0.9],  // leaf 2
            [NAN, -9.0],  // None: NaN is 0.0 <= 0.5: leaf 0
            [0.6, NAN],   // NaN type, default right: leaf 2
            [-3.0, NAN],  // leaf 0
            [1e-36, 0.0], // snapped to 0: leaf 0
        ],
    );
    let leaves = [0.25, -0.5, 1.5, 0.25, 1.5, 0.25, 0.25];
    for ((class, scores), leaf) in out.iter().zip(leaves) {
        let p = sigmoid(leaf);
        assert_eq!(scores, &vec![1.0 - p, p]);
        assert_eq!(*class, usize::from(p > 0.5));
    }
}

#[test]
fn sigmoid_parameter_scales_the_margin() {
    let text = model("binary sigmoid:0.5", 1, "", &[TREE]);
    let out = predict(&text, &[[0.6, 0.0]]);
    assert_eq!(out[0].1[1], 1.0 / (1.0 + (-0.5f64 * 1.5).exp()));
}

#[test]
fn crlf_lines_read_the_same() {
    let text = model("binary sigmoid:1", 1, "", &[TREE]);
    let crlf = text.replace('\n', "\r\n");
    assert_eq!(
        read(crlf.as_bytes()).unwrap().ensemble,
        read(text.as_bytes()).unwrap().ensemble
    );
}

#[test]
fn multiclass_trees_add_round_robin_then_softmax() {
    let trees: Vec<String> = [0.5, -1.0, 2.0, 0.25, 0.0, -0.5]
        .iter()
        .map(|&v| constant(v))
        .collect();
    let trees: Vec<&str> = trees.iter().map(String::as_str).collect();
    let text = model("multiclass num_class:3", 3, "", &trees);
    let e = read(text.as_bytes()).unwrap().ensemble;
    let groups: Vec<u32> = e.trees.iter().map(|t| t.group).collect();
    assert_eq!(groups, [0, 1, 2, 0, 1, 2]);
    let (class, scores) = &predict(&text, &[[0.0, 0.0]])[0];
    // raw = [0.75, -1.0, 1.5]; softmax with max 1.5
    let ex = [(-0.75f64).exp(), (-2.5f64).exp(), 1.0];
    let sum = ex[0] + ex[1] + ex[2];
    assert_eq!(scores, &ex.iter().map(|x| x / sum).collect::<Vec<_>>());
    assert_eq!(*class, 2);

    let ova = model("multiclassova num_class:3 sigmoid:2", 3, "", &trees);
    let imported = read(ova.as_bytes()).unwrap();
    assert_eq!(imported.warnings.len(), 1);
    let (class, scores) = &predict(&ova, &[[0.0, 0.0]])[0];
    let want: Vec<f64> = [0.75, -1.0, 1.5]
        .iter()
        .map(|&x: &f64| 1.0 / (1.0 + (-2.0 * x).exp()))
        .collect();
    assert_eq!(scores, &want);
    assert_eq!(*class, 2);
}

#[test]
fn regression_objectives_transform_as_lightgbm() {
    let trees = [constant(-1.5), constant(0.25)];
    let trees: Vec<&str> = trees.iter().map(String::as_str).collect();
    let raw = -1.25f64;
    for (objective, want) in [
        ("regression", raw),
        ("regression_l1", raw),
        ("huber", raw),
        ("huber sqrt", raw), // LightGBM turns sqrt off for huber
        ("fair", raw),
        ("quantile", raw),
        ("mape", raw),
        ("regression sqrt", -raw * raw),
        ("quantile sqrt", -raw * raw),
        ("poisson", raw.exp()),
        ("gamma", raw.exp()),
        ("tweedie", raw.exp()),
        ("cross_entropy", sigmoid(raw)),
        ("xentropy", sigmoid(raw)),
        ("cross_entropy_lambda", raw.exp().ln_1p()),
    ] {
        let text = model(objective, 1, "", &trees);
        let imported = read(text.as_bytes()).unwrap();
        assert_eq!(imported.task, ImportedTask::Regression, "{objective}");
        assert_eq!(imported.ensemble.output, OutputKind::Value);
        let (class, scores) = &predict(&text, &[[0.0, 0.0]])[0];
        assert_eq!((*class, scores[0]), (0, want), "{objective}");
    }
}

#[test]
fn average_output_divides_by_iterations() {
    let trees = [constant(1.0), constant(2.0), constant(4.5)];
    let trees: Vec<&str> = trees.iter().map(String::as_str).collect();
    let text = model("regression", 1, "average_output\n", &trees);
    let e = read(text.as_bytes()).unwrap().ensemble;
    assert_eq!(e.aggregation, Aggregation::Mean { divisor: 3.0 });
    assert_eq!(predict(&text, &[[0.0, 0.0]])[0].1[0], 7.5 / 3.0);
}

#[test]
fn zero_missing_type_sends_zero_and_nan_to_the_default() {
    // a <= -1 (missing type Zero, default left: 6) → leaf 0, else leaf 1.
    let tree = "num_leaves=2\nnum_cat=0\nsplit_feature=0\nthreshold=-1\ndecision_type=6\n\
                left_child=-1\nright_child=-2\nleaf_value=10 20";
    let text = model("regression", 1, "", &[tree]);
    let out = predict(
        &text,
        &[
            [0.0, 0.0],
            [NAN, 0.0],
            [1e-36, 0.0],
            [-0.0, 0.0],
            [0.5, 0.0],
            [-2.0, 0.0],
        ],
    );
    let got: Vec<f64> = out.iter().map(|o| o.1[0]).collect();
    assert_eq!(got, [10.0, 10.0, 10.0, 10.0, 20.0, 10.0]);
}

#[test]
fn categorical_split_sends_set_members_left() {
    // Set {0, 3, 33}: words 0b1001, 0b10. NaN and (int)x < 0 go right.
    let tree = "num_leaves=2\nnum_cat=1\nsplit_feature=1\nthreshold=0\ndecision_type=1\n\
                left_child=-1\nright_child=-2\nleaf_value=1 2\ncat_boundaries=0 2\n\
                cat_threshold=9 2";
    let text = model("regression", 1, "", &[tree]);
    let rows: Vec<[f64; 2]> = [0.0, 3.0, 3.9, 33.0, -0.5, 1.0, 32.0, -1.0, NAN, 64.0, 1e10]
        .iter()
        .map(|&b| [0.0, b])
        .collect();
    let got: Vec<f64> = predict(&text, &rows).iter().map(|o| o.1[0]).collect();
    assert_eq!(got, [1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]);
}

#[test]
fn infinite_thresholds_split_numbers_from_nan() {
    // LightGBM writes `inf` to send every number left and NaN to the default (right).
    let tree = "num_leaves=3\nnum_cat=0\nsplit_feature=0 1\nthreshold=inf -inf\n\
                decision_type=8 8\nleft_child=1 -2\nright_child=-1 -3\nleaf_value=1 2 3";
    let text = model("regression", 1, "", &[tree]);
    let rows = [[NAN, 0.0], [f64::MAX, 0.0], [-5.0, -f64::MAX], [0.0, NAN]];
    let got: Vec<f64> = predict(&text, &rows).iter().map(|o| o.1[0]).collect();
    assert_eq!(got, [1.0, 3.0, 3.0, 3.0]);
}

#[test]
fn single_leaf_tree_is_a_constant() {
    let text = model("regression", 1, "", &[&constant(0.125)]);
    let e = read(text.as_bytes()).unwrap().ensemble;
    assert_eq!(e.trees[0].nodes.len(), 1);
    assert_eq!(predict(&text, &[[NAN, NAN]])[0].1[0], 0.125);
}

#[test]
fn without_trailing_sections_or_tree_sizes_it_still_reads() {
    let text = model("regression", 1, "", &[TREE]);
    let cut = text.split("end of trees").next().unwrap().to_string() + "end of trees";
    let cut = cut.replace("tree_sizes=1\n", "");
    assert!(read(cut.as_bytes()).is_ok());
}

/// The error message of a refused file.
pub(super) fn refusal(text: &str) -> String {
    match read(text.as_bytes()) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn refusals_name_what_is_wrong() {
    let ok = model("binary sigmoid:1", 1, "", &[TREE]);
    let cases: Vec<(String, &str)> = vec![
        (
            ok.replacen("tree\n", "Tree\n", 1),
            "first line is not `tree`",
        ),
        (
            ok.replace("is_linear=0", "is_linear=1"),
            "linear trees are not supported",
        ),
        (
            ok.replace("[linear_tree: 0]", "[linear_tree: 1]"),
            "linear trees are not supported",
        ),
        (ok.replace("binary sigmoid:1", "lambdarank"), "`lambdarank`"),
        (
            ok.replace("binary sigmoid:1", "rank_xendcg"),
            "ranking models",
        ),
        (
            ok.replace("binary sigmoid:1", "wobble"),
            "objective `wobble`",
        ),
        (
            ok.replace("objective=binary sigmoid:1\n", ""),
            "no objective= line",
        ),
        (ok.replace("binary sigmoid:1", "binary"), "sigmoid"),
        (ok.replace("sigmoid:1", "sigmoid:-1"), "sigmoid:-1"),
        (
            ok.replace("num_tree_per_iteration=1", "num_tree_per_iteration=2"),
            "num_tree_per_iteration",
        ),
        (
            ok.replace(
                "num_class=1\nnum_tree_per_iteration=1",
                "num_class=3\nnum_tree_per_iteration=3",
            ),
            "objective: `binary` has one output",
        ),
        (
            ok.replace("feature_names=a b", "feature_names=a"),
            "feature_names: 1 names",
        ),
        (
            ok.replace("feature_names=a b", "feature_names=a a"),
            "`a` appears twice",
        ),
        (
            ok.replace("feature_names=a b\n", ""),
            "no feature_names= line",
        ),
        (
            ok.replace("feature_infos=[0:1] none", "feature_infos=none"),
            "feature_infos",
        ),
        (
            ok.replace("max_feature_idx=1", "max_feature_idx=-1"),
            "max_feature_idx",
        ),
        (ok.replace("num_class=1\n", ""), "no num_class= line"),
        (
            ok.replace("tree_sizes=1", "tree_sizes=1 1"),
            "tree_sizes: 2 sizes",
        ),
        (ok.replace("Tree=0", "Tree=1"), "expected `Tree=0`"),
        (ok.replace("num_leaves=3\n", ""), "no num_leaves line"),
        (ok.replace("num_cat=0\n", ""), "no num_cat line"),
        (
            ok.replace("num_leaves=3", "num_leaves=4"),
            "leaf_value: 3 values, expected 4",
        ),
        (ok.replace("num_leaves=3", "num_leaves=0"), "num_leaves: 0"),
        (
            ok.replace("threshold=0.5 -1", "threshold=0.5"),
            "threshold: 1 values, expected 2",
        ),
        (
            ok.replace("threshold=0.5 -1", "threshold=0.5 nan"),
            "NaN is not a threshold",
        ),
        (
            ok.replace("threshold=0.5 -1", "threshold=0.5 x"),
            "`x` is not a valid number",
        ),
        (
            ok.replace("leaf_value=0.25", "leaf_value=inf"),
            "inf is not a finite number",
        ),
        (
            ok.replace("split_feature=0 1", "split_feature=0 2"),
            "feature 2, but the model has 2",
        ),
        (
            ok.replace("split_feature=0 1", "split_feature=-1 1"),
            "split_feature",
        ),
        (
            ok.replace("decision_type=2 8", "decision_type=2 12"),
            "missing type 3",
        ),
        (
            ok.replace("decision_type=2 8", "decision_type=2 99"),
            "not a LightGBM decision type",
        ),
        (
            ok.replace("left_child=-1 -2", "left_child=-1 -4"),
            "left_child: node 1: child -4",
        ),
        (
            ok.replace("right_child=1 -3", "right_child=2 -3"),
            "right_child: node 0: child 2",
        ),
        (
            ok.replace("right_child=1 -3", "right_child=0 -3"),
            "reached twice",
        ),
        (
            ok.replace("left_child=-1 -2", "left_child=-1 -1"),
            "reached twice",
        ),
        (
            ok.replace("num_cat=0", "num_cat=1"),
            "no cat_boundaries line",
        ),
        (
            ok.replace("decision_type=2 8", "decision_type=1 8"),
            "not a category set",
        ),
        (
            ok.replace("num_leaves=3", "num_leaves=3\nnum_leaves=3"),
            "appears twice",
        ),
        (
            ok.replace("split_gain=1 1", "split gain"),
            "not a key=value line",
        ),
        (
            ok.replace("\nend of parameters", ""),
            "no `end of parameters`",
        ),
        (ok.replace("Tree=0", "end of trees\nTree=0"), "no trees"),
    ];
    for (text, want) in cases {
        let got = refusal(&text);
        assert!(got.contains(want), "{want:?} not in {got:?}");
    }
    let mut bad = ok.into_bytes();
    bad[8] = 0xff;
    let err = read(&bad).unwrap_err();
    assert!(err.to_string().contains("line 2 is not UTF-8"), "{err}");
    assert!(matches!(err, ImportError::Malformed { .. }));
}
