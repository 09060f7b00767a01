//! `TreeEnsembleClassifier` / `TreeEnsembleRegressor` (ai.onnx.ml opsets 1–4) into an
//! [`Ensemble`] with ONNX Runtime's semantics (`tree_ensemble_common.h`,
//! `tree_ensemble_aggregator.h`, `ml_common.h`): arithmetic in the input's type, trees in
//! order of first appearance, base values after the sum, scores written as float, and
//! ORT's binary table.

use super::graph::{Accepted, Attrs, OpKind};
use super::tree::{self, Src};
use super::{Translated, malformed, tensor_values, unsupported};
use crate::import::ImportError;
use crate::model::ensemble::{
    Aggregation, BasePlacement, Ensemble, OutputKind, Precision, Test, Transform,
};
use std::collections::{HashMap, HashSet};

/// ORT's `post_transform` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Post {
    /// `NONE`.
    None,
    /// `LOGISTIC`.
    Logistic,
    /// `SOFTMAX`.
    Softmax,
    /// `SOFTMAX_ZERO`.
    SoftmaxZero,
}

fn post_transform(op: &str, s: Option<&str>) -> Result<Post, ImportError> {
    match s.unwrap_or("NONE") {
        "NONE" => Ok(Post::None),
        "LOGISTIC" => Ok(Post::Logistic),
        "SOFTMAX" => Ok(Post::Softmax),
        "SOFTMAX_ZERO" => Ok(Post::SoftmaxZero),
        "PROBIT" => Err(unsupported(format!(
            "{op}: post_transform PROBIT is not served"
        ))),
        other => Err(malformed(format!(
            "{op}: post_transform '{other}' is unknown"
        ))),
    }
}

/// The float attribute `name` or its `name_as_tensor` double twin, in the model's type.
fn values(a: &Attrs, acc: &Accepted, name: &str) -> Result<Vec<f64>, ImportError> {
    let tname = format!("{name}_as_tensor");
    let floats = a.floats(name)?;
    match a.tensor(&tname)? {
        Some(_) if !floats.is_empty() => {
            Err(malformed(format!("both '{name}' and '{tname}' are given")))
        }
        Some(_) if acc.ml_opset < 3 => Err(malformed(format!(
            "'{tname}' needs ai.onnx.ml opset 3 (the model imports {})",
            acc.ml_opset
        ))),
        Some(t) => tensor_values(t, &tname, acc.double),
        None => Ok(floats.iter().map(|&f| f64::from(f)).collect()),
    }
}

/// Refuses a regressor of several targets: treeserve serves one.
pub(super) fn one_target(a: &Attrs, op: &str) -> Result<(), ImportError> {
    match a.int("n_targets")? {
        Some(1) => Ok(()),
        Some(t) if t > 1 => Err(unsupported(format!(
            "{op}: n_targets = {t}; treeserve serves one target"
        ))),
        t => Err(malformed(format!(
            "{op}: n_targets = {} (must be 1)",
            t.unwrap_or(0)
        ))),
    }
}

/// Refuses a per-node attribute of `op` whose length is not the node count `n`.
pub(super) fn same_len(op: &str, n: usize, len: usize, name: &str) -> Result<(), ImportError> {
    if len == n {
        Ok(())
    } else {
        Err(malformed(format!(
            "{op}: '{name}' has {len} values for {n} nodes"
        )))
    }
}

