//! The Open Inference Protocol (KServe V2) REST inference body, with Triton's binary tensor
//! data extension: request decoding into row-major `f64` values, response encoding.
//!
//! A request carries one input tensor of shape `[N, F]` (or `[F]` for one row), datatype
//! `FP32`, `FP64` or an integer type, its data flat row-major or nested, as JSON or (with
//! `parameters.binary_data_size`) as little-endian bytes after the JSON header. The outputs
//! are the predicted label (`BYTES`, `[N]`) and the class probabilities (`FP32`, `[N, C]`).
//!
//! Here: the public types, constants and the `decode` entry. The serde-free fast path is in
//! `fast`, the full serde/binary decoder in `serde_decode` (with the datatype checks in
//! `datatype`), the response `Encoder` in `encode`.

mod datatype;
mod encode;
mod fast;
pub mod grpc;
pub mod proto;
mod serde_decode;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

pub use encode::{Encoded, Encoder};
use serde_decode::decode_serde;

use super::{InputError, InputErrorKind as K};

/// The label output's name.
pub const LABEL: &str = "label";
/// The probabilities output's name.
pub const PROBABILITIES: &str = "probabilities";
/// A regressor's output (FP64 values); a request may name it instead of `label`.
pub const PREDICT: &str = "predict";
/// The input tensor's advertised name (any name is accepted).
pub const INPUT: &str = "input";
/// Input datatypes accepted.
pub const INPUT_DATATYPES: [&str; 10] = [
    "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64",
];

/// An output a request can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Predicted class labels (a regressor's values, named `predict`).
    Label,
    /// Class probabilities.
    Probabilities,
}

/// One requested output and whether its data goes in the binary section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requested {
    /// Which output.
    pub output: Output,
    /// Data as bytes after the JSON header (Triton's binary tensor data extension).
    pub binary: bool,
}

/// The outputs to answer with, in order (each at most once).
#[derive(Debug, Clone, Copy)]
pub struct Outputs {
    list: [Requested; 2],
    len: usize,
}

impl Outputs {
    fn push(&mut self, r: Requested) {
        self.list[self.len] = r;
        self.len += 1;
    }

    /// The outputs, in order.
    pub fn as_slice(&self) -> &[Requested] {
        &self.list[..self.len]
    }

    /// Whether `output` is asked for.
    pub fn has(&self, output: Output) -> bool {
        self.as_slice().iter().any(|r| r.output == output)
    }

    /// Drops `output` from the list.
    pub fn remove(&mut self, output: Output) {
        if let Some(i) = self.as_slice().iter().position(|r| r.output == output) {
            self.list.copy_within(i + 1..self.len, i);
            self.len -= 1;
        }
    }
}

/// A decoded inference request, borrowing the body.
#[derive(Debug)]
pub struct Decoded<'a> {
    /// The request id, echoed.
    pub id: Option<Cow<'a, str>>,
    /// Rows.
    pub rows: usize,
    /// The outputs to answer with.
    pub outputs: Outputs,
}

fn bad(kind: K, msg: impl Into<String>) -> InputError {
    InputError::new(kind, msg)
}

/// The one input tensor a request may carry.
fn one_input<T>(inputs: &[T]) -> Result<&T, InputError> {
    match inputs {
        [input] => Ok(input),
        _ => Err(bad(
            K::InvalidBody,
            format!("expected exactly one input tensor, got {}", inputs.len()),
        )),
    }
}

/// The rows of the one input tensor, `name`, of `datatype` and `shape`, for a model of
/// `features` features: an accepted datatype, shape `[N, F]` or `[F]`, 1 to `max_rows` rows.
fn input_rows(
    name: &str,
    datatype: &str,
    shape: &[i64],
    features: usize,
    max_rows: usize,
) -> Result<usize, InputError> {
    if !INPUT_DATATYPES.contains(&datatype) {
        return Err(bad(
            K::InvalidDatatype,
            format!(
                "input {name:?}: datatype {datatype:?} is not accepted; use one of {}",
                INPUT_DATATYPES.join(", ")
            ),
        ));
    }
    let rows = match shape {
        [f] if *f == features as i64 => 1,
        [n, f] if *f == features as i64 && *n >= 0 => *n as usize,
        _ => {
            return Err(bad(
                K::InvalidShape,
                format!(
                    "input {name:?}: shape {shape:?} does not fit the model: use [N, {features}] or [{features}]"
                ),
            ));
        }
    };
    if rows == 0 {
        return Err(bad(K::EmptyBatch, format!("input {name:?} has no rows")));
    }
    if rows > max_rows {
        return Err(bad(
            K::TooManyRows,
            format!("input {name:?} has {rows} rows; the limit is {max_rows}"),
        ));
    }
    Ok(rows)
}

impl Outputs {
    /// No outputs yet.
    fn none() -> Self {
        let label = Requested {
            output: Output::Label,
            binary: false,
        };
        Outputs {
            list: [label; 2],
            len: 0,
        }
    }

    /// Both outputs, label first.
    fn all(binary: bool) -> Self {
        let mut o = Outputs::none();
        o.push(Requested {
            output: Output::Label,
            binary,
        });
        o.push(Requested {
            output: Output::Probabilities,
            binary,
        });
        o
    }

    /// Adds the output a request names; an unknown name or one asked twice is an error.
    fn add_named(&mut self, name: &str, binary: bool) -> Result<(), InputError> {
        let output = match name {
            LABEL | PREDICT => Output::Label,
            PROBABILITIES => Output::Probabilities,
            other => {
                return Err(bad(
                    K::UnknownOutput,
                    format!(
                        "unknown output {other:?}; a classifier has {LABEL:?} and {PROBABILITIES:?}, a regressor {PREDICT:?}"
                    ),
                ));
            }
        };
        if self.as_slice().iter().any(|r| r.output == output) {
            return Err(bad(
                K::InvalidBody,
                format!("output {name:?} is requested twice"),
            ));
        }
        self.push(Requested { output, binary });
        Ok(())
    }
}

/// Decodes a request body for a model reading `features` features: the JSON header
/// (`json`), and `binary`, the bytes after it (empty without the binary extension). The
/// values go into `out`, row-major.
pub fn decode<'a>(
    json: &'a [u8],
    binary: &[u8],
    features: usize,
    max_rows: usize,
    out: &mut Vec<f64>,
) -> Result<Decoded<'a>, InputError> {
    decode_with(json, binary, features, max_rows, false, out)
}

/// As [`decode`]; with `missing_aware` (a model that routes missing values), a `null` in
/// the data, or NaN in FP32/FP64 binary data, is a missing value.
pub fn decode_with<'a>(
    json: &'a [u8],
    binary: &[u8],
    features: usize,
    max_rows: usize,
    missing_aware: bool,
    out: &mut Vec<f64>,
) -> Result<Decoded<'a>, InputError> {
    if binary.is_empty()
        && let Some(d) = fast::decode(json, features, max_rows, out)
    {
        return Ok(d);
    }
    decode_serde(json, binary, features, max_rows, missing_aware, out)
}
