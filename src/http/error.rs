//! The one place that maps errors to HTTP status codes and the JSON error body
//! `{"error": "...", "error_type": "..."}`.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use crate::error_type::ErrorType;
use crate::protocol::{InputError, InputErrorKind};
use crate::serving::ScoreError;

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The scoring use case refused the request (or found no model).
    #[error(transparent)]
    Score(#[from] ScoreError),
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
    /// A content type the route does not take.
    #[error("unsupported content type {got:?}: send {}", .want.join(" or "))]
    UnsupportedMediaType {
        /// The content type sent.
        got: String,
        /// The types the route takes.
        want: &'static [&'static str],
    },
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
    /// The server is shutting down.
    #[error("the server is shutting down")]
    Draining,
    /// The body is compressed.
    #[error("unsupported content encoding {0:?}: send the body uncompressed")]
    UnsupportedContentEncoding(String),
    /// A transfer coding other than `chunked` (it would be ignored, the body misread).
    #[error(
        "unsupported transfer encoding {0:?}: send the body with Content-Length or chunked only"
    )]
    UnsupportedTransferEncoding(String),
    /// The request head is over `--max-header-bytes`.
    #[error("the request head is larger than the limit of {limit} bytes")]
    HeadTooLarge {
        /// The limit.
        limit: u64,
    },
    /// An HTTP/1.1 request without `Host` (RFC 9112, section 3.2).
    #[error("an HTTP/1.1 request must carry a Host header")]
    MissingHost,
    /// No API key, or one that is not accepted (`--api-keys-file`), or a `score` key on
    /// an `admin` route.
    #[error("{}", refusal_message(*.0))]
    Unauthorized(crate::auth::Refusal),
    /// A bug: the server failed.
    #[error("internal error: {0}")]
    Internal(String),
}

fn refusal_message(r: crate::auth::Refusal) -> &'static str {
    use crate::auth::Refusal;
    match r {
        Refusal::Missing => {
            "this server requires an API key: send Authorization: Bearer KEY (or x-api-key: KEY)"
        }
        Refusal::Wrong => "the API key is not accepted: check it, or ask for a current one",
        Refusal::Forbidden => {
            "this key may only score: reports, model details and metrics need an admin key"
        }
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        ApiError::Score(e.into())
    }
}

impl ApiError {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Score(e) => match e {
                ScoreError::Input(e) if e.kind == InputErrorKind::TooManyRows => {
                    StatusCode::PAYLOAD_TOO_LARGE
                }
                ScoreError::Input(_) => StatusCode::BAD_REQUEST,
                ScoreError::NoModel | ScoreError::ModelNotReady(_) | ScoreError::Overloaded(_) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                ScoreError::ModelNotFound(_)
                | ScoreError::VersionNotFound { .. }
                | ScoreError::NoDefaultModel(_) => StatusCode::NOT_FOUND,
                ScoreError::VersionUnavailable { .. } | ScoreError::TaskFailed(..) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            },
            ApiError::BodyRead(_) | ApiError::InvalidQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType { .. } | ApiError::UnsupportedContentEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::UnsupportedTransferEncoding(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::MissingHost => StatusCode::BAD_REQUEST,
            ApiError::HeadTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Draining => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unauthorized(crate::auth::Refusal::Forbidden) => StatusCode::FORBIDDEN,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The gRPC status code of the same error (V2 over gRPC).
    pub fn grpc_code(&self) -> tonic::Code {
        use tonic::Code;
        match self {
            ApiError::Score(ScoreError::NoDefaultModel(_)) => Code::InvalidArgument,
            ApiError::BodyTooLarge { .. } => Code::ResourceExhausted,
            ApiError::Unauthorized(crate::auth::Refusal::Forbidden) => Code::PermissionDenied,
            ApiError::Unauthorized(_) => Code::Unauthenticated,
            e => match e.status() {
                StatusCode::NOT_FOUND => Code::NotFound,
                StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED => Code::Unimplemented,
                StatusCode::REQUEST_TIMEOUT => Code::DeadlineExceeded,
                StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
                s if s.is_client_error() => Code::InvalidArgument,
                _ => Code::Internal,
            },
        }
    }

    /// The `error_type` (also the reason the rejection metric counts).
    pub fn error_type(&self) -> ErrorType {
        match self {
            ApiError::Score(e) => e.error_type(),
            ApiError::BodyTooLarge { .. } => ErrorType::BodyTooLarge,
            ApiError::BodyTimeout(_) => ErrorType::BodyTimeout,
            ApiError::BodyRead(_) => ErrorType::BodyReadError,
            ApiError::UnsupportedMediaType { .. } => ErrorType::UnsupportedMediaType,
            ApiError::InvalidQuery(_) => ErrorType::InvalidQuery,
            ApiError::NotFound(_) => ErrorType::NotFound,
            ApiError::MethodNotAllowed { .. } => ErrorType::MethodNotAllowed,
            ApiError::Draining => ErrorType::ShuttingDown,
            ApiError::UnsupportedContentEncoding(_) => ErrorType::UnsupportedContentEncoding,
            ApiError::UnsupportedTransferEncoding(_) => ErrorType::UnsupportedTransferEncoding,
            ApiError::MissingHost => ErrorType::MissingHost,
            ApiError::HeadTooLarge { .. } => ErrorType::HeadTooLarge,
            ApiError::Unauthorized(crate::auth::Refusal::Forbidden) => ErrorType::Forbidden,
            ApiError::Unauthorized(_) => ErrorType::Unauthorized,
            ApiError::Internal(_) => ErrorType::Internal,
        }
    }

    /// Whether the client caused it: a 4xx, or a 501 for a feature of HTTP it used.
    /// Counted as a rejection and logged only at `debug`.
    pub fn is_clients(&self) -> bool {
        self.status().is_client_error() || matches!(self, ApiError::UnsupportedTransferEncoding(_))
    }

    /// Whether the error is a moment's unavailability (no model yet, shutting down,
    /// busy): answered 503 with `Retry-After`, and not logged as the server's fault.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::Draining
                | ApiError::Score(
                    ScoreError::NoModel | ScoreError::ModelNotReady(_) | ScoreError::Overloaded(_)
                )
        )
    }

    /// The JSON error response.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let body = serde_json::json!({
            "error": self.to_string(),
            "error_type": self.error_type().as_str(),
        });
        let mut resp =
            super::json_response(self.status(), serde_json::to_vec(&body).expect("json"));
        match self {
            ApiError::MethodNotAllowed { allow, .. } => {
                resp.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::Unauthorized(r) if r != crate::auth::Refusal::Forbidden => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::BodyTimeout(_)
            | ApiError::UnsupportedTransferEncoding(_)
            | ApiError::MissingHost
            | ApiError::HeadTooLarge { .. } => {
                // The rest of the connection cannot be trusted to be read right.
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            e if e.is_transient() => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        resp
    }
}
