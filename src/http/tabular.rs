//! MLflow's scoring protocol (`POST /invocations`, `GET /ping`: also SageMaker's container
//! contract) and KServe V1 / TF Serving's REST predict (`POST /v1/models/{m}:predict`,
//! `GET /v1/models/{m}`): the checks of the head, then the scoring use case with the
//! tabular codec (`crate::protocol::tabular`).

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::json;

use super::body::check_content_type;
use super::step::{BodyJob, JobKind, Next, Reply, Step};
use super::{AppState, json_response, score};
use crate::metrics::Route;
use crate::serving::{TabularCodec, find};

/// Which model a tabular route's path names.
#[derive(Debug, Clone, Copy)]
pub(super) enum Named {
    /// `/invocations`: the default model.
    Default,
    /// `/models/{model}/invocations`.
    Models,
    /// `/v1/models/{model}:predict`.
    V1,
}

/// A tabular route up to the body: JSON, or CSV for MLflow's routes.
pub(super) fn step<'a, B>(req: Request<B>, route: Route, named: Named) -> Step<'a, B> {
    let types: &[&str] = match named {
        Named::V1 => &["application/json"],
        _ => &["application/json", "text/csv"],
    };
    if let Err(e) = check_content_type(req.headers(), types) {
        return Step::Done(route, Box::new(Err(e)));
    }
    let csv = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("text/csv"));
    let (parts, body) = req.into_parts();
    let job = BodyJob::new(parts.uri, JobKind::Tabular { csv }, |path| {
        let model = match named {
            Named::Default => None,
            Named::Models => path
                .strip_prefix("/models/")
                .and_then(|r| r.split_once('/'))
                .map(|(m, _)| m),
            Named::V1 => path
                .strip_prefix("/v1/models/")
                .and_then(|r| r.strip_suffix(":predict")),
        };
        (model, None)
    });
    Step::Body { route, body, job }
}

/// Scores a tabular body with `model` (the default model if `None`).
pub(super) fn score<'a>(
    state: &'a AppState,
    model: Option<&str>,
    csv: bool,
    body: Bytes,
    ask: crate::serving::Ask,
) -> Next<'a> {
    let codec = TabularCodec { csv };
    let outcome = state.scoring.score_asked(model, None, codec, body, ask);
    Next::scored(outcome, score::respond)
}

/// `GET /v1/models/{model}`: KServe V1's readiness of a model, with TF Serving's version
/// status.
pub(super) fn v1_model(state: &AppState, name: &str) -> Reply {
    let models = state.fleet().models();
    let catalog = find(&models, Some(name))?;
    let guard = catalog.load();
    let version = guard.as_ref().map(|s| s.model.version());
    let body = json!({
        "name": catalog.name(),
        "ready": version.is_some(),
        "model_version_status": version.map(|v| vec![json!({
            "version": v.to_string(),
            "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""},
        })]).unwrap_or_default(),
    });
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).expect("json"),
    ))
}

fn text(body: &'static [u8]) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// `GET /` (Azure ML's inference server answers liveness here): 200 `Healthy`.
pub(super) fn root() -> Response<Full<Bytes>> {
    text(b"Healthy")
}

/// `GET /ping` (MLflow's scoring server, SageMaker's health check): 200 with a newline
/// while the server is ready (clients read the status only), the readiness error otherwise.
pub(super) fn ping(state: &AppState) -> Reply {
    super::info::ready(state).map(|_| text(b"\n"))
}
