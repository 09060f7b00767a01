//! Hand-built ONNX models of each kind with hand-computed outputs, every refusal, and
//! hostile inputs.

use super::proto::*;
use super::read;
use crate::import::{Imported, ImportedTask};
use crate::model::ensemble::{OutputKind, Precision};
use crate::model::flat::{FlatEnsemble, Scratch};
use prost::Message;

pub(super) fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 7,
        ints: v.to_vec(),
        ..Default::default()
    }
}
pub(super) fn floats(name: &str, v: &[f32]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 6,
        floats: v.to_vec(),
        ..Default::default()
    }
}
pub(super) fn strings(name: &str, v: &[&str]) -> AttributeProto {
    let strings = v.iter().map(|s| s.as_bytes().to_vec()).collect();
    AttributeProto {
        name: name.into(),
        r#type: 8,
        strings,
        ..Default::default()
    }
}
pub(super) fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 3,
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}
pub(super) fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 2,
        i: v,
        ..Default::default()
    }
}
pub(super) fn doubles(name: &str, v: &[f64]) -> AttributeProto {
    let t = TensorProto {
        dims: vec![v.len() as i64],
        data_type: 11,
        raw_data: v.iter().flat_map(|d| d.to_le_bytes()).collect(),
        ..Default::default()
    };
    AttributeProto {
        name: name.into(),
        r#type: 4,
        t: Some(t),
        ..Default::default()
    }
}
pub(super) fn f32_tensor(name: &str, v: &[f32]) -> AttributeProto {
    let t = TensorProto {
        dims: vec![v.len() as i64],
        data_type: 1,
        float_data: v.to_vec(),
        ..Default::default()
    };
    AttributeProto {
        name: name.into(),
        r#type: 4,
        t: Some(t),
        ..Default::default()
    }
}
pub(super) fn u8_tensor(name: &str, v: &[u8]) -> AttributeProto {
    let t = TensorProto {
        dims: vec![v.len() as i64],
        data_type: 2,
        raw_data: v.to_vec(),
        ..Default::default()
    };
    AttributeProto {
        name: name.into(),
        r#type: 4,
        t: Some(t),
        ..Default::default()
    }
}

pub(super) fn op(op_type: &str, attribute: Vec<AttributeProto>, outputs: &[&str]) -> NodeProto {
    NodeProto {
        input: vec!["X".into()],
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: "trees".into(),
        op_type: op_type.into(),
        domain: "ai.onnx.ml".into(),
        attribute,
    }
}

pub(super) fn model_with(nodes: Vec<NodeProto>, elem_type: i32, features: i64, ml: i64) -> Vec<u8> {
    let dim = |v: i64| Dimension {
        dim_value: v,
        dim_param: String::new(),
    };
    let input = ValueInfoProto {
        name: "X".into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type,
                shape: Some(TensorShapeProto {
                    dim: vec![dim(0), dim(features)],
                }),
            }),
        }),
    };
    ModelProto {
        ir_version: 10,
        opset_import: vec![
            OperatorSetIdProto {
                domain: String::new(),
                version: 21,
            },
            OperatorSetIdProto {
                domain: "ai.onnx.ml".into(),
                version: ml,
            },
        ],
        producer_name: "hand".into(),
        producer_version: "1".into(),
        graph: Some(GraphProto {
            node: nodes,
            input: vec![input],
            output: vec![],
        }),
    }
    .encode_to_vec()
}

/// A stump per tree: `x[0] <= t` → leaf 1 else leaf 2 (node ids 0, 1, 2).
pub(super) fn stump_attrs(trees: usize, t: f32, tracks: i64) -> Vec<AttributeProto> {
    let mut treeids = vec![];
    for k in 0..trees as i64 {
        treeids.extend([k, k, k]);
    }
    let rep = |v: &[i64]| {
        v.iter()
            .cycle()
            .take(3 * trees)
            .copied()
            .collect::<Vec<_>>()
    };
    let modes: Vec<&str> = ["BRANCH_LEQ", "LEAF", "LEAF"]
        .iter()
        .cycle()
        .take(3 * trees)
        .copied()
        .collect();
    vec![
        ints("nodes_treeids", &treeids),
        ints("nodes_nodeids", &rep(&[0, 1, 2])),
        ints("nodes_featureids", &rep(&[0, 0, 0])),
        ints("nodes_truenodeids", &rep(&[1, 0, 0])),
        ints("nodes_falsenodeids", &rep(&[2, 0, 0])),
        ints("nodes_missing_value_tracks_true", &rep(&[tracks, 0, 0])),
        strings("nodes_modes", &modes),
        floats("nodes_values", &[t, 0.0, 0.0].repeat(trees)),
    ]
}

