//! Open Inference Protocol (KServe V2) routes, and the OpenAPI document.

use std::cell::RefCell;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use super::routes::{
    BodyJob, JobKind, Next, Reply, RequestBody, StateRef, Step, Work, blocking, check_content_type,
    model_headers, truncated,
};
use super::{ApiError, AppState, json_response};
use crate::metrics::Route;
use crate::protocol::v2::{self, Output};
use crate::registry::RegistryError;
use crate::serving::{Catalog, LoadError, ServedModel, predict};

const X_MODEL_NAME: HeaderName = HeaderName::from_static("x-model-name");
const X_MODEL_VERSION: HeaderName = HeaderName::from_static("x-model-version");
const INFERENCE_HEADER_CONTENT_LENGTH: HeaderName =
    HeaderName::from_static("inference-header-content-length");

/// Extensions listed by `GET /v2`.
pub const EXTENSIONS: [&str; 1] = ["binary_tensor_data"];

/// `GET /v2`.
pub(super) fn server_metadata() -> Response<Full<Bytes>> {
    let body = json!({
        "name": "treeserve",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": EXTENSIONS,
    });
    json_response(StatusCode::OK, serde_json::to_vec(&body).expect("json"))
}

/// `GET /openapi.json`: the document in `openapi.json`, narrowed to what this server
/// serves now: the `model` path parameter lists the served models, and the `/score` row
/// schemas name each model's features exactly.
pub(super) fn openapi(state: &AppState) -> Response<Full<Bytes>> {
    static TEMPLATE: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    let mut doc = TEMPLATE
        .get_or_init(|| serde_json::from_slice(include_bytes!("openapi.json")).expect("valid"))
        .clone();
    let models = state.fleet.models();
    let row = |m: &crate::model::Model| {
        let props: serde_json::Map<String, serde_json::Value> = m
            .features()
            .iter()
            .map(|f| (f.clone(), json!({"type": "number"})))
            .collect();
        json!({
            "type": "object",
            "properties": props,
            "required": m.features(),
            "additionalProperties": false,
        })
    };
    let rows: Vec<serde_json::Value> = models
        .iter()
        .filter_map(|c| c.current().map(|s| row(&s.model)))
        .collect();
    let names: Vec<&str> = models.names();
    let paths = &mut doc["paths"];
    if let Some(paths) = paths.as_object_mut() {
        for op in paths.values_mut().filter_map(|p| p.as_object_mut()) {
            for op in op.values_mut() {
                let params = op.get_mut("parameters").and_then(|p| p.as_array_mut());
                for param in params.into_iter().flatten() {
                    if param["name"] == "model" && !names.is_empty() {
                        param["schema"] = json!({"type": "string", "enum": names});
                    }
                }
            }
        }
    }
    let batch =
        |r: serde_json::Value| json!({"oneOf": [r, {"type": "array", "items": r, "minItems": 1}]});
    let body =
        |path: &str| format!("/paths/{path}/post/requestBody/content/application~1json/schema");
    if let Some(d) = models.default_model().and_then(|c| c.current())
        && let Some(s) = doc.pointer_mut(&body("~1score"))
    {
        *s = batch(row(&d.model));
    }
    if !rows.is_empty()
        && let Some(s) = doc.pointer_mut(&body("~1models~1{model}~1score"))
    {
        *s = batch(json!({"anyOf": rows}));
    }
    json_response(StatusCode::OK, serde_json::to_vec(&doc).expect("json"))
}

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
    let (_, version, action) = target(rest);
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

fn parse_version(model: &str, version: &str) -> Result<u64, ApiError> {
    version
        .parse()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| ApiError::VersionNotFound {
            model: truncated(model),
            version: truncated(version),
        })
}

fn catalog(state: &AppState, model: &str) -> Result<Arc<Catalog>, ApiError> {
    state
        .fleet
        .models()
        .get(model)
        .cloned()
        .ok_or_else(|| ApiError::ModelNotFound(truncated(model)))
}

/// The version a request names: the alias's, or a pinned one (loaded on first use, on a
/// blocking thread).
async fn resolve(
    state: &AppState,
    model: &str,
    version: Option<&str>,
) -> Result<(Arc<Catalog>, Arc<ServedModel>), ApiError> {
    let catalog = catalog(state, model)?;
    let Some(v) = version else {
        let served = catalog
            .current()
            .ok_or_else(|| ApiError::ModelNotReady(truncated(model)))?;
        return Ok((catalog, served));
    };
    let v = parse_version(model, v)?;
    if let Some(s) = catalog.cached(v) {
        return Ok((catalog, s));
    }
    let c = catalog.clone();
    let loaded = blocking(state, "version load", move || c.pinned(v)).await?;
    match loaded {
        Ok(s) => Ok((catalog, s)),
        Err(LoadError::Registry(
            RegistryError::VersionNotFound { .. } | RegistryError::ModelNotFound(_),
        )) => Err(ApiError::VersionNotFound {
            model: truncated(model),
            version: v.to_string(),
        }),
        Err(e) => Err(ApiError::VersionUnavailable {
            model: truncated(model),
            version: v,
            reason: e.to_string(),
        }),
    }
}

