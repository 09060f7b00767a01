//! The Open Inference Protocol (KServe V2) over HTTP: model metadata and readiness, and
//! inference through the scoring use case with the V2 codec.

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use super::body::{RequestBody, check_content_type};
use super::score::{X_MODEL_NAME, X_MODEL_VERSION};
use super::step::{BodyJob, JobKind, Next, Reply, StateRef, Step, header_value};
use super::{ApiError, AppState, json_response};
use crate::metrics::Route;
use crate::protocol::v2;
use crate::serving::{Scored, V2Codec, truncated};

const INFERENCE_HEADER_CONTENT_LENGTH: HeaderName =
    HeaderName::from_static("inference-header-content-length");

/// `/v2/models/{model}[/versions/{version}][/ready|/infer]`: model, version and action.
fn target(rest: &str) -> (&str, Option<&str>, &str) {
    let (model, tail) = rest.split_once('/').unwrap_or((rest, ""));
    match tail.strip_prefix("versions/") {
        Some(t) => {
            let (v, a) = t.split_once('/').unwrap_or((t, ""));
            (model, Some(v), a)
        }
        None => (model, None, tail),
    }
}

/// Routes under `/v2/models/`.
pub(super) fn route<'a, B: RequestBody + 'a, S: StateRef + 'a>(
    parts: http::request::Parts,
    body: B,
    handle: &S,
) -> Step<'a, B> {
    let path = parts.uri.path();
    let rest = &path["/v2/models/".len()..];
    let (model, version, action) = target(rest);
    let route = match (version.is_some(), action) {
        (false, "") => Route::V2Model,
        (false, "ready") => Route::V2ModelReady,
        (false, "infer") => Route::V2Infer,
        (true, "") => Route::V2Version,
        (true, "ready") => Route::V2VersionReady,
        (true, "infer") => Route::V2VersionInfer,
        _ => {
            return Step::Done(
                Route::Unmatched,
                Box::new(Err(ApiError::NotFound(truncated(path)))),
            );
        }
    };
    // Versions are canonical decimal: `01`, `+1` or `1.0` name no version.
    if let Some(v) = version
        && !canonical_version(v)
    {
        let err = crate::serving::ScoreError::VersionNotFound {
            model: truncated(model),
            version: truncated(v),
        };
        return Step::Done(route, Box::new(Err(err.into())));
    }
    let infer = action == "infer";
    let method_ok = if infer {
        parts.method == Method::POST
    } else {
        matches!(parts.method, Method::GET | Method::HEAD)
    };
    if !method_ok {
        let err = ApiError::MethodNotAllowed {
            method: parts.method.to_string(),
            allow: if infer { "POST" } else { "GET, HEAD" },
        };
        return Step::Done(route, Box::new(Err(err)));
    }
    if !infer {
        // Metadata and readiness may load a pinned version: boxed, with their own copy
        // of the path.
        let ready = action == "ready";
        let uri = parts.uri;
        let state = handle.clone();
        return Step::Later(
            route,
            Box::pin(async move {
                let (model, version, _) = target(&uri.path()["/v2/models/".len()..]);
                if ready {
                    self::ready(&state, model, version).await
                } else {
                    metadata(&state, model, version).await
                }
            }),
        );
    }
    let head = check_content_type(
        &parts.headers,
        &["application/json", "application/octet-stream"],
    )
    .and_then(|()| header_len(&parts.headers));
    match head {
        Err(e) => Step::Done(route, Box::new(Err(e))),
        Ok(header_len) => {
            let job = BodyJob::new(parts.uri, JobKind::Infer { header_len }, |path| {
                let (model, version, _) = target(&path["/v2/models/".len()..]);
                (Some(model), version)
            });
            Step::Body { route, body, job }
        }
    }
}

/// Whether `v` is a version as the registry writes it: decimal digits, no sign, no
/// leading zero.
fn canonical_version(v: &str) -> bool {
    !v.is_empty() && !v.starts_with('0') && v.bytes().all(|b| b.is_ascii_digit())
}

/// The `Inference-Header-Content-Length` of a binary request, if given.
fn header_len(headers: &http::HeaderMap) -> Result<Option<usize>, ApiError> {
    let Some(v) = headers.get(INFERENCE_HEADER_CONTENT_LENGTH) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::from(crate::protocol::InputError::new(
                crate::protocol::InputErrorKind::InvalidBody,
                "Inference-Header-Content-Length is not a number",
            ))
        })
}

async fn ready(state: &AppState, model: &str, version: Option<&str>) -> Reply {
    let (_, served) = state.scoring.resolve(model, version).await?;
    let body = json!({
        "name": served.model.name(),
        "version": served.version_text,
        "ready": true,
    });
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).expect("json"),
    ))
}

async fn metadata(state: &AppState, model: &str, version: Option<&str>) -> Reply {
    let (catalog, served) = state.scoring.resolve(model, version).await?;
    let versions = state
        .scoring
        .blocking("registry", move || catalog.versions())
        .await?
        .unwrap_or_default();
    let m = &served.model;
    let body = json!({
        "name": m.name(),
        "versions": versions.iter().map(u64::to_string).collect::<Vec<_>>(),
        "platform": "treeserve",
        "inputs": [{"name": v2::INPUT, "datatype": "FP64", "shape": [-1, m.num_features()]}],
        "outputs": if m.is_regression() {
            json!([{"name": v2::PREDICT, "datatype": "FP64", "shape": [-1]}])
        } else {
            json!([
                {"name": v2::LABEL, "datatype": "BYTES", "shape": [-1]},
                {"name": v2::PROBABILITIES, "datatype": "FP32", "shape": [-1, m.num_classes()]},
            ])
        },
        "parameters": {
            "model_version": served.version_text,
            "features": m.features(),
            "classes": m.classes(),
            "accepted_input_datatypes": v2::INPUT_DATATYPES,
            "missing_values": m.missing_aware(),
        },
    });
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).expect("json"),
    ))
}

/// Scores a V2 infer body with `model` at `version` (the alias's if `None`).
pub(super) fn infer<'a>(
    state: &'a AppState,
    model: &str,
    version: Option<&str>,
    header_len: Option<usize>,
    body: Bytes,
    ask: crate::serving::Ask,
) -> Next<'a> {
    let codec = V2Codec { header_len };
    let outcome = state
        .scoring
        .score_asked(Some(model), version, codec, body, ask);
    Next::scored(outcome, respond)
}

fn respond(scored: Scored<v2::Encoded>) -> Response<Full<Bytes>> {
    let v2::Encoded { mut json, binary } = scored.output;
    let json_len = json.len();
    let binary_present = !binary.is_empty();
    if binary_present {
        json.extend_from_slice(&binary);
    }
    let mut resp = json_response(StatusCode::OK, json);
    let headers = resp.headers_mut();
    if binary_present {
        headers.insert(INFERENCE_HEADER_CONTENT_LENGTH, HeaderValue::from(json_len));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
    }
    headers.append(X_MODEL_NAME, header_value(scored.model));
    headers.append(X_MODEL_VERSION, header_value(scored.version));
    resp
}