/// Leaf weights for `stump_attrs`: per tree, per leaf (1, 2), `(class, weight)` pairs.
pub(super) fn weights(prefix: &str, leaves: &[Vec<(i64, f32)>]) -> Vec<AttributeProto> {
    let (mut ids, mut nodes, mut trees, mut w) = (vec![], vec![], vec![], vec![]);
    for (i, pairs) in leaves.iter().enumerate() {
        for &(c, v) in pairs {
            ids.push(c);
            nodes.push(1 + (i % 2) as i64);
            trees.push((i / 2) as i64);
            w.push(v);
        }
    }
    vec![
        ints(&format!("{prefix}_ids"), &ids),
        ints(&format!("{prefix}_nodeids"), &nodes),
        ints(&format!("{prefix}_treeids"), &trees),
        floats(&format!("{prefix}_weights"), &w),
    ]
}

pub(super) fn regressor(extra: Vec<AttributeProto>, tracks: i64) -> Vec<AttributeProto> {
    let mut a = stump_attrs(2, 0.5, tracks);
    a.extend(weights(
        "target",
        &[
            vec![(0, 1.0)],
            vec![(0, 2.0)],
            vec![(0, 10.0)],
            vec![(0, 20.0)],
        ],
    ));
    a.push(int("n_targets", 1));
    a.extend(extra);
    a
}

pub(super) fn reg_model(extra: Vec<AttributeProto>) -> Vec<u8> {
    model_with(
        vec![op("TreeEnsembleRegressor", regressor(extra, 0), &["Y"])],
        1,
        1,
        3,
    )
}

pub(super) fn predict(m: &Imported, row: &[f64]) -> (usize, Vec<f64>) {
    let flat = FlatEnsemble::compile(&m.ensemble).unwrap();
    let mut s = vec![0.0; flat.num_scores()];
    let c = flat.predict(row, &mut Scratch::default(), &mut s);
    (c, s)
}

pub(super) fn err(bytes: &[u8]) -> String {
    match read(bytes) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    }
}

pub(super) fn logistic(x: f32) -> f32 {
    let v = 1.0f32 / (1.0 + (-x.abs()).exp());
    if x < 0.0 { 1.0 - v } else { v }
}

#[test]
fn regressor_sum_average_base_and_missing() {
    let m = read(&reg_model(vec![floats("base_values", &[0.25])])).unwrap();
    assert_eq!(m.task, ImportedTask::Regression);
    assert_eq!(m.ensemble.precision, Precision::F32);
    assert!(!m.missing_aware && m.features.is_none() && m.classes.is_none());
    assert_eq!(
        (m.format, m.objective.as_str()),
        ("onnx", "TreeEnsembleRegressor")
    );
    assert_eq!(m.source, "hand 1 (ONNX ir 10, ai.onnx.ml 3)");
    assert_eq!(predict(&m, &[0.5]).1, [11.25]);
    assert_eq!(predict(&m, &[0.5000001]).1, [22.25]);
    // NaN is not tracked: `NaN <= t` is false.
    assert_eq!(predict(&m, &[f64::NAN]).1, [22.25]);
    // f32 input rounding: 0.50000001 rounds to 0.5f.
    assert_eq!(predict(&m, &[0.500_000_01]).1, [11.25]);
    let m = read(&reg_model(vec![string("aggregate_function", "AVERAGE")])).unwrap();
    assert_eq!(predict(&m, &[0.0]).1, [5.5]);
    let tracked = model_with(
        vec![op("TreeEnsembleRegressor", regressor(vec![], 1), &["Y"])],
        1,
        1,
        1,
    );
    let m = read(&tracked).unwrap();
    assert!(m.missing_aware);
    assert_eq!(predict(&m, &[f64::NAN]).1, [11.0]);
}

