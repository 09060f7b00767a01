//! XGBoost models saved with `save_model` as JSON (`.json`) or UBJSON (`.ubj`, the default
//! since 2.1 and MLflow's format), `gbtree` booster only (see `docs/design/import.md` §2.1,
//! §2.2). Both files are read by bounded, iterative readers of our own into one document
//! form ([`value::Value`]), then translated into an [`Ensemble`](crate::model::ensemble::Ensemble)
//! with XGBoost's f32 arithmetic.

pub mod json;
mod translate;
mod tree;
pub mod ubjson;
pub mod value;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_hostile;

use super::{ImportError, Imported};
use crate::model::ensemble::EnsembleLimits;
use value::Value;

/// Reads an XGBoost model file, JSON or UBJSON (told apart by the byte after the opening
/// `{`: a quote or `}` in JSON, a length marker in UBJSON).
pub fn read(bytes: &[u8]) -> Result<Imported, ImportError> {
    let ubj = is_ubjson(bytes);
    let (label, flavour) = if ubj {
        ("XGBoost UBJSON", "UBJSON")
    } else {
        ("XGBoost JSON", "JSON")
    };
    let doc = if ubj {
        ubjson::parse(bytes)
    } else {
        json::parse(bytes)
    }
    .map_err(|e| ImportError::malformed(label, e))?;
    let imported = translate::translate(&doc, flavour).map_err(|f| match f {
        Fail::Malformed(m) => ImportError::malformed(label, m),
        Fail::Unsupported(m) => ImportError::Unsupported(m),
    })?;
    imported.ensemble.validate(&EnsembleLimits::default())?;
    Ok(imported)
}

/// Whether the file is UBJSON: `{` followed by an integer marker (a key's length).
fn is_ubjson(bytes: &[u8]) -> bool {
    bytes.first() == Some(&b'{') && matches!(bytes.get(1), Some(b'i' | b'U' | b'I' | b'l' | b'L'))
}

/// Why translation failed.
#[derive(Debug)]
enum Fail {
    /// The document is not a valid XGBoost model: what and where.
    Malformed(String),
    /// A valid model treeserve does not serve, with what to do.
    Unsupported(String),
}

impl From<String> for Fail {
    fn from(m: String) -> Self {
        Fail::Malformed(m)
    }
}

/// An integer parameter: XGBoost writes them as strings (`"num_nodes": "7"`); plain
/// integers are accepted too.
fn int_param(v: &Value) -> Option<i64> {
    match v {
        Value::Str(s) => s.trim().parse().ok(),
        Value::Int(i) => Some(*i),
        _ => None,
    }
}
