//! Routing (a match on method and path) and the route adapters.

use std::cell::RefCell;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use serde_json::json;

use super::{ApiError, AppState, json_response};
use crate::metrics::Route;
use crate::protocol::score;
use crate::serving::{ServedModel, predict};

pub(super) type Reply = Result<Response<Full<Bytes>>, ApiError>;

const X_MODEL_NAME: HeaderName = HeaderName::from_static("x-model-name");
const X_MODEL_VERSION: HeaderName = HeaderName::from_static("x-model-version");

/// Bodies whose decoding and prediction could take longer than this many "byte-trees"
/// (body bytes × trees) are scored on a blocking thread, not on the runtime.
const INLINE_WORK_LIMIT: usize = 256 * 1024;

/// A request body the handler reads: hyper's `Incoming` from a connection, or any
/// in-process body (benchmarks, embedding).
pub trait RequestBody:
    hyper::body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
    + Send
    + Unpin
{
}

impl<B> RequestBody for B where
    B: hyper::body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + Unpin
{
}

/// A handle on the shared state that boxed work can keep: `Arc<AppState>` on a
/// connection, `&AppState` in process.
pub(super) trait StateRef: std::ops::Deref<Target = AppState> + Clone + Send + Sync {}

impl<S: std::ops::Deref<Target = AppState> + Clone + Send + Sync> StateRef for S {}

/// What answering a request takes, decided from its head alone, without waiting. The
/// hot routes become [`Step::Body`]: the handler's only wait is for the body, and its
/// future stays small (every layer of nested futures is copied on each request).
pub(super) enum Step<'a, B> {
    /// Answered from the head (or refused). Boxed: these routes are rare, and every
    /// request's future holds a `Step`, so it stays the size of the hot variant.
    Done(Route, Box<Reply>),
    /// Read the body, then score it.
    Body { route: Route, body: B, job: BodyJob },
    /// Other asynchronous work (reports, pinned versions, V2 metadata): rare, boxed.
    Later(Route, Later<'a>),
}

/// A boxed reply still being worked on.
pub(super) type Later<'a> = Pin<Box<dyn Future<Output = Reply> + Send + 'a>>;

/// A reply, now or later.
pub(super) enum Next<'a> {
    Now(Reply),
    Later(Later<'a>),
}

/// Scoring that waits for its request body. Only the path is kept (not the whole URI),
/// with the model and version as ranges of it, so nothing is allocated for them and
/// every request's future stays small.
pub(super) struct BodyJob {
    path: Option<PathAndQuery>,
    model: Option<Range<u32>>,
    version: Option<Range<u32>>,
    kind: JobKind,
}

pub(super) enum JobKind {
    /// `/score`, `/models/{model}/score`.
    Score { want_proba: bool },
    /// V2 infer.
    Infer { header_len: Option<usize> },
}

/// The path a job keeps ("" when its URI had none).
fn path_of(path: &Option<PathAndQuery>) -> &str {
    path.as_ref().map_or("", PathAndQuery::path)
}

impl BodyJob {
    /// A job on `uri`; `names` finds the model and version in its path.
    pub(super) fn new(
        uri: Uri,
        kind: JobKind,
        names: impl for<'p> FnOnce(&'p str) -> (Option<&'p str>, Option<&'p str>),
    ) -> Self {
        let path = uri.into_parts().path_and_query;
        let whole = path_of(&path);
        // A URI is at most 64 KB long (the http crate refuses longer ones): offsets fit.
        let range = |part: &str| {
            let start = (part.as_ptr() as usize - whole.as_ptr() as usize) as u32;
            start..start + part.len() as u32
        };
        let (model, version) = names(whole);
        let (model, version) = (model.map(range), version.map(range));
        Self {
            path,
            model,
            version,
            kind,
        }
    }

    fn part(&self, r: &Option<Range<u32>>) -> Option<&str> {
        r.clone()
            .map(|r| &path_of(&self.path)[r.start as usize..r.end as usize])
    }

    pub(super) fn finish<'a>(&self, state: &'a AppState, body: Bytes) -> Next<'a> {
        let model = self.part(&self.model);
        let result = match self.kind {
            JobKind::Score { want_proba } => score(state, model, body, want_proba),
            JobKind::Infer { header_len } => super::v2::infer(
                state,
                model.unwrap_or_default(),
                self.part(&self.version),
                header_len,
                body,
            ),
        };
        result.unwrap_or_else(|e| Next::Now(Err(e)))
    }
}