/// Translates an opset 1–4 tree operator.
pub fn v3(acc: &Accepted) -> Result<Translated, ImportError> {
    let op = acc.node.op_type.as_str();
    let a = Attrs::new(acc.node, op)?;
    let treeids = a.ints("nodes_treeids")?;
    let n = treeids.len();
    if n == 0 {
        return Err(malformed(format!(
            "{op}: 'nodes_treeids' is empty (no nodes)"
        )));
    }
    let nodeids = a.ints("nodes_nodeids")?;
    let featureids = a.ints("nodes_featureids")?;
    let trueids = a.ints("nodes_truenodeids")?;
    let falseids = a.ints("nodes_falsenodeids")?;
    let modes = a.strings("nodes_modes")?;
    let tracks = a.ints("nodes_missing_value_tracks_true")?;
    let thresholds = values(&a, acc, "nodes_values")?;
    for (name, len) in [
        ("nodes_nodeids", nodeids.len()),
        ("nodes_featureids", featureids.len()),
        ("nodes_truenodeids", trueids.len()),
        ("nodes_falsenodeids", falseids.len()),
        ("nodes_modes", modes.len()),
        ("nodes_values", thresholds.len()),
    ] {
        same_len(op, n, len, name)?;
    }
    if !tracks.is_empty() {
        same_len(op, n, tracks.len(), "nodes_missing_value_tracks_true")?;
    }
    // ONNX Runtime reads tree and node ids as 32-bit ints.
    let id32 = |v: i64, name: &str, i: usize| {
        i32::try_from(v)
            .map_err(|_| malformed(format!("{name}[{i}] = {v} is outside the 32-bit range")))
    };
    let mut at: HashMap<(i32, i32), usize> = HashMap::with_capacity(n);
    let mut roots = Vec::new();
    let mut done: HashSet<i32> = HashSet::new();
    for i in 0..n {
        let key = (
            id32(treeids[i], "nodes_treeids", i)?,
            id32(nodeids[i], "nodes_nodeids", i)?,
        );
        if at.insert(key, i).is_some() {
            return Err(malformed(format!(
                "node {} of tree {} is given twice (index {i})",
                key.1, key.0
            )));
        }
        if i == 0 || treeids[i] != treeids[i - 1] {
            if !done.insert(key.0) {
                return Err(unsupported(format!(
                    "tree {} is split in two runs of nodes (index {i}); ONNX Runtime would \
                     count it twice",
                    key.0
                )));
            }
            roots.push(i);
        }
    }
    let classifier = acc.kind == OpKind::Classifier;
    let prefix = if classifier { "class" } else { "target" };
    let w_ids = a.ints(&format!("{prefix}_ids"))?;
    let w_nodes = a.ints(&format!("{prefix}_nodeids"))?;
    let w_trees = a.ints(&format!("{prefix}_treeids"))?;
    let weights = values(&a, acc, &format!("{prefix}_weights"))?;
    for (name, len) in [
        ("nodeids", w_nodes.len()),
        ("treeids", w_trees.len()),
        ("weights", weights.len()),
    ] {
        if len != w_ids.len() {
            return Err(malformed(format!(
                "'{prefix}_{name}' has {len} values for {} '{prefix}_ids'",
                w_ids.len()
            )));
        }
    }
    // Outputs: class labels or n_targets.
    let (k, classes) = if classifier {
        let strings = a.strings("classlabels_strings")?;
        let ints = a.ints("classlabels_int64s")?;
        let classes: Vec<String> = match (strings.is_empty(), ints.is_empty()) {
            (false, false) => {
                return Err(malformed(
                    "both 'classlabels_strings' and 'classlabels_int64s' are given",
                ));
            }
            (false, true) => strings
                .iter()
                .map(|s| {
                    String::from_utf8(s.clone())
                        .map_err(|_| malformed("'classlabels_strings' holds a non-UTF-8 label"))
                })
                .collect::<Result<_, _>>()?,
            _ => ints.iter().map(|i| i.to_string()).collect(),
        };
        if classes.len() < 2 {
            return Err(unsupported(format!(
                "{op} has {} class labels; a classifier needs at least 2",
                classes.len()
            )));
        }
        (classes.len(), Some(classes))
    } else {
        one_target(&a, op)?;
        (1, None)
    };
    // Leaf weights, in attribute order.
    let mut leaf: Vec<Vec<(u32, f64)>> = vec![Vec::new(); n];
    for i in 0..w_ids.len() {
        let key = (
            id32(w_trees[i], &format!("{prefix}_treeids"), i)?,
            id32(w_nodes[i], &format!("{prefix}_nodeids"), i)?,
        );
        let node = *at.get(&key).ok_or_else(|| {
            malformed(format!(
                "{prefix} weight {i} names node {} of tree {}, which does not exist",
                key.1, key.0
            ))
        })?;
        let id = tree::index(w_ids[i], k, || format!("{prefix}_ids[{i}]"))?;
        leaf[node].push((id as u32, weights[i]));
    }
    let mut src = Vec::with_capacity(n);
    let mut missing_aware = false;
    for i in 0..n {
        let mode = modes[i].as_slice();
        let t = thresholds[i];
        let test = match mode {
            b"LEAF" => {
                let mut pairs = std::mem::take(&mut leaf[i]);
                if !classifier {
                    // One target: ONNX Runtime adds the leaf's first weight only.
                    let Some(&first) = pairs.first() else {
                        return Err(malformed(format!(
                            "tree {} node {}: a leaf without weight",
                            treeids[i], nodeids[i]
                        )));
                    };
                    pairs = vec![first];
                }
                src.push(Src::Leaf(pairs));
                continue;
            }
            b"BRANCH_LEQ" => Test::Le(t),
            b"BRANCH_LT" => Test::Lt(t),
            b"BRANCH_GTE" => Test::Ge(t),
            b"BRANCH_GT" => Test::Gt(t),
            b"BRANCH_EQ" | b"BRANCH_NEQ" => {
                return Err(unsupported(format!(
                    "nodes_modes[{i}] = {}: equality splits are not served",
                    String::from_utf8_lossy(mode)
                )));
            }
            _ => {
                return Err(malformed(format!(
                    "nodes_modes[{i}] = '{}' is unknown",
                    String::from_utf8_lossy(mode)
                )));
            }
        };
        let tracks_true = tracks.get(i) == Some(&1);
        missing_aware |= tracks_true;
        let child = |v: i64, name: &str| -> Result<usize, ImportError> {
            let what = || format!("tree {} node {}: {name} {v}", treeids[i], nodeids[i]);
            // ONNX Runtime leaves a child outside 0..n unset (and crashes on it).
            tree::index(v, n, what)?;
            let c = at
                .get(&(treeids[i] as i32, v as i32))
                .copied()
                .ok_or_else(|| malformed(format!("{}: no such node", what())))?;
            if c == i {
                return Err(malformed(format!("{}: a node is its own child", what())));
            }
            Ok(c)
        };
        src.push(Src::Split {
            feature: tree::feature(featureids[i], || format!("nodes_featureids[{i}]"))?,
            test,
            tracks_true,
            yes: child(trueids[i], "true node")?,
            no: child(falseids[i], "false node")?,
        });
    }
    let mut seen = vec![false; n];
    let mut trees = Vec::with_capacity(roots.len());
    let mut empty = Vec::with_capacity(roots.len());
    for (t, &r) in roots.iter().enumerate() {
        let (tree, e) = tree::build(&mut src, r, &mut seen, t)?;
        trees.push(tree);
        empty.push(e);
    }
    let base = values(&a, acc, "base_values")?;
    let post = post_transform(op, a.string("post_transform")?)?;
    // ONNX Runtime's has_score: class c gets a score in every row when some tree gives
    // every leaf a weight for it.
    let cover: Vec<bool> = if classifier {
        (0..k as u32)
            .map(|c| {
                trees
                    .iter()
                    .zip(&empty)
                    .any(|(t, &e)| !e && tree::covers(t, c))
            })
            .collect()
    } else {
        Vec::new()
    };
    let covered = |c: u32| cover.get(c as usize) == Some(&true);
    let n_trees = trees.len();
    let mut e = Ensemble {
        num_features: 1,
        outputs: 1,
        trees,
        base: Vec::new(),
        base_placement: BasePlacement::AfterSum,
        aggregation: Aggregation::Sum,
        precision: if acc.double {
            Precision::F64
        } else {
            Precision::F32
        },
        zero_snap: false,
        transform: Transform::Identity,
        output_cast_f32: true,
        output: OutputKind::Value,
    };
    if !classifier {
        if post != Post::None {
            return Err(unsupported(format!(
                "{op}: post_transform {post:?} on one target (ONNX Runtime ignores it, other \
                 runtimes apply it); export with post_transform NONE"
            )));
        }
        e.aggregation = match a.string("aggregate_function")?.unwrap_or("SUM") {
            "SUM" => Aggregation::Sum,
            "AVERAGE" => Aggregation::Mean {
                divisor: n_trees as f64,
            },
            f @ ("MIN" | "MAX") => {
                return Err(unsupported(format!(
                    "{op}: aggregate_function {f} is not served (SUM or AVERAGE)"
                )));
            }
            f => {
                return Err(malformed(format!(
                    "{op}: aggregate_function '{f}' is unknown"
                )));
            }
        };
        if base.len() > 1 {
            return Err(malformed(format!(
                "{op}: {} base values for one target",
                base.len()
            )));
        }
        e.base = base;
    } else if k == 2 {
        let ids: HashSet<i64> = w_ids.iter().copied().collect();
        if ids.len() != 1 || !ids.contains(&0) || base.len() > 1 {
            let mut ids: Vec<i64> = ids.into_iter().collect();
            ids.sort_unstable();
            return Err(unsupported(format!(
                "{op}: two classes with class_ids {ids:?} and {} base values: ONNX Runtime's \
                 output for this pattern is not served (one class id 0 and at most one base \
                 value are)",
                base.len()
            )));
        }
        if !covered(0) {
            return Err(unsupported(format!(
                "{op}: some rows would get no score for class 0 (no tree gives every leaf a \
                 weight for it)"
            )));
        }
        e.base = base;
        if weights.iter().any(|&w| w < 0.0) {
            e.output = OutputKind::BinaryLogisticPair;
            if post == Post::Logistic {
                e.transform = Transform::OrtLogistic;
            }
        } else {
            // ONNX Runtime writes [1 - s, s] whatever the post_transform.
            e.output = OutputKind::OrtBinaryOneMinus;
        }
    } else {
        if !base.is_empty() && base.len() != k {
            return Err(malformed(format!(
                "{op}: {} base values for {k} classes",
                base.len()
            )));
        }
        if base.is_empty()
            && let Some(c) = (0..k as u32).find(|&c| !covered(c))
        {
            return Err(unsupported(format!(
                "{op}: some rows would get no score for class {c} (no tree gives every leaf a \
                 weight for it, and there are no base values)"
            )));
        }
        e.outputs = k as u32;
        e.base = base;
        e.output = OutputKind::ArgmaxRaw;
        e.transform = match post {
            Post::None => Transform::Identity,
            Post::Logistic => Transform::OrtLogistic,
            Post::Softmax => Transform::OrtSoftmax,
            // For double scores ORT's SOFTMAX_ZERO divides in double: not reproduced.
            Post::SoftmaxZero if acc.double => {
                return Err(unsupported(format!(
                    "{op}: post_transform SOFTMAX_ZERO over a DOUBLE input is not served"
                )));
            }
            Post::SoftmaxZero => Transform::OrtSoftmaxZero,
        };
    }
    e.num_features = super::num_features(acc, &e.trees);
    Ok(Translated {
        ensemble: e,
        classes,
        missing_aware,
    })
}