#[test]
fn double_inputs_use_the_double_tensors() {
    let mut a = stump_attrs(1, 0.0, 0);
    a.retain(|a| a.name != "nodes_values");
    a.push(doubles("nodes_values_as_tensor", &[0.1, 0.0, 0.0]));
    a.extend([
        ints("target_ids", &[0, 0]),
        ints("target_nodeids", &[1, 2]),
        ints("target_treeids", &[0, 0]),
        doubles("target_weights_as_tensor", &[0.1, 0.2]),
        doubles("base_values_as_tensor", &[0.3]),
        int("n_targets", 1),
    ]);
    let m = read(&model_with(
        vec![op("TreeEnsembleRegressor", a.clone(), &["Y"])],
        11,
        1,
        3,
    ))
    .unwrap();
    assert_eq!(m.ensemble.precision, Precision::F64);
    // 0.1 (double) <= 0.1: true; the sum is cast to float.
    assert_eq!(predict(&m, &[0.1]).1, [(0.1f64 + 0.3) as f32 as f64]);
    assert_eq!(
        predict(&m, &[0.1f64.next_up()]).1,
        [(0.2f64 + 0.3) as f32 as f64]
    );
    // The same tensors with a FLOAT input, or at opset 1, are refused.
    let e = err(&model_with(
        vec![op("TreeEnsembleRegressor", a.clone(), &["Y"])],
        1,
        1,
        3,
    ));
    assert!(
        e.contains("nodes_values_as_tensor") && e.contains("DOUBLE"),
        "{e}"
    );
    let e = err(&model_with(
        vec![op("TreeEnsembleRegressor", a, &["Y"])],
        11,
        1,
        2,
    ));
    assert!(e.contains("needs ai.onnx.ml opset 3"), "{e}");
}

pub(super) fn classifier(leaves: &[Vec<(i64, f32)>], extra: Vec<AttributeProto>) -> Vec<u8> {
    let mut a = stump_attrs(leaves.len() / 2, 0.5, 0);
    a.extend(weights("class", leaves));
    a.extend(extra);
    model_with(
        vec![op("TreeEnsembleClassifier", a, &["label", "probabilities"])],
        1,
        1,
        1,
    )
}

#[test]
fn binary_forest_pattern_writes_one_minus_s() {
    let labels = || ints("classlabels_int64s", &[3, 7]);
    let m = read(&classifier(
        &[vec![(0, 0.25)], vec![(0, 0.75)]],
        vec![labels()],
    ))
    .unwrap();
    assert_eq!(m.classes, Some(vec!["3".to_string(), "7".to_string()]));
    assert_eq!(m.ensemble.output, OutputKind::OrtBinaryOneMinus);
    assert_eq!(predict(&m, &[0.0]), (0, vec![0.75, 0.25]));
    assert_eq!(predict(&m, &[1.0]), (1, vec![0.25, 0.75]));
    // Exactly 0.5 is class 0 (s > 0.5).
    let m = read(&classifier(
        &[vec![(0, 0.5)], vec![(0, 0.5)]],
        vec![labels()],
    ))
    .unwrap();
    assert_eq!(predict(&m, &[0.0]), (0, vec![0.5, 0.5]));
}

#[test]
fn binary_boosting_pattern_writes_the_logistic_pair() {
    let leaves = [vec![(0, -1.5f32)], vec![(0, 2.0)]];
    let extra = |post: &str| {
        vec![
            strings("classlabels_strings", &["no", "yes"]),
            floats("base_values", &[0.25]),
            string("post_transform", post),
        ]
    };
    let m = read(&classifier(&leaves, extra("LOGISTIC"))).unwrap();
    assert_eq!(m.ensemble.output, OutputKind::BinaryLogisticPair);
    let s = -1.5f32 + 0.25;
    assert_eq!(
        predict(&m, &[0.0]),
        (0, vec![logistic(-s) as f64, logistic(s) as f64])
    );
    assert_eq!(predict(&m, &[1.0]).0, 1);
    let m = read(&classifier(&leaves, extra("NONE"))).unwrap();
    assert_eq!(predict(&m, &[0.0]), (0, vec![-s as f64, s as f64]));
}

#[test]
fn multiclass_softmax_decides_on_raw_scores() {
    // Tree 0 writes all three classes; tree 1 only class 2.
    let leaves = [
        vec![(0, 1.0f32), (1, 0.5), (2, 0.0)],
        vec![(0, 0.0), (1, 2.0), (2, 0.5)],
        vec![(2, 0.25)],
        vec![(2, 1.0)],
    ];
    let extra = vec![
        ints("classlabels_int64s", &[0, 1, 2]),
        floats("base_values", &[0.5, 0.0, -0.5]),
        string("post_transform", "SOFTMAX"),
    ];
    let m = read(&classifier(&leaves, extra)).unwrap();
    assert_eq!(m.ensemble.output, OutputKind::ArgmaxRaw);
    let raw = [1.0f32 + 0.5, 0.5 + 0.0, 0.0 + 0.25 - 0.5];
    let max = 1.5f32;
    let e: Vec<f32> = raw.iter().map(|r| (r - max).exp()).collect();
    let sum = e[0] + e[1] + e[2];
    let want: Vec<f64> = e.iter().map(|x| (x / sum) as f64).collect();
    assert_eq!(predict(&m, &[0.0]), (0, want));
    assert_eq!(predict(&m, &[1.0]).0, 1);
}