/// Routes a request: a match on method and path.
/// Work that outlives the call ([`Step::Later`]) keeps its own clone of `handle`.
pub(super) fn route<'a, B: RequestBody + 'a, S: StateRef + 'a>(
    req: Request<B>,
    handle: &S,
) -> Step<'a, B> {
    let state: &AppState = handle;
    let path = req.uri().path();
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    let post = *req.method() == Method::POST;
    let not_allowed = |allow: &'static str| ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        allow,
    };
    const GET: &str = "GET, HEAD";
    const POST: &str = "POST";
    let (route, reply) = match path {
        "/score" if post => return score_step(req, Route::Score, false),
        "/score" => (Route::Score, Err(not_allowed(POST))),
        "/health/live" if get => (Route::HealthLive, Ok(live())),
        "/health/ready" if get => (Route::HealthReady, ready(state)),
        "/models" if get => (Route::Models, models(state, None)),
        "/metrics" if get => (Route::Metrics, Ok(metrics(state))),
        "/openapi.json" if get => (Route::OpenApi, Ok(super::v2::openapi(state))),
        "/v2" if get => (Route::V2Server, Ok(super::v2::server_metadata())),
        "/v2/health/live" if get => (Route::V2Live, Ok(live())),
        "/v2/health/ready" if get => (Route::V2Ready, ready(state)),
        "/health/live" => (Route::HealthLive, Err(not_allowed(GET))),
        "/health/ready" => (Route::HealthReady, Err(not_allowed(GET))),
        "/models" => (Route::Models, Err(not_allowed(GET))),
        "/metrics" => (Route::Metrics, Err(not_allowed(GET))),
        "/openapi.json" => (Route::OpenApi, Err(not_allowed(GET))),
        "/v2" => (Route::V2Server, Err(not_allowed(GET))),
        "/v2/health/live" => (Route::V2Live, Err(not_allowed(GET))),
        "/v2/health/ready" => (Route::V2Ready, Err(not_allowed(GET))),
        _ => {
            if path.starts_with("/v2/models/") {
                let (parts, body) = req.into_parts();
                return super::v2::route(parts, body, handle);
            }
            if let Some(rest) = path.strip_prefix("/models/") {
                match rest.split_once('/') {
                    None if get => (Route::Model, models(state, Some(rest))),
                    None => (Route::Model, Err(not_allowed(GET))),
                    Some((_, "score")) if post => return score_step(req, Route::ModelScore, true),
                    Some((_, "score")) => (Route::ModelScore, Err(not_allowed(POST))),
                    Some((name, "report")) if get => {
                        let name = name.to_owned();
                        let state = handle.clone();
                        return Step::Later(
                            Route::ModelReport,
                            Box::pin(async move { report(&state, name).await }),
                        );
                    }
                    Some((_, "report")) => (Route::ModelReport, Err(not_allowed(GET))),
                    Some(_) => (Route::Unmatched, Err(ApiError::NotFound(truncated(path)))),
                }
            } else {
                (Route::Unmatched, Err(ApiError::NotFound(truncated(path))))
            }
        }
    };
    Step::Done(route, Box::new(reply))
}