async fn ready(state: &AppState, model: &str, version: Option<&str>) -> Reply {
    let (_, served) = resolve(state, model, version).await?;
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
    let (catalog, served) = resolve(state, model, version).await?;
    let versions = blocking(state, "registry", move || catalog.versions())
        .await?
        .unwrap_or_default();
    let m = &served.model;
    let body = json!({
        "name": m.name(),
        "versions": versions.iter().map(u64::to_string).collect::<Vec<_>>(),
        "platform": "treeserve",
        "inputs": [{"name": v2::INPUT, "datatype": "FP64", "shape": [-1, m.num_features()]}],
        "outputs": [
            {"name": v2::LABEL, "datatype": "BYTES", "shape": [-1]},
            {"name": v2::PROBABILITIES, "datatype": "FP32", "shape": [-1, m.num_classes()]},
        ],
        "parameters": {
            "model_version": served.version_text,
            "features": m.features(),
            "classes": m.classes(),
            "accepted_input_datatypes": v2::INPUT_DATATYPES,
        },
    });
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).expect("json"),
    ))
}

#[derive(Default)]
struct Scratch {
    values: Vec<f64>,
    classes: Vec<usize>,
    proba: Vec<f64>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Decodes, predicts and encodes one inference request with this thread's buffers.
fn infer_body(
    served: &ServedModel,
    body: &[u8],
    header_len: Option<usize>,
    max_rows: usize,
    record: bool,
) -> Result<(usize, v2::Encoded), ApiError> {
    let (json, binary) = match header_len {
        Some(n) if n <= body.len() => body.split_at(n),
        Some(n) => {
            return Err(crate::protocol::InputError::new(
                crate::protocol::InputErrorKind::InvalidBody,
                format!(
                    "Inference-Header-Content-Length is {n} but the body has {} bytes",
                    body.len()
                ),
            )
            .into());
        }
        None => (body, &[][..]),
    };
    SCRATCH.with_borrow_mut(|s| {
        let model = &served.model;
        let decoded = v2::decode(json, binary, model.num_features(), max_rows, &mut s.values)?;
        let want_proba = decoded
            .outputs
            .as_slice()
            .iter()
            .any(|o| o.output == Output::Probabilities);
        predict(
            served,
            &s.values,
            &mut s.classes,
            want_proba.then_some(&mut s.proba),
            record,
        );
        let encoded = served.v2.encode(
            decoded.id.as_deref(),
            &s.classes,
            want_proba.then_some(&s.proba[..]),
            decoded.outputs.as_slice(),
        );
        Ok((decoded.rows, encoded))
    })
}

/// Scores a V2 infer body: the alias's version inline when small; a pinned version
/// (loaded on first use) or a large body later.
pub(super) fn infer<'a>(
    state: &'a AppState,
    model: &str,
    version: Option<&str>,
    header_len: Option<usize>,
    body: Bytes,
) -> Result<Next<'a>, ApiError> {
    let Some(version) = version else {
        let models = state.fleet.models();
        let catalog = models
            .get(model)
            .ok_or_else(|| ApiError::ModelNotFound(truncated(model)))?;
        let guard = catalog.load();
        let served = guard
            .as_ref()
            .ok_or_else(|| ApiError::ModelNotReady(truncated(model)))?;
        return Ok(infer_on(state, served, header_len, body));
    };
    let (model, version) = (model.to_owned(), version.to_owned());
    Ok(Next::Later(Box::pin(async move {
        let (_, served) = resolve(state, &model, Some(&version)).await?;
        match infer_on(state, &served, header_len, body) {
            Next::Now(reply) => reply,
            Next::Later(later) => later.await,
        }
    })))
}

/// Scores a V2 infer body with `served`: inline when small, else on a blocking thread.
fn infer_on<'a>(
    state: &'a AppState,
    served: &Arc<ServedModel>,
    header_len: Option<usize>,
    body: Bytes,
) -> Next<'a> {
    let max_rows = state.config.max_batch_rows;
    let record = !state.config.no_metrics;
    let run = |s: &ServedModel| {
        (
            infer_body(s, &body, header_len, max_rows, record),
            model_headers(s),
        )
    };
    match Work::plan(served, body.len(), run) {
        Work::Done((r, h)) => Next::Now(r.map(|r| infer_response(state, r, h, record))),
        Work::Blocking(served) => Next::Later(Box::pin(async move {
            let h = model_headers(&served);
            let r = blocking(state, "inference", move || {
                infer_body(&served, &body, header_len, max_rows, record)
            })
            .await??;
            Ok(infer_response(state, r, h, record))
        })),
    }
}

fn infer_response(
    state: &AppState,
    (rows, encoded): (usize, v2::Encoded),
    (name, version): (HeaderValue, HeaderValue),
    record: bool,
) -> Response<Full<Bytes>> {
    if record {
        state.metrics.observe_batch(rows);
    }
    let v2::Encoded { mut json, binary } = encoded;
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
    headers.append(X_MODEL_NAME, name);
    headers.append(X_MODEL_VERSION, version);
    resp
}
