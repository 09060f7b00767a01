//! Readers of other frameworks' model files (XGBoost, LightGBM, ONNX), each translating
//! into treeserve's own [`Ensemble`]. No foreign type leaves this module: a reader returns
//! an [`Imported`], which the `import` command turns into a normal artifact.

pub mod build;
pub mod detect;
pub mod lightgbm;
pub mod onnx;
mod reference;
pub mod xgboost;

use crate::model::ensemble::{Ensemble, EnsembleError};

/// What the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportedTask {
    /// Class probabilities and a class.
    Classification,
    /// One number.
    Regression,
}

/// A model read from a foreign file, translated into treeserve's form.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The trees and their arithmetic.
    pub ensemble: Ensemble,
    /// What the model predicts.
    pub task: ImportedTask,
    /// Feature names the file carries (`None`: the file has none).
    pub features: Option<Vec<String>>,
    /// Class labels the file carries (`None`: the file has none; `0..K-1` or `--classes`).
    pub classes: Option<Vec<String>>,
    /// Whether the model routes missing values (then a `null` in a request means missing).
    pub missing_aware: bool,
    /// `xgboost`, `lightgbm`, `onnx`.
    pub format: &'static str,
    /// The file's flavour in words, e.g. `XGBoost 3.4.1 JSON` or `skl2onnx 1.20.0`.
    pub source: String,
    /// The objective or operator, e.g. `binary:logistic`, `TreeEnsembleClassifier`.
    pub objective: String,
    /// Things the user should know (e.g. a best iteration the file's trees go beyond).
    pub warnings: Vec<String>,
}

/// Why a model file could not be imported. Every message names the field or line.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file is malformed: `what` says where (field, line, byte offset).
    #[error("{format} model: {what}")]
    Malformed {
        /// `XGBoost JSON`, `LightGBM`, `ONNX`, ...
        format: &'static str,
        /// What is wrong and where.
        what: String,
    },
    /// A well-formed model that treeserve does not serve (e.g. a DART booster), with what
    /// to do instead.
    #[error("{0}")]
    Unsupported(String),
    /// The translated trees are invalid.
    #[error("the model's trees are invalid: {0}")]
    Invalid(#[from] EnsembleError),
    /// The reference or expected rows are unusable.
    #[error("{0}")]
    Reference(String),
    /// treeserve's outputs differ from the framework's.
    #[error("{0}")]
    Parity(String),
    /// The options do not fit the model.
    #[error("{0}")]
    Usage(String),
}

/// Reads a model file of `format` (see [`detect::detect`]).
pub fn read(format: detect::Format, bytes: &[u8]) -> Result<Imported, ImportError> {
    match format {
        detect::Format::Xgboost => xgboost::read(bytes),
        detect::Format::Lightgbm => lightgbm::read(bytes),
        detect::Format::Onnx => onnx::read(bytes),
    }
}

impl ImportError {
    /// A malformed-file error.
    pub fn malformed(format: &'static str, what: impl Into<String>) -> Self {
        ImportError::Malformed {
            format,
            what: what.into(),
        }
    }
}