/// `/score` and (`named`) `/models/{model}/score` up to the body: the checks of the head.
fn score_step<'a, B>(req: Request<B>, route: Route, named: bool) -> Step<'a, B> {
    let checked = check_content_type(req.headers(), &["application/json"])
        .and_then(|()| wants_probabilities(req.uri().query()));
    match checked {
        Err(e) => Step::Done(route, Box::new(Err(e))),
        Ok(want_proba) => {
            let (parts, body) = req.into_parts();
            let job = BodyJob::new(parts.uri, JobKind::Score { want_proba }, |path| {
                let model = path
                    .strip_prefix("/models/")
                    .and_then(|r| r.split_once('/'));
                (model.filter(|_| named).map(|(name, _)| name), None)
            });
            Step::Body { route, body, job }
        }
    }
}

/// The model's HTML report (see [`crate::report`]), built from the registry on a
/// blocking thread.
async fn report(state: &AppState, name: String) -> Reply {
    let registry = Arc::clone(state.fleet.registry());
    // Datasets live beside the models in the registry directory.
    let datasets = crate::data::DatasetStore::new(&crate::registry::FsRegistry::new(
        state.config.registry.clone(),
    ));
    let html = blocking(state, "report", move || {
        use crate::registry::RegistryError;
        match registry.versions(&name) {
            Ok(_) => crate::report::html(&*registry, Some(&datasets), &name)
                .map_err(|e| ApiError::Internal(format!("building the report: {e}"))),
            Err(RegistryError::ModelNotFound(_) | RegistryError::InvalidName(_)) => {
                Err(ApiError::ModelNotFound(truncated(&name)))
            }
            Err(e) => Err(ApiError::Internal(format!("reading the registry: {e}"))),
        }
    })
    .await??;
    let mut resp = Response::new(Full::new(Bytes::from(html)));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Self-contained: nothing but its own inline styles and script may load or run.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:",
        ),
    );
    Ok(resp)
}

/// Runs `f` on a blocking thread, if one of `--max-blocking-requests` permits is free
/// (else 503 `overloaded`).
pub(super) async fn blocking<T: Send + 'static>(
    state: &AppState,
    what: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let permit = state
        .blocking
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Overloaded("too many large requests in progress"))?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        f()
    })
    .await
    .map_err(|e| ApiError::Internal(format!("{what} task failed: {e}")))
}

/// `s` cut to at most 128 bytes (on a character boundary), for error messages.
pub(super) fn truncated(s: &str) -> String {
    let mut end = s.len().min(128);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn live() -> Response<Full<Bytes>> {
    json_response(StatusCode::OK, &b"{\"status\":\"live\"}"[..])
}

/// 200 while the fleet is ready: the default model (if any) and every model named with
/// `--model` are loaded, and at least one model is.
pub(super) fn ready(state: &AppState) -> Reply {
    if state.fleet.draining() {
        return Err(ApiError::Draining);
    }
    if !state.fleet.ready() {
        return Err(ApiError::NoModel);
    }
    let models = state.fleet.models();
    let loaded: Vec<_> = models
        .iter()
        .map(|c| {
            json!({
                "name": c.name(),
                "version": c.load().as_ref().map(|s| s.model.version()),
            })
        })
        .collect();
    let mut body = json!({"status": "ready", "models": loaded});
    if let Some(d) = models.default_model()
        && let Some(served) = d.load().as_ref()
    {
        body["model"] = json!(served.model.name());
        body["version"] = json!(served.model.version());
    }
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).expect("json"),
    ))
}

