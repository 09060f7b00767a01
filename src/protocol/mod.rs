//! Wire formats, free of HTTP: request decoding and response encoding for each protocol.
//! The HTTP layer is a thin adapter over these.

pub(crate) mod cursor;
pub mod feedback;
pub mod score;
pub mod tabular;
pub mod v2;

use crate::error_type::ErrorType;

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
    /// The error type answered (the `error_type` of the JSON error body).
    pub fn error_type(self) -> ErrorType {
        match self {
            InputErrorKind::MalformedJson => ErrorType::MalformedJson,
            InputErrorKind::InvalidBody => ErrorType::InvalidBody,
            InputErrorKind::MissingFeature => ErrorType::MissingFeature,
            InputErrorKind::UnknownFeature => ErrorType::UnknownFeature,
            InputErrorKind::DuplicateFeature => ErrorType::DuplicateFeature,
            InputErrorKind::InvalidValue => ErrorType::InvalidValue,
            InputErrorKind::NonFiniteValue => ErrorType::NonFiniteValue,
            InputErrorKind::EmptyBatch => ErrorType::EmptyBatch,
            InputErrorKind::TooManyRows => ErrorType::TooManyRows,
            InputErrorKind::InvalidShape => ErrorType::InvalidShape,
            InputErrorKind::InvalidDatatype => ErrorType::InvalidDatatype,
            InputErrorKind::UnknownOutput => ErrorType::UnknownOutput,
        }
    }

    /// The snake_case name used as `error_type`.
    pub fn as_str(self) -> &'static str {
        self.error_type().as_str()
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
