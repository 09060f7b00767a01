//! `TreeEnsemble` (ai.onnx.ml opset 5) into an [`Ensemble`], as ONNX Runtime runs it
//! (`tree_ensemble_attribute.h`: converted to the opset-3 form, one target): `tree_roots`
//! index `nodes_*`; a child indexes `leaf_*` when its `*leafs` flag is set; a root whose
//! two children are the same leaf is the one-leaf tree of leaf `tree_roots[t]`.

use super::graph::{Accepted, Attrs};
use super::tree::{self, Src};
use super::{Translated, malformed, tensor_values, unsupported};
use crate::import::ImportError;
use crate::model::ensemble::{
    Aggregation, BasePlacement, Ensemble, OutputKind, Precision, Test, Transform,
};

fn tensor(a: &Attrs, acc: &Accepted, name: &str) -> Result<Vec<f64>, ImportError> {
    match a.tensor(name)? {
        Some(t) => tensor_values(t, name, acc.double),
        None => Ok(Vec::new()),
    }
}

/// Translates a `TreeEnsemble` node.
pub fn v5(acc: &Accepted) -> Result<Translated, ImportError> {
    let op = "TreeEnsemble";
    let a = Attrs::new(acc.node, op)?;
    let roots = a.ints("tree_roots")?;
    let featureids = a.ints("nodes_featureids")?;
    let n = featureids.len();
    let trueids = a.ints("nodes_truenodeids")?;
    let falseids = a.ints("nodes_falsenodeids")?;
    let trueleafs = a.ints("nodes_trueleafs")?;
    let falseleafs = a.ints("nodes_falseleafs")?;
    let tracks = a.ints("nodes_missing_value_tracks_true")?;
    let splits = tensor(&a, acc, "nodes_splits")?;
    let modes = match a.tensor("nodes_modes")? {
        Some(t) => super::tensor_u8(t, "nodes_modes")?,
        None => Vec::new(),
    };
    let targets = a.ints("leaf_targetids")?;
    let weights = tensor(&a, acc, "leaf_weights")?;
    if n == 0 || roots.is_empty() {
        return Err(malformed(format!("{op}: no nodes or no tree_roots")));
    }
    for (name, len) in [
        ("nodes_truenodeids", trueids.len()),
        ("nodes_falsenodeids", falseids.len()),
        ("nodes_trueleafs", trueleafs.len()),
        ("nodes_falseleafs", falseleafs.len()),
        ("nodes_splits", splits.len()),
        ("nodes_modes", modes.len()),
    ] {
        super::translate::same_len(op, n, len, name)?;
    }
    if !tracks.is_empty() {
        super::translate::same_len(op, n, tracks.len(), "nodes_missing_value_tracks_true")?;
    }
    let m = targets.len();
    if weights.len() != m {
        return Err(malformed(format!(
            "{op}: 'leaf_weights' has {} values for {m} 'leaf_targetids'",
            weights.len()
        )));
    }
    super::translate::one_target(&a, op)?;
    match a.int("post_transform")?.unwrap_or(0) {
        0 => {}
        p @ 1..=4 => {
            return Err(unsupported(format!(
                "{op}: post_transform {p} on one target (ONNX Runtime ignores it, other \
                 runtimes apply it); export with post_transform 0 (NONE)"
            )));
        }
        p => return Err(malformed(format!("{op}: post_transform {p} is unknown"))),
    }
    let aggregation = match a.int("aggregate_function")?.unwrap_or(1) {
        0 => Aggregation::Mean {
            divisor: roots.len() as f64,
        },
        1 => Aggregation::Sum,
        f @ (2 | 3) => {
            return Err(unsupported(format!(
                "{op}: aggregate_function {f} (MIN/MAX) is not served (SUM or AVERAGE)"
            )));
        }
        f => {
            return Err(malformed(format!(
                "{op}: aggregate_function {f} is unknown"
            )));
        }
    };
    let mut src = Vec::with_capacity(n + m);
    let mut missing_aware = false;
    for i in 0..n {
        let t = splits[i];
        let test = match modes[i] {
            0 => Test::Le(t),
            1 => Test::Lt(t),
            2 => Test::Ge(t),
            3 => Test::Gt(t),
            4..=6 => {
                return Err(unsupported(format!(
                    "{op}: nodes_modes[{i}] = {} (EQ, NEQ or MEMBER): equality and \
                     categorical splits are not served",
                    modes[i]
                )));
            }
            x => {
                return Err(malformed(format!(
                    "{op}: nodes_modes[{i}] = {x} is unknown"
                )));
            }
        };
        let child = |id: i64, leaf: i64, name: &str| {
            if leaf != 0 {
                tree::index(id, m, || format!("{op}: node {i} {name} leaf")).map(|l| n + l)
            } else {
                tree::index(id, n, || format!("{op}: node {i} {name} node"))
            }
        };
        let tracks_true = tracks.get(i) == Some(&1);
        missing_aware |= tracks_true;
        src.push(Src::Split {
            feature: tree::feature(featureids[i], || format!("nodes_featureids[{i}]"))?,
            test,
            tracks_true,
            yes: child(trueids[i], trueleafs[i], "true")?,
            no: child(falseids[i], falseleafs[i], "false")?,
        });
    }
    for (i, (&t, &w)) in targets.iter().zip(&weights).enumerate() {
        tree::index(t, 1, || format!("{op}: leaf_targetids[{i}]"))?;
        src.push(Src::Leaf(vec![(0, w)]));
    }
    let mut seen = vec![false; n + m];
    let mut trees = Vec::with_capacity(roots.len());
    for (t, &r) in roots.iter().enumerate() {
        let r = tree::index(r, n, || format!("{op}: tree_roots[{t}]"))?;
        let one_leaf = trueids[r] == falseids[r] && trueleafs[r] != 0 && falseleafs[r] != 0;
        let root = if one_leaf {
            // As ONNX Runtime and onnx.reference do: the leaf at index tree_roots[t].
            n + tree::index(r as i64, m, || format!("{op}: one-leaf tree {t}: leaf"))?
        } else {
            r
        };
        trees.push(tree::build(&mut src, root, &mut seen, t)?.0);
    }
    let mut e = Ensemble {
        num_features: 1,
        outputs: 1,
        trees,
        base: Vec::new(),
        base_placement: BasePlacement::AfterSum,
        aggregation,
        precision: if acc.double {
            Precision::F64
        } else {
            Precision::F32
        },
        zero_snap: false,
        transform: Transform::Identity,
        // Y has the input's type.
        output_cast_f32: false,
        output: OutputKind::Value,
    };
    e.num_features = super::num_features(acc, &e.trees);
    Ok(Translated {
        ensemble: e,
        classes: None,
        missing_aware,
    })
}
