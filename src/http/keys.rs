//! API keys over HTTP (`--api-keys-file`, see [`crate::auth`]): the scope each route
//! needs, and the key a request presents (`Authorization: Bearer KEY`, or `x-api-key`).

use http::HeaderValue;

use crate::auth::Scope;
use crate::metrics::Route;

/// The scope `route` needs: the probes are open; reports, model details and metrics
/// (unless `metrics_open`) need `admin`; the rest (scoring, and the metadata clients read
/// before scoring) `score`. An unknown path needs `score` too: an anonymous caller learns
/// nothing about which paths exist.
pub(super) fn scope(route: Route, metrics_open: bool) -> Scope {
    match route {
        Route::HealthLive
        | Route::HealthReady
        | Route::V2Live
        | Route::V2Ready
        | Route::Root
        | Route::Ping
        | Route::GrpcServerLive
        | Route::GrpcServerReady => Scope::Open,
        Route::Metrics if metrics_open => Scope::Open,
        Route::Metrics | Route::Models | Route::Model | Route::ModelReport | Route::ModelLive => {
            Scope::Admin
        }
        Route::Score
        | Route::ModelScore
        | Route::OpenApi
        | Route::Swagger
        | Route::V2Server
        | Route::V2Model
        | Route::V2ModelReady
        | Route::V2Infer
        | Route::V2Version
        | Route::V2VersionReady
        | Route::V2VersionInfer
        | Route::Invocations
        | Route::ModelInvocations
        | Route::V1Model
        | Route::V1Predict
        | Route::Feedback
        | Route::ModelFeedback
        | Route::GrpcModelReady
        | Route::GrpcServerMetadata
        | Route::GrpcModelMetadata
        | Route::GrpcModelInfer
        | Route::Unmatched => Scope::Score,
    }
}

/// The key presented: the `Authorization` header's bearer token, else `x-api-key`.
pub(super) fn presented<'h>(
    authorization: Option<&'h HeaderValue>,
    x_api_key: Option<&'h HeaderValue>,
) -> Option<&'h [u8]> {
    let bearer = authorization.and_then(|v| {
        let v = v.as_bytes();
        let (scheme, rest) = v.split_at_checked(7)?;
        scheme
            .eq_ignore_ascii_case(b"bearer ")
            .then(|| rest.trim_ascii())
    });
    bearer.or_else(|| x_api_key.map(HeaderValue::as_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_and_x_api_key() {
        let b = HeaderValue::from_static("Bearer abc");
        let x = HeaderValue::from_static("xyz");
        assert_eq!(presented(Some(&b), Some(&x)), Some(&b"abc"[..]));
        assert_eq!(presented(None, Some(&x)), Some(&b"xyz"[..]));
        let basic = HeaderValue::from_static("Basic abc");
        assert_eq!(presented(Some(&basic), None), None);
        assert_eq!(presented(None, None), None);
        assert_eq!(
            presented(Some(&HeaderValue::from_static("bearer  k ")), None),
            Some(&b"k"[..])
        );
    }

    #[test]
    fn probes_are_open_and_details_are_admin() {
        assert_eq!(scope(Route::Ping, false), Scope::Open);
        assert_eq!(scope(Route::Metrics, false), Scope::Admin);
        assert_eq!(scope(Route::Metrics, true), Scope::Open);
        assert_eq!(scope(Route::Invocations, false), Scope::Score);
        assert_eq!(scope(Route::Unmatched, false), Scope::Score);
    }
}
