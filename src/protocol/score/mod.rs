//! The Azure ML `/score` contract.
//!
//! Request: one object `{"SepalLengthCm": 6.6, ...}` or an array of them (a batch).
//! Response: `{"output": {"predicted_species": "Iris-versicolor"}}`, or `{"output": [...]}`
//! for a batch, in order; with probabilities, each output also has
//! `"probabilities": {"Iris-setosa": 0.0, ...}`.
//!
//! Decoding streams the JSON straight into a flat `f64` buffer in feature order: no
//! intermediate map, no per-key allocation.
//!
//! Here: the `decode` entry and the response `Encoder`; the serde-free fast path is in
//! `fast`, the full serde decoder (and every error message) in `serde_decode`.

mod fast;
mod serde_decode;
#[cfg(test)]
mod tests;

use std::io::Write;

use serde_decode::decode_serde;

use super::InputError;
use crate::model::Model;

/// Shape of a decoded request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Number of rows written to the buffer.
    pub rows: usize,
    /// Whether the body was an array (the response is then an array too).
    pub batch: bool,
}

/// Decodes a `/score` body into `out` (cleared first): `rows × features.len()` values,
/// row-major, in the order of `features`. Every feature must be present exactly once, with
/// a finite number; unknown keys are refused.
///
/// ```
/// use treeserve::protocol::{score, InputErrorKind};
/// let features = ["a".to_string(), "b".to_string()];
/// let mut out = Vec::new();
/// let d = score::decode(br#"[{"b": 2, "a": 1}, {"a": 3, "b": 4.5}]"#, &features, 100, &mut out).unwrap();
/// assert_eq!((d.rows, d.batch), (2, true));
/// assert_eq!(out, [1.0, 2.0, 3.0, 4.5]);
/// let err = score::decode(br#"{"a": 1}"#, &features, 100, &mut out).unwrap_err();
/// assert_eq!(err.kind, InputErrorKind::MissingFeature);
/// assert!(err.message.contains("\"b\""));
/// ```
pub fn decode(
    body: &[u8],
    features: &[String],
    max_rows: usize,
    out: &mut Vec<f64>,
) -> Result<Decoded, InputError> {
    decode_with(body, features, max_rows, false, out)
}

/// As [`decode`]; with `null_is_missing` (a model that routes missing values), a `null`
/// value is a missing value (NaN). An absent feature is an error either way.
pub fn decode_with(
    body: &[u8],
    features: &[String],
    max_rows: usize,
    null_is_missing: bool,
    out: &mut Vec<f64>,
) -> Result<Decoded, InputError> {
    out.clear();
    if let Some(d) = fast::decode(body, features, max_rows, out) {
        return Ok(d);
    }
    decode_serde(body, features, max_rows, null_is_missing, out)
}

/// Response encoding for one model, precomputed at load: the single-row responses are
/// ready-made bytes, so answering one row copies nothing.
#[derive(Debug, Clone)]
pub struct Encoder {
    key: String,
    labels: Vec<String>,
    single: Vec<Box<[u8]>>,
    regression: bool,
}

impl Encoder {
    /// Precomputes the encoding for `model`.
    pub fn new(model: &Model) -> Self {
        let key = json_string(&format!(
            "predicted_{}",
            model.manifest().target.to_lowercase()
        ));
        let labels: Vec<String> = model.classes().iter().map(|c| json_string(c)).collect();
        let single = labels
            .iter()
            .map(|l| {
                format!("{{\"output\":{{{key}:{l}}}}}")
                    .into_bytes()
                    .into_boxed_slice()
            })
            .collect();
        Self {
            key,
            labels,
            single,
            regression: model.is_regression(),
        }
    }

    /// The response key, e.g. `predicted_species`.
    pub fn output_key(&self) -> String {
        serde_json::from_str(&self.key).expect("key is JSON")
    }

    /// The response for one row predicted as `class`, without probabilities.
    pub fn single(&self, class: usize) -> &[u8] {
        &self.single[class]
    }

    /// Encodes any response: `classes[i]` for each row, `proba` (`rows × classes`) if asked
    /// for, as an array when `batch`.
    /// A regressor's `proba` holds each row's value, written as the prediction.
    pub fn encode(&self, classes: &[usize], proba: Option<&[f64]>, batch: bool) -> Vec<u8> {
        if self.regression {
            return self.encode_values(proba.unwrap_or_default(), batch);
        }
        if !batch && proba.is_none() && classes.len() == 1 {
            return self.single[classes[0]].to_vec();
        }
        let k = self.labels.len();
        let per_row = self.key.len() + 24 + proba.map_or(0, |_| k * 40);
        let mut out = Vec::with_capacity(16 + classes.len() * per_row);
        out.extend_from_slice(b"{\"output\":");
        if batch {
            out.push(b'[');
        }
        for (i, &c) in classes.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'{');
            out.extend_from_slice(self.key.as_bytes());
            out.push(b':');
            out.extend_from_slice(self.labels[c].as_bytes());
            if let Some(p) = proba {
                out.extend_from_slice(b",\"probabilities\":{");
                for (j, v) in p[i * k..(i + 1) * k].iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(self.labels[j].as_bytes());
                    let _ = write!(out, ":{v}");
                }
                out.push(b'}');
            }
            out.push(b'}');
        }
        if batch {
            out.push(b']');
        }
        out.push(b'}');
        out
    }
}

impl Encoder {
    fn encode_values(&self, values: &[f64], batch: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + values.len() * (self.key.len() + 28));
        out.extend_from_slice(b"{\"output\":");
        if batch {
            out.push(b'[');
        }
        let mut buf = ryu::Buffer::new();
        for (i, &v) in values.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'{');
            out.extend_from_slice(self.key.as_bytes());
            out.push(b':');
            if v.is_finite() {
                out.extend_from_slice(buf.format_finite(v).as_bytes());
            } else {
                // JSON has no NaN or infinity (an exp transform can overflow).
                out.extend_from_slice(b"null");
            }
            out.push(b'}');
        }
        if batch {
            out.push(b']');
        }
        out.push(b'}');
        out
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}