#[test]
fn tree_ensemble_opset5_with_a_one_leaf_tree() {
    // Tree 0: node 0 (x0 < 1.0 → leaf 0, else node 1); node 1 (x0 >= 3 → leaf 1 else leaf 2).
    // Tree 1: node 2's children are both leaf 3, so it is a one-leaf tree, and ONNX
    // Runtime reads leaf tree_roots[1] = 2 (not 3).
    let a = vec![
        ints("tree_roots", &[0, 2]),
        ints("nodes_featureids", &[0, 0, 0]),
        ints("nodes_truenodeids", &[0, 1, 3]),
        ints("nodes_falsenodeids", &[1, 3, 3]),
        ints("nodes_trueleafs", &[1, 1, 1]),
        ints("nodes_falseleafs", &[0, 1, 1]),
        ints("nodes_missing_value_tracks_true", &[1, 0, 0]),
        u8_tensor("nodes_modes", &[1, 2, 0]),
        f32_tensor("nodes_splits", &[1.0, 3.0, 0.0]),
        ints("leaf_targetids", &[0, 0, 0, 0]),
        f32_tensor("leaf_weights", &[1.0, 2.0, 4.0, 8.0]),
        int("n_targets", 1),
        int("aggregate_function", 1),
    ];
    let node = op("TreeEnsemble", a, &["Y"]);
    let m = read(&model_with(vec![node.clone()], 1, 1, 5)).unwrap();
    assert!(m.missing_aware);
    assert_eq!(m.ensemble.trees.len(), 2);
    assert_eq!(predict(&m, &[0.0]).1, [1.0 + 4.0]);
    assert_eq!(predict(&m, &[f64::NAN]).1, [5.0]);
    assert_eq!(predict(&m, &[3.0]).1, [6.0]);
    assert_eq!(predict(&m, &[2.0]).1, [12.0]);
    let e = err(&model_with(vec![node], 1, 1, 3));
    assert!(e.contains("opset 3"), "{e}");
}

#[test]
fn identity_zipmap_and_cast_of_outputs_are_accepted() {
    let mut a = stump_attrs(1, 0.5, 0);
    a.extend(weights("class", &[vec![(0, 0.25)], vec![(0, 0.75)]]));
    a.push(ints("classlabels_int64s", &[0, 1]));
    let tree = op("TreeEnsembleClassifier", a, &["label", "p"]);
    let plain = |op_type: &str, domain: &str, input: &str, out: &str, attribute| NodeProto {
        input: vec![input.into()],
        output: vec![out.into()],
        name: op_type.into(),
        op_type: op_type.into(),
        domain: domain.into(),
        attribute,
    };
    let nodes = vec![
        tree.clone(),
        plain("Identity", "", "p", "p1", vec![]),
        plain("Cast", "", "p1", "p2", vec![int("to", 11)]),
        plain("ZipMap", "ai.onnx.ml", "p2", "out", vec![]),
    ];
    assert!(read(&model_with(nodes, 1, 1, 1)).is_ok());
    let bad = vec![
        tree.clone(),
        plain("Cast", "", "p", "q", vec![int("to", 7)]),
    ];
    assert!(err(&model_with(bad, 1, 1, 1)).contains("Cast of the tree scores to type 7"));
    let exp = vec![tree.clone(), plain("Exp", "", "p", "q", vec![])];
    assert!(err(&model_with(exp, 1, 1, 1)).contains("Exp"));
    let mut scaled = tree;
    scaled.input = vec!["Xs".into()];
    let pre = vec![plain("Scaler", "ai.onnx.ml", "X", "Xs", vec![]), scaled];
    let e = err(&model_with(pre, 1, 1, 1));
    assert!(
        e.contains("ai.onnx.ml.Scaler") && e.contains("export the trees alone"),
        "{e}"
    );
}