/// `/models` (every served model) or `/models/{name}` (one).
fn models(state: &AppState, name: Option<&str>) -> Reply {
    let models = state.fleet.models();
    let describe = |c: &crate::serving::Catalog| {
        let guard = c.load();
        let Some(served) = guard.as_ref() else {
            return json!({"name": c.name(), "alias": c.alias(), "version": null, "ready": false});
        };
        let m = served.model.manifest();
        json!({
            "name": m.name,
            "version": served.model.version(),
            "alias": c.alias(),
            "ready": true,
            "default": models.default_model().is_some_and(|d| d.name() == c.name()),
            "score_path": format!("/models/{}/score", c.name()),
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
            "golden_rows": m.golden.iter().map(|g| json!({
                "features": m.features.iter().zip(&g.features).map(|(f, v)| (f.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
                "class": m.classes.get(g.class as usize),
            })).collect::<Vec<_>>(),
        })
    };
    let body = match name {
        None => json!({"models": models.iter().map(|c| describe(c)).collect::<Vec<_>>()}),
        Some(n) => describe(
            models
                .get(n)
                .ok_or_else(|| ApiError::ModelNotFound(truncated(n)))?,
        ),
    };
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

/// Accepts one of `types` (any parameters) or no content type, and an uncompressed body.
pub(super) fn check_content_type(headers: &HeaderMap, types: &[&str]) -> Result<(), ApiError> {
    // One walk over the few request headers, comparing standard names (an enum compare),
    // instead of two hashed lookups.
    let mut content_type = None;
    for (name, value) in headers {
        if name == header::CONTENT_TYPE {
            content_type.get_or_insert(value);
        } else if name == header::CONTENT_ENCODING
            && !value.as_bytes().eq_ignore_ascii_case(b"identity")
        {
            return Err(ApiError::UnsupportedContentEncoding(lossy(value)));
        }
    }
    let Some(ct) = content_type else {
        return Ok(());
    };
    // The common case, exactly one of the types, without parsing parameters.
    if types
        .iter()
        .any(|t| ct.as_bytes().eq_ignore_ascii_case(t.as_bytes()))
    {
        return Ok(());
    }
    let essence = ct
        .to_str()
        .ok()
        .and_then(|s| s.split(';').next())
        .map(str::trim);
    match essence {
        Some(e) if types.iter().any(|t| e.eq_ignore_ascii_case(t)) => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType(lossy(ct))),
    }
}

fn lossy(v: &HeaderValue) -> String {
    String::from_utf8_lossy(&v.as_bytes()[..v.len().min(100)]).into_owned()
}

/// Parses `?probabilities=true|false|1|0`; other parameters are ignored.
fn wants_probabilities(query: Option<&str>) -> Result<bool, ApiError> {
    let mut want = false;
    for pair in query.unwrap_or("").split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, "true"));
        if k == "probabilities" {
            want = match v {
                "true" | "1" => true,
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

/// Reads a whole request body of at most `limit` bytes. The timeout is armed only if the
/// body is not all there when first polled (usually it came with the head), and runs
/// from then.
pub(super) fn read_body<B: RequestBody>(
    body: &mut B,
    limit: usize,
    timeout: Duration,
) -> ReadBody<'_, B> {
    ReadBody {
        body,
        limit,
        timeout,
        first: Bytes::new(),
        joined: None,
        timer: None,
        started: false,
    }
}

/// The future of [`read_body`]: a plain struct, as small as its state, since it is stored
/// in every request's handler future.
pub(super) struct ReadBody<'b, B> {
    body: &'b mut B,
    limit: usize,
    timeout: Duration,
    /// The body while it is one chunk (kept without a copy).
    first: Bytes,
    /// The body once a second chunk came.
    joined: Option<BytesMut>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    started: bool,
}

impl<B: RequestBody> Future for ReadBody<'_, B> {
    type Output = Result<Bytes, ApiError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let limit = this.limit;
        if !this.started {
            this.started = true;
            // hyper knows the declared Content-Length: refuse before reading anything.
            if hyper::body::Body::size_hint(&*this.body).lower() > limit as u64 {
                return Poll::Ready(Err(ApiError::BodyTooLarge { limit }));
            }
        }
        loop {
            match Pin::new(&mut *this.body).poll_frame(cx) {
                Poll::Ready(None) => break,
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers are not used.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let len = this.joined.as_ref().map_or(this.first.len(), BytesMut::len);
                    if data.len() > limit - len {
                        return Poll::Ready(Err(ApiError::BodyTooLarge { limit }));
                    }
                    match &mut this.joined {
                        Some(j) => j.extend_from_slice(&data),
                        None if this.first.is_empty() => this.first = data,
                        None => {
                            let mut j = BytesMut::with_capacity(len + data.len());
                            j.extend_from_slice(&this.first);
                            j.extend_from_slice(&data);
                            this.joined = Some(j);
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Err(ApiError::BodyRead(e.into().to_string())));
                }
                Poll::Pending => {
                    let timeout = this.timeout;
                    let timer = this
                        .timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                    if timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(ApiError::BodyTimeout(timeout)));
                    }
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(Ok(match this.joined.take() {
            Some(j) => j.freeze(),
            None => std::mem::take(&mut this.first),
        }))
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

/// This thread's `x-model-name` and `x-model-version` values for `served`.
pub(super) fn model_headers(served: &ServedModel) -> (HeaderValue, HeaderValue) {
    SCRATCH.with_borrow_mut(|s| {
        if s.local.as_ref().is_none_or(|l| l.id != served.id) {
            s.local = Some(LocalPieces::new(served));
        }
        let local = s.local.as_ref().expect("set above");
        (local.name.clone(), local.version.clone())
    })
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

/// Work on one loaded version: done inline when it is small, else handed to a blocking
/// thread (see [`blocking`]).
pub(super) enum Work<T> {
    Done(T),
    Blocking(Arc<ServedModel>),
}

impl<T> Work<T> {
    /// Runs `f` now when a body of `body_len` bytes is cheap for `served`'s forest; else
    /// keeps the version for a blocking thread.
    pub(super) fn plan(
        served: &Arc<ServedModel>,
        body_len: usize,
        f: impl FnOnce(&ServedModel) -> T,
    ) -> Self {
        if body_len.saturating_mul(served.model.forest().num_trees()) <= INLINE_WORK_LIMIT {
            Work::Done(f(served))
        } else {
            Work::Blocking(Arc::clone(served))
        }
    }
}

/// Scores a `/score` body with `model` (the default model if `None`): inline when small,
/// else on a blocking thread.
fn score<'a>(
    state: &'a AppState,
    model: Option<&str>,
    body: Bytes,
    want_proba: bool,
) -> Result<Next<'a>, ApiError> {
    let opts = ScoreOptions {
        max_rows: state.config.max_batch_rows,
        want_proba,
        record: !state.config.no_metrics,
    };
    // The model is loaded once, here, and this version answers the whole request. Small
    // bodies are scored inline under guards that touch no shared reference count.
    let models = state.fleet.models();
    let catalog = match model {
        Some(name) => models
            .get(name)
            .ok_or_else(|| ApiError::ModelNotFound(truncated(name)))?,
        None => models.default_model().ok_or_else(|| {
            let names = models.names();
            if names.is_empty() {
                ApiError::NoModel
            } else {
                ApiError::NoDefaultModel(names.iter().map(|n| n.to_string()).collect())
            }
        })?,
    };
    let guard = catalog.load();
    let served = guard.as_ref().ok_or_else(|| match model {
        Some(name) => ApiError::ModelNotReady(name.to_owned()),
        None => ApiError::NoModel,
    })?;
    Ok(
        match Work::plan(served, body.len(), |s| score_body(s, &body, opts)) {
            Work::Done(scored) => Next::Now(scored.map(|s| score_response(state, s, opts))),
            Work::Blocking(served) => Next::Later(Box::pin(async move {
                let scored =
                    blocking(state, "scoring", move || score_body(&served, &body, opts)).await??;
                Ok(score_response(state, scored, opts))
            })),
        },
    )
}

fn score_response(state: &AppState, scored: Scored, opts: ScoreOptions) -> Response<Full<Bytes>> {
    if opts.record {
        state.metrics.observe_batch(scored.rows);
    }
    let mut resp = json_response(StatusCode::OK, scored.body);
    // A fresh map: `append` is `insert` here, and it is the code hyper's request parsing
    // keeps hot.
    let headers = resp.headers_mut();
    headers.append(X_MODEL_NAME, scored.name);
    headers.append(X_MODEL_VERSION, scored.version);
    resp
}
