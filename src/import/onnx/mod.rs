//! ONNX tree models (scikit-learn through skl2onnx, onnxmltools) read without any ONNX
//! runtime: a bounded wire pre-scan ([`prescan`]), `prost` messages for the subset of
//! `onnx-ml.proto` a tree model needs ([`proto`]), graph acceptance ([`graph`]), and the
//! translation into an [`Ensemble`] with ONNX Runtime's semantics ([`translate`] for
//! `TreeEnsembleClassifier`/`TreeEnsembleRegressor`, [`v5`] for `TreeEnsemble`).
//! See `docs/design/import.md` §2.4.

pub mod graph;
pub mod prescan;
pub mod proto;
pub mod translate;
pub mod tree;
pub mod v5;

use super::{ImportError, Imported, ImportedTask};
use crate::model::ensemble::{Ensemble, EnsembleLimits, Node, Tree};
use graph::{Accepted, OpKind};
use prost::Message;

const FORMAT: &str = "ONNX";

/// A malformed-file error.
pub(crate) fn malformed(what: impl Into<String>) -> ImportError {
    ImportError::malformed(FORMAT, what)
}

/// A well-formed model treeserve does not serve.
pub(crate) fn unsupported(what: impl Into<String>) -> ImportError {
    ImportError::Unsupported(format!("ONNX model: {}", what.into()))
}

/// What a translation produces.
pub struct Translated {
    /// The trees and their arithmetic.
    pub ensemble: Ensemble,
    /// Class labels (classifiers).
    pub classes: Option<Vec<String>>,
    /// Whether any node has `missing_value_tracks_true = 1`.
    pub missing_aware: bool,
}

/// Reads an ONNX model file holding one tree ensemble.
pub fn read(bytes: &[u8]) -> Result<Imported, ImportError> {
    prescan::check(bytes)?;
    let model = proto::ModelProto::decode(bytes)
        .map_err(|e| malformed(format!("not a protobuf ModelProto: {e}")))?;
    let acc = graph::accept(&model)?;
    let t = match acc.kind {
        OpKind::Classifier | OpKind::Regressor => translate::v3(&acc)?,
        OpKind::TreeEnsemble => v5::v5(&acc)?,
    };
    t.ensemble.validate(&EnsembleLimits::default())?;
    let producer = match (
        model.producer_name.as_str(),
        model.producer_version.as_str(),
    ) {
        ("", _) => "unknown producer".to_string(),
        (p, "") => p.to_string(),
        (p, v) => format!("{p} {v}"),
    };
    Ok(Imported {
        task: if t.classes.is_some() {
            ImportedTask::Classification
        } else {
            ImportedTask::Regression
        },
        ensemble: t.ensemble,
        features: None,
        classes: t.classes,
        missing_aware: t.missing_aware,
        format: "onnx",
        source: format!(
            "{producer} (ONNX ir {}, ai.onnx.ml {})",
            model.ir_version, acc.ml_opset
        ),
        objective: acc.node.op_type.clone(),
        warnings: Vec::new(),
    })
}

/// Features: the input's declared `F`, else one past the largest feature used.
fn num_features(acc: &Accepted, trees: &[Tree]) -> u32 {
    acc.num_features.unwrap_or_else(|| {
        trees
            .iter()
            .flat_map(|t| &t.nodes)
            .filter_map(|n| match n {
                Node::Split(s) => Some(s.feature + 1),
                Node::Leaf(_) => None,
            })
            .max()
            .unwrap_or(1)
    })
}

fn check_tensor(t: &proto::TensorProto, name: &str, count: usize) -> Result<(), ImportError> {
    if t.data_location == 1 || !t.external_data.is_empty() {
        return Err(unsupported(format!(
            "attribute '{name}' keeps its data in an external file; save the model with \
             its data inside (onnx.save_model(m, path, save_as_external_data=False))"
        )));
    }
    let declared = t.dims.iter().try_fold(
        1i64,
        |acc, &d| if d < 0 { None } else { acc.checked_mul(d) },
    );
    if declared != i64::try_from(count).ok() {
        return Err(malformed(format!(
            "tensor '{name}': dims {:?} do not match its {count} values",
            t.dims
        )));
    }
    Ok(())
}

/// A FLOAT or DOUBLE tensor's values; the type must be the model's (DOUBLE iff `double`).
pub(crate) fn tensor_values(
    t: &proto::TensorProto,
    name: &str,
    double: bool,
) -> Result<Vec<f64>, ImportError> {
    let want = if double { 11 } else { 1 };
    if t.data_type != want {
        let ty = |t: i32| match t {
            1 => "FLOAT",
            11 => "DOUBLE",
            _ => "another type",
        };
        return Err(unsupported(format!(
            "tensor '{name}' has data type {} ({}) but the input is {}: ONNX Runtime reads it \
             as the input's type; convert with the matching input type",
            t.data_type,
            ty(t.data_type),
            ty(want)
        )));
    }
    let v: Vec<f64> = if !t.raw_data.is_empty() {
        let size = if double { 8 } else { 4 };
        if !t.raw_data.len().is_multiple_of(size) {
            return Err(malformed(format!(
                "tensor '{name}': raw_data of {} bytes is not a whole number of values",
                t.raw_data.len()
            )));
        }
        let chunks = t.raw_data.chunks_exact(size);
        if double {
            chunks
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect()
        } else {
            chunks
                .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap_or([0; 4]))))
                .collect()
        }
    } else if double {
        t.double_data.clone()
    } else {
        t.float_data.iter().map(|&f| f64::from(f)).collect()
    };
    check_tensor(t, name, v.len())?;
    Ok(v)
}

/// A UINT8 tensor's values (`raw_data` bytes, or one `int32_data` value each).
pub(crate) fn tensor_u8(t: &proto::TensorProto, name: &str) -> Result<Vec<u8>, ImportError> {
    if t.data_type != 2 {
        return Err(malformed(format!(
            "tensor '{name}' has data type {} (expected UINT8, 2)",
            t.data_type
        )));
    }
    let v = if !t.raw_data.is_empty() {
        t.raw_data.clone()
    } else {
        t.int32_data
            .iter()
            .map(|&i| u8::try_from(i))
            .collect::<Result<_, _>>()
            .map_err(|_| malformed(format!("tensor '{name}': a value outside 0..=255")))?
    };
    check_tensor(t, name, v.len())?;
    Ok(v)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_refusals;
