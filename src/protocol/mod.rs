//! Wire formats, free of HTTP: request decoding and response encoding for each protocol.
//! The HTTP layer is a thin adapter over these.

pub(crate) mod cursor;
pub mod score;
pub mod v2;

/// What kind of input error (the `error_type` of the JSON error body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputErrorKind {
    /// Not JSON.
    MalformedJson,
    /// JSON, but not the shape the route takes.
    InvalidBody,
    /// A row lacks a feature.
    MissingFeature,
    /// A row names a feature the model does not have.
    UnknownFeature,
    /// A row names a feature twice.
    DuplicateFeature,
    /// A value is not a number.
    InvalidValue,
    /// A value is NaN, infinite or out of range.
    NonFiniteValue,
    /// A batch with no rows.
    EmptyBatch,
    /// A batch over the row limit.
    TooManyRows,
    /// A tensor's shape does not fit the model or its data.
    InvalidShape,
    /// A tensor's datatype is not accepted.
    InvalidDatatype,
    /// An output the model does not have.
    UnknownOutput,
}

impl InputErrorKind {
    /// The snake_case name used as `error_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            InputErrorKind::MalformedJson => "malformed_json",
            InputErrorKind::InvalidBody => "invalid_body",
            InputErrorKind::MissingFeature => "missing_feature",
            InputErrorKind::UnknownFeature => "unknown_feature",
            InputErrorKind::DuplicateFeature => "duplicate_feature",
            InputErrorKind::InvalidValue => "invalid_value",
            InputErrorKind::NonFiniteValue => "non_finite_value",
            InputErrorKind::EmptyBatch => "empty_batch",
            InputErrorKind::TooManyRows => "too_many_rows",
            InputErrorKind::InvalidShape => "invalid_shape",
            InputErrorKind::InvalidDatatype => "invalid_datatype",
            InputErrorKind::UnknownOutput => "unknown_output",
        }
    }
}

/// A request body the model cannot score, with a message naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InputError {
    /// The kind.
    pub kind: InputErrorKind,
    /// What is wrong, for people.
    pub message: String,
}

impl InputError {
    /// A new input error.
    pub fn new(kind: InputErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// Whether serde_json refused a number outside the `f64` range (`1e400`): a
/// `non_finite_value`, not malformed JSON.
fn is_out_of_range(e: &serde_json::Error) -> bool {
    e.to_string().starts_with("number out of range")
}
