//! The one place that maps errors to HTTP status codes and the JSON error body
//! `{"error": "...", "error_type": "..."}`.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use crate::protocol::{InputError, InputErrorKind};

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body cannot be scored.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The body is over the size limit.
    #[error("the request body is larger than the limit of {limit} bytes")]
    BodyTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body did not arrive in time.
    #[error("the request body did not arrive within {}", humantime::format_duration(*.0))]
    BodyTimeout(std::time::Duration),
    /// The body could not be read.
    #[error("the request body could not be read: {0}")]
    BodyRead(String),
    /// The content type is not JSON.
    #[error("unsupported content type {0:?}: send application/json")]
    UnsupportedMediaType(String),
    /// A query parameter is wrong.
    #[error("{0}")]
    InvalidQuery(String),
    /// No such path.
    #[error("no route for {0}")]
    NotFound(String),
    /// Known path, wrong method.
    #[error("method {method} is not allowed here; allowed: {allow}")]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The methods allowed.
        allow: &'static str,
    },
    /// No validated model is loaded.
    #[error("no model is loaded yet")]
    NoModel,
    /// The server is shutting down.
    #[error("the server is shutting down")]
    Draining,
    /// Too much work in progress.
    #[error("the server is busy ({0}); retry later")]
    Overloaded(&'static str),
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
    /// The body is compressed.
    #[error("unsupported content encoding {0:?}: send the body uncompressed")]
    UnsupportedContentEncoding(String),
    /// A bug: the server failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Input(e) if e.kind == InputErrorKind::TooManyRows => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::Input(_) | ApiError::BodyRead(_) | ApiError::InvalidQuery(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NoModel
            | ApiError::ModelNotReady(_)
            | ApiError::Draining
            | ApiError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::ModelNotFound(_)
            | ApiError::VersionNotFound { .. }
            | ApiError::NoDefaultModel(_) => StatusCode::NOT_FOUND,
            ApiError::UnsupportedContentEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Internal(_) | ApiError::VersionUnavailable { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The `error_type`.
    pub fn error_type(&self) -> &'static str {
        match self {
            ApiError::Input(e) => e.kind.as_str(),
            ApiError::BodyTooLarge { .. } => "body_too_large",
            ApiError::BodyTimeout(_) => "body_timeout",
            ApiError::BodyRead(_) => "body_read_error",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::InvalidQuery(_) => "invalid_query",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::NoModel => "no_model",
            ApiError::Draining => "shutting_down",
            ApiError::Overloaded(_) => "overloaded",
            ApiError::ModelNotReady(_) => "model_not_ready",
            ApiError::ModelNotFound(_) => "model_not_found",
            ApiError::VersionNotFound { .. } => "version_not_found",
            ApiError::NoDefaultModel(_) => "no_default_model",
            ApiError::VersionUnavailable { .. } => "version_unavailable",
            ApiError::UnsupportedContentEncoding(_) => "unsupported_content_encoding",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The JSON error response.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let body = serde_json::json!({
            "error": self.to_string(),
            "error_type": self.error_type(),
        });
        let mut resp =
            super::json_response(self.status(), serde_json::to_vec(&body).expect("json"));
        match self {
            ApiError::MethodNotAllowed { allow, .. } => {
                resp.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::BodyTimeout(_) => {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            ApiError::NoModel
            | ApiError::ModelNotReady(_)
            | ApiError::Draining
            | ApiError::Overloaded(_) => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        resp
    }
}
