//! Every `error_type` an answer can carry, in one list. The JSON error body's
//! `error_type` and the `reason` label of `treeserve_rejected_requests_total` both come
//! from it, so neither can name a reason the other does not know.

/// Defines [`ErrorType`], its `ALL` list and its names from one table.
macro_rules! error_types {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// The kind of an error answer: its `error_type` and its metric reason.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorType {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorType {
            /// Every error type, in declaration order (`ALL[t as usize] == t`).
            pub const ALL: &[ErrorType] = &[$(ErrorType::$variant,)*];

            /// The snake_case name: the body's `error_type`, the metric's `reason`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorType::$variant => $name,)*
                }
            }
        }
    };
}

error_types! {
    /// Not JSON.
    MalformedJson => "malformed_json",
    /// JSON, but not the shape the route takes.
    InvalidBody => "invalid_body",
    /// A row lacks a feature.
    MissingFeature => "missing_feature",
    /// A row names a feature the model does not have.
    UnknownFeature => "unknown_feature",
    /// A row names a feature twice.
    DuplicateFeature => "duplicate_feature",
    /// A value is not a number.
    InvalidValue => "invalid_value",
    /// A value is NaN, infinite or out of range.
    NonFiniteValue => "non_finite_value",
    /// A batch with no rows.
    EmptyBatch => "empty_batch",
    /// A batch over the row limit.
    TooManyRows => "too_many_rows",
    /// A tensor's shape does not fit the model or its data.
    InvalidShape => "invalid_shape",
    /// A tensor's datatype is not accepted.
    InvalidDatatype => "invalid_datatype",
    /// An output the model does not have.
    UnknownOutput => "unknown_output",
    /// The body is over the size limit.
    BodyTooLarge => "body_too_large",
    /// The body did not arrive in time.
    BodyTimeout => "body_timeout",
    /// The body could not be read.
    BodyReadError => "body_read_error",
    /// A content type the route does not take.
    UnsupportedMediaType => "unsupported_media_type",
    /// A query parameter is wrong.
    InvalidQuery => "invalid_query",
    /// No such path.
    NotFound => "not_found",
    /// No such model is served.
    ModelNotFound => "model_not_found",
    /// No such version of a served model.
    VersionNotFound => "version_not_found",
    /// Several models are served and none is the default.
    NoDefaultModel => "no_default_model",
    /// Known path, other method.
    MethodNotAllowed => "method_not_allowed",
    /// A compressed body.
    UnsupportedContentEncoding => "unsupported_content_encoding",
    /// A transfer coding other than `chunked` (501).
    UnsupportedTransferEncoding => "unsupported_transfer_encoding",
    /// An HTTP/1.1 request without `Host`.
    MissingHost => "missing_host",
    /// A request head over `--max-header-bytes` (431).
    HeadTooLarge => "head_too_large",
    /// No validated model is loaded.
    NoModel => "no_model",
    /// The named model has no loaded version yet.
    ModelNotReady => "model_not_ready",
    /// The server is shutting down.
    ShuttingDown => "shutting_down",
    /// Too much work in progress.
    Overloaded => "overloaded",
    /// Over `--max-connections`.
    TooManyConnections => "too_many_connections",
    /// A pinned version exists but fails validation.
    VersionUnavailable => "version_unavailable",
    /// No API key, or one not accepted (401).
    Unauthorized => "unauthorized",
    /// A key whose scope does not cover the route (403).
    Forbidden => "forbidden",
    /// A bug: the server failed.
    Internal => "internal",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_declaration_order_and_names_are_unique() {
        for (i, t) in ErrorType::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i, "{t:?}");
        }
        let mut names: Vec<&str> = ErrorType::ALL.iter().map(|t| t.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorType::ALL.len());
    }
}
