//! Routing (a match on method and path) and the route adapters.

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::json;

use super::{ApiError, AppState, json_response};
use crate::metrics::Route;
use crate::protocol::score;
use crate::serving::{ServedModel, predict};

type Reply = Result<Response<Full<Bytes>>, ApiError>;

const X_MODEL_NAME: HeaderName = HeaderName::from_static("x-model-name");
const X_MODEL_VERSION: HeaderName = HeaderName::from_static("x-model-version");

/// Bodies whose decoding and prediction could take longer than this many "byte-trees"
/// (body bytes × trees) are scored on a blocking thread, not on the runtime.
const INLINE_WORK_LIMIT: usize = 256 * 1024;

pub(super) async fn dispatch(req: Request<Incoming>, state: &AppState) -> (Route, Reply) {
    let path = req.uri().path();
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    let not_allowed = |allow: &'static str| ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        allow,
    };
    match path {
        "/score" => match *req.method() {
            Method::POST => (Route::Score, score(req, state).await),
            _ => (Route::Score, Err(not_allowed("POST"))),
        },
        "/health/live" if get => (
            Route::HealthLive,
            Ok(json_response(StatusCode::OK, &b"{\"status\":\"live\"}"[..])),
        ),
        "/health/ready" if get => (Route::HealthReady, ready(state)),
        "/models" if get => (Route::Models, models(state)),
        "/metrics" if get => (Route::Metrics, Ok(metrics(state))),
        "/health/live" => (Route::HealthLive, Err(not_allowed("GET, HEAD"))),
        "/health/ready" => (Route::HealthReady, Err(not_allowed("GET, HEAD"))),
        "/models" => (Route::Models, Err(not_allowed("GET, HEAD"))),
        "/metrics" => (Route::Metrics, Err(not_allowed("GET, HEAD"))),
        _ => (
            Route::Unmatched,
            Err(ApiError::NotFound(truncated_path(path))),
        ),
    }
}

fn truncated_path(path: &str) -> String {
    let mut end = path.len().min(128);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    path[..end].to_owned()
}

fn ready(state: &AppState) -> Reply {
    let served = state.catalog.current().ok_or(ApiError::NoModel)?;
    let body = json!({
        "status": "ready",
        "model": served.model.name(),
        "version": served.model.version(),
    });
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).expect("json"),
    ))
}

fn models(state: &AppState) -> Reply {
    let served = state.catalog.current().ok_or(ApiError::NoModel)?;
    let m = served.model.manifest();
    let body = json!({
        "models": [{
            "name": m.name,
            "version": served.model.version(),
            "alias": state.config.alias,
            "sha256": served.model.sha256(),
            "algorithm": m.algorithm,
            "created": m.created,
            "hyper_parameters": m.hyper_parameters,
            "features": m.features,
            "target": m.target,
            "output_key": served.score.output_key(),
            "classes": m.classes,
            "trees": served.model.forest().num_trees(),
            "nodes": served.model.forest().num_nodes(),
            "training": m.training,
            "metrics": m.metrics,
        }]
    });
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).expect("json"),
    ))
}

fn metrics(state: &AppState) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(state.metrics.render())));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::TEXT_FORMAT),
    );
    resp
}

/// Accepts `application/json` (any parameters) or no content type.
fn check_json_content_type(req: &Request<Incoming>) -> Result<(), ApiError> {
    let Some(ct) = req.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = ct
        .to_str()
        .ok()
        .and_then(|s| s.split(';').next())
        .map(str::trim);
    match essence {
        Some(e) if e.eq_ignore_ascii_case("application/json") => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType(
            String::from_utf8_lossy(&ct.as_bytes()[..ct.len().min(100)]).into_owned(),
        )),
    }
}

/// Parses `?probabilities=true|false|1|0`; other parameters are ignored.
fn wants_probabilities(query: Option<&str>) -> Result<bool, ApiError> {
    let mut want = false;
    for pair in query.unwrap_or("").split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, "true"));
        if k == "probabilities" {
            want = match v {
                "true" | "1" | "" => true,
                "false" | "0" => false,
                _ => {
                    return Err(ApiError::InvalidQuery(
                        "probabilities must be true or false".into(),
                    ));
                }
            };
        }
    }
    Ok(want)
}

