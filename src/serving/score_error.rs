//! Why a request could not be scored: one error for every protocol.

use crate::error_type::ErrorType;
use crate::protocol::InputError;

/// Why a request could not be scored (or its model not found).
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// The body cannot be scored.
    #[error(transparent)]
    Input(#[from] InputError),
    /// No validated model is loaded.
    #[error("no model is loaded yet")]
    NoModel,
    /// The model is served but no version of it is loaded yet.
    #[error("model {0:?} has no loaded version yet")]
    ModelNotReady(String),
    /// No such model is served.
    #[error("model {0:?} is not served here")]
    ModelNotFound(String),
    /// No such version of a served model.
    #[error("model {model:?} has no version {version:?}")]
    VersionNotFound {
        /// The model.
        model: String,
        /// The version asked for.
        version: String,
    },
    /// Several models are served and none is the default.
    #[error("several models are served ({}): POST to /models/{{model}}/score, or start the server with --model to pick the one /score answers with", .0.join(", "))]
    NoDefaultModel(Vec<String>),
    /// A pinned version exists but cannot be loaded.
    #[error("model {model:?} version {version} cannot be loaded: {reason}")]
    VersionUnavailable {
        /// The model.
        model: String,
        /// The version.
        version: u64,
        /// Why.
        reason: String,
    },
    /// Too much work in progress.
    #[error("the server is busy ({0}); retry later")]
    Overloaded(&'static str),
    /// Work handed to a blocking thread failed (a bug).
    #[error("internal error: {0} task failed: {1}")]
    TaskFailed(&'static str, String),
}

impl ScoreError {
    /// The error type answered.
    pub fn error_type(&self) -> ErrorType {
        match self {
            ScoreError::Input(e) => e.kind.error_type(),
            ScoreError::NoModel => ErrorType::NoModel,
            ScoreError::ModelNotReady(_) => ErrorType::ModelNotReady,
            ScoreError::ModelNotFound(_) => ErrorType::ModelNotFound,
            ScoreError::VersionNotFound { .. } => ErrorType::VersionNotFound,
            ScoreError::NoDefaultModel(_) => ErrorType::NoDefaultModel,
            ScoreError::VersionUnavailable { .. } => ErrorType::VersionUnavailable,
            ScoreError::Overloaded(_) => ErrorType::Overloaded,
            ScoreError::TaskFailed(..) => ErrorType::Internal,
        }
    }
}