async fn read_body(body: Incoming, limit: usize, timeout: Duration) -> Result<Bytes, ApiError> {
    // hyper knows the declared Content-Length: refuse before reading anything.
    if hyper::body::Body::size_hint(&body).lower() > limit as u64 {
        return Err(ApiError::BodyTooLarge { limit });
    }
    let mut collect = pin!(Limited::new(body, limit).collect());
    // Usually the whole body arrived with the head: no timer is armed for it.
    let result = match poll_fn(|cx| Poll::Ready(collect.as_mut().poll(cx))).await {
        Poll::Ready(r) => r,
        Poll::Pending => tokio::time::timeout(timeout, collect)
            .await
            .map_err(|_| ApiError::BodyTimeout(timeout))?,
    };
    match result {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::BodyTooLarge { limit })
        }
        Err(e) => Err(ApiError::BodyRead(e.to_string())),
    }
}

#[derive(Default)]
struct Scratch {
    values: Vec<f64>,
    classes: Vec<usize>,
    proba: Vec<f64>,
    local: Option<LocalPieces>,
}

/// This thread's copies of one model's response pieces. Cloning a shared `Bytes` or
/// `HeaderValue` touches a reference count every core writes to; per-thread copies keep
/// those writes on one core.
struct LocalPieces {
    id: u64,
    name: HeaderValue,
    version: HeaderValue,
    singles: Vec<Bytes>,
}

impl LocalPieces {
    fn new(served: &ServedModel) -> Self {
        let value =
            |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static("invalid"));
        Self {
            id: served.id,
            name: value(served.model.name()),
            version: value(&served.version_text),
            singles: (0..served.model.num_classes())
                .map(|c| Bytes::copy_from_slice(served.score.single(c)))
                .collect(),
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

struct Scored {
    rows: usize,
    body: Bytes,
    name: HeaderValue,
    version: HeaderValue,
}

/// How to answer one `/score` request.
#[derive(Debug, Clone, Copy)]
struct ScoreOptions {
    max_rows: usize,
    want_proba: bool,
    /// Record predictions and drift in the model's statistics.
    record: bool,
}

/// Decodes, predicts and encodes one `/score` body with this thread's reusable buffers.
fn score_body(served: &ServedModel, body: &[u8], opts: ScoreOptions) -> Result<Scored, ApiError> {
    let ScoreOptions {
        max_rows,
        want_proba,
        record,
    } = opts;
    SCRATCH.with_borrow_mut(|s| {
        if s.local.as_ref().is_none_or(|l| l.id != served.id) {
            s.local = Some(LocalPieces::new(served));
        }
        let Scratch {
            values,
            classes,
            proba,
            local,
        } = s;
        let local = local.as_ref().expect("set above");
        let model = &served.model;
        let decoded = score::decode(body, model.features(), max_rows, values)?;
        let body = if decoded.rows == 1 && !decoded.batch && !want_proba {
            let class = model.predict(values);
            if record {
                served.stats.record(values, class);
            }
            local.singles[class].clone()
        } else {
            predict(
                served,
                values,
                classes,
                want_proba.then_some(&mut *proba),
                record,
            );
            let proba = want_proba.then_some(&proba[..]);
            Bytes::from(served.score.encode(classes, proba, decoded.batch))
        };
        Ok(Scored {
            rows: decoded.rows,
            body,
            name: local.name.clone(),
            version: local.version.clone(),
        })
    })
}

enum Work {
    Done(Result<Scored, ApiError>),
    Blocking(Arc<ServedModel>),
}

async fn score(req: Request<Incoming>, state: &AppState) -> Reply {
    check_json_content_type(&req)?;
    let want_proba = wants_probabilities(req.uri().query())?;
    let body = read_body(
        req.into_body(),
        state.config.max_body_bytes,
        state.config.body_read_timeout,
    )
    .await?;
    let opts = ScoreOptions {
        max_rows: state.config.max_batch_rows,
        want_proba,
        record: !state.config.no_metrics,
    };
    // The model is loaded once, here, and this version answers the whole request. Small
    // bodies are scored inline under a guard that touches no shared reference count.
    let work = {
        let guard = state.catalog.load();
        let served = guard.as_ref().ok_or(ApiError::NoModel)?;
        if body.len().saturating_mul(served.model.forest().num_trees()) <= INLINE_WORK_LIMIT {
            Work::Done(score_body(served, &body, opts))
        } else {
            Work::Blocking(Arc::clone(served))
        }
    };
    let scored = match work {
        Work::Done(r) => r?,
        Work::Blocking(served) => {
            tokio::task::spawn_blocking(move || score_body(&served, &body, opts))
                .await
                .map_err(|e| ApiError::Internal(format!("scoring task failed: {e}")))??
        }
    };
    if opts.record {
        state.metrics.observe_batch(scored.rows);
    }
    let mut resp = json_response(StatusCode::OK, scored.body);
    let headers = resp.headers_mut();
    headers.insert(X_MODEL_NAME, scored.name);
    headers.insert(X_MODEL_VERSION, scored.version);
    Ok(resp)
}
