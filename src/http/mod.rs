//! The HTTP server: hyper 1, HTTP/1.1 and h2c on one port (picked by peeking at a connection's
//! first bytes, see `negotiate`), a plain match on method and path, and thin route adapters
//! over [`crate::protocol`] and [`crate::serving`].

mod catch;
mod conn;
mod error;
mod negotiate;
mod request_id;
mod routes;
mod v2;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tracing::field;

pub use error::ApiError;
use request_id::RequestId;
pub use routes::RequestBody;
use routes::{Next, Step};

use crate::config::ServeConfig;
use crate::metrics::{Metrics, Route};
use crate::serving::Fleet;

/// State shared by every request.
#[derive(Debug)]
pub struct AppState {
    /// The served models.
    pub fleet: Arc<Fleet>,
    /// Metric handles.
    pub metrics: Arc<Metrics>,
    /// Configuration.
    pub config: ServeConfig,
    /// Permits for work handed to blocking threads (large batches, model loads).
    pub blocking: Arc<tokio::sync::Semaphore>,
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    state: Arc<AppState>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

impl Server {
    /// Binds the listen address. Models are loaded by the fleet
    /// ([`crate::serving::Fleet::reload`]), before or after.
    pub async fn bind(state: Arc<AppState>) -> Result<Self, ServeError> {
        let addr = state.config.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        Ok(Self { listener, state })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound socket has an address")
    }

    /// The shared state.
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting and gives in-flight
    /// requests the configured grace period.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        // No http1 timer: hyper would then arm a timer for every request head. The head
        // timeout is enforced per connection by `conn::Connections` instead.
        // No vectored writes: hyper then copies the body behind the head and sends both with
        // one plain `send` instead of a two-part `writev`. Our bodies are small, and the
        // kernel's cost of a two-part write is larger than the copy (docs/benchmarks.md).
        let mut auto = auto::Builder::new(TokioExecutor::new());
        auto.http1()
            .keep_alive(true)
            .header_read_timeout(None)
            .writev(false);
        auto.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(self.state.config.max_h2_streams);
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .keep_alive(true)
            .header_read_timeout(None)
            .writev(false);
        let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(self.state.config.max_h2_streams);
        let builders = Arc::new(negotiate::Builders { http1, http2, auto });
        let connections = conn::Connections::new(self.state.config.header_read_timeout);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let (stream, _) = match accepted {
                        Ok(s) => s,
                        Err(e) => {
                            // EMFILE and friends: back off briefly instead of spinning.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    if connections.count() >= self.state.config.max_connections {
                        self.state.metrics.rejected("too_many_connections");
                        tokio::spawn(refuse(stream));
                        continue;
                    }
                    let state = self.state.clone();
                    let activity = connections.activity();
                    let act = activity.clone();
                    let svc = service_fn(move |req| answer(req, state.clone(), Some(act.begin())));
                    let conn = negotiate::Serving::new(stream, svc, builders.clone());
                    let conn = connections.watch(conn, activity);
                    tokio::spawn(async move {
                        match conn.await {
                            Some(Ok(())) => {}
                            Some(Err(e)) => tracing::debug!(error = %e, "connection ended with an error"),
                            None => tracing::debug!("connection closed: no request head within the timeout"),
                        }
                    });
                }
                () = &mut shutdown => break,
            }
        }
        drop(self.listener);
        let grace = self.state.config.shutdown_grace;
        if tokio::time::timeout(grace, connections.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                open = connections.count(),
                "connections still open after the grace period; closing"
            );
        }
    }
}

/// Answers a connection over `--max-connections` with a 503 and closes it, giving a slow
/// client at most a second.
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    const BODY: &str =
        r#"{"error":"too many connections; retry later","error_type":"too_many_connections"}"#;
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        let _ = stream.write_all(resp.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// The log target of per-request spans and events: `TREESERVE_LOG=treeserve::request=debug`
/// logs every request; errors that are the server's fault are logged at `error` anyway.
pub const REQUEST_LOG_TARGET: &str = "treeserve::request";

/// Answers one request in process, without a connection: routing, limits, prediction,
/// metrics, error mapping and request ids, exactly as for a request read from a socket.
/// For benchmarks and embedding.
pub async fn respond<B: RequestBody>(req: Request<B>, state: &AppState) -> Response<Full<Bytes>> {
    match answer(req, state, None).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
}

/// The handler. `in_progress` (on a connection) ends when the response is ready: the
/// connection's idle clock starts there. Everything up to the body is decided here,
/// without waiting ([`routes::route`]); the future returned holds only what the answer
/// needs after that (it is moved and stored for every request, so it is kept small),
/// and on the hot routes its only wait is for the body.
fn answer<'a, B: RequestBody + 'a, S: routes::StateRef + 'a>(
    req: Request<B>,
    state: S,
    in_progress: Option<conn::RequestGuard>,
) -> impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'a {
    let start = Instant::now();
    let method = req.method().clone();
    // One pass over the headers instead of hashed lookups of custom names.
    let mut ids: Option<Box<Ids>> = None;
    for (name, value) in req.headers() {
        let i = match name.as_str() {
            "x-request-id" => 0,
            "x-ms-request-id" => 1,
            _ => continue,
        };
        ids.get_or_insert_default().client[i] = Some(value.clone());
    }
    // Disabled by default: then creating it is one cached callsite check, and the rest
    // stays out of line.
    let span = if tracing::enabled!(target: REQUEST_LOG_TARGET, tracing::Level::DEBUG) {
        request_span(&method, &mut ids)
    } else {
        tracing::Span::none()
    };
    let mut held = Held {
        in_flight: !state.config.no_metrics,
        state,
    };
    if held.in_flight {
        held.state.metrics.request_started();
    }
    // Panics become 500s: the synchronous steps under `catch_unwind`, the rare boxed
    // futures under `CatchUnwind`. Only the body read is awaited inline.
    let mut step: std::thread::Result<Step<'a, B>> =
        catch::sync(&span, || routes::route(req, &held.state));
    async move {
        let state = &*held.state;
        // The step is matched in place: moving the body and the job out of it would
        // store them twice in this future.
        let caught = match &mut step {
            Ok(Step::Body { route, body, job }) => 'body: {
                let (route, config) = (*route, &state.config);
                // Matched in a statement of its own, so that neither the body read's result
                // nor the job's is kept in this future while a boxed job is awaited.
                let later =
                    match routes::read_body(body, config.max_body_bytes, config.body_read_timeout)
                        .await
                    {
                        Err(e) => break 'body Ok((route, Err(e))),
                        Ok(body) => match catch::sync(&span, || job.finish(state, body)) {
                            Ok(Next::Now(reply)) => break 'body Ok((route, reply)),
                            Ok(Next::Later(l)) => l,
                            Err(payload) => break 'body Err(payload),
                        },
                    };
                catch::CatchUnwind::in_span(later, &span)
                    .await
                    .map(|reply| (route, reply))
            }
            Ok(Step::Later(route, l)) => {
                let route = *route;
                catch::CatchUnwind::in_span(l.as_mut(), &span)
                    .await
                    .map(|reply| (route, reply))
            }
            // Answered from the head, or routing panicked: nothing to wait for.
            Ok(Step::Done(..)) | Err(_) => match step {
                Ok(Step::Done(route, reply)) => Ok((route, *reply)),
                Err(payload) => Err(payload),
                Ok(Step::Body { .. } | Step::Later(..)) => unreachable!("matched above"),
            },
        };
        let (route, result) = caught.unwrap_or_else(|payload| panicked(state, &*payload));
        let mut resp = match result {
            Ok(resp) => resp,
            Err(e) => error_response(state, e, &span, &method, route, &mut ids),
        };
        if let Some(ids) = ids {
            echo_ids(resp.headers_mut(), *ids);
        }
        let end = Instant::now();
        let elapsed = end.duration_since(start);
        // Answered: taking the mark leaves nothing for `Held`'s drop to end.
        if std::mem::take(&mut held.in_flight) {
            state.metrics.request_finished(
                route,
                &method,
                resp.status().as_u16(),
                elapsed.as_secs_f64(),
            );
        }
        if !span.is_disabled() {
            answered_in_span(&span, route, resp.status(), elapsed);
        }
        if let Some(in_progress) = in_progress {
            in_progress.finish(end);
        }
        Ok(resp)
    }
}

/// A request's ids: those its client sent, and the one it is logged under. Boxed where
/// kept, since most requests carry none and the handler's future stays small.
#[derive(Default)]
struct Ids {
    /// `x-request-id` and `x-ms-request-id` as sent.
    client: [Option<HeaderValue>; 2],
    /// The id logs name it by, once something logged it.
    logged: Option<RequestId>,
}

impl Ids {
    /// The id logs name the request by: the client's, or one generated now.
    fn logged(ids: &mut Option<Box<Ids>>) -> &RequestId {
        let ids = ids.get_or_insert_default();
        ids.logged
            .get_or_insert_with(|| RequestId::or_generate(client_id(&ids.client)))
    }
}

/// Answers with the client's ids, and with a generated `x-request-id` when the request
/// was logged without one.
#[cold]
#[inline(never)]
fn echo_ids(headers: &mut header::HeaderMap, ids: Ids) {
    for (name, value) in [X_REQUEST_ID, X_MS_REQUEST_ID].into_iter().zip(ids.client) {
        if let Some(v) = value {
            headers.insert(name, v);
        }
    }
    if let Some(id @ RequestId::Generated(_)) = &ids.logged {
        headers.insert(X_REQUEST_ID, id.header_value());
    }
}

/// The request's span, when request logging is on (then it also gets its id now).
#[cold]
#[inline(never)]
fn request_span(method: &Method, ids: &mut Option<Box<Ids>>) -> tracing::Span {
    let span = tracing::debug_span!(
        target: REQUEST_LOG_TARGET,
        "request",
        id = field::Empty,
        method = %method,
        route = field::Empty,
        status = field::Empty,
    );
    if !span.is_disabled() {
        span.record("id", field::display(Ids::logged(ids)));
    }
    span
}

/// Closes the request's span with its route and status.
#[cold]
#[inline(never)]
fn answered_in_span(
    span: &tracing::Span,
    route: Route,
    status: StatusCode,
    elapsed: std::time::Duration,
) {
    span.record("route", route.as_str());
    span.record("status", status.as_u16());
    span.in_scope(|| {
        tracing::debug!(
            target: REQUEST_LOG_TARGET,
            elapsed_us = elapsed.as_micros() as u64,
            "answered"
        )
    });
}

/// A handler that panicked: a 500, counted (a bug).
#[cold]
#[inline(never)]
fn panicked(state: &AppState, payload: &(dyn std::any::Any + Send)) -> (Route, routes::Reply) {
    state.metrics.panicked();
    let msg = catch::message(payload);
    let e = ApiError::Internal(format!("a bug: the handler panicked: {msg}"));
    (Route::Unmatched, Err(e))
}

/// The error's response; refusals are counted (unless metrics are off), and the error
/// logged with the request id.
#[cold]
#[inline(never)]
fn error_response(
    state: &AppState,
    e: ApiError,
    span: &tracing::Span,
    method: &Method,
    route: Route,
    ids: &mut Option<Box<Ids>>,
) -> Response<Full<Bytes>> {
    let status = e.status();
    if !state.config.no_metrics
        && (status.is_client_error() || status == StatusCode::SERVICE_UNAVAILABLE)
    {
        state.metrics.rejected(e.error_type());
    }
    let id = Ids::logged(ids);
    span.in_scope(|| log_error(&e, id, method, route));
    e.into_response()
}

/// A request's hold on the shared state. Its in-flight mark, if any, ends when the
/// request is answered, or when it is dropped unanswered (the client went away).
struct Held<S: routes::StateRef> {
    state: S,
    in_flight: bool,
}

impl<S: routes::StateRef> Drop for Held<S> {
    fn drop(&mut self) {
        if self.in_flight {
            self.state.metrics.request_abandoned();
        }
    }
}

/// The client's request id: `x-request-id`, else `x-ms-request-id`.
fn client_id(ids: &[Option<HeaderValue>; 2]) -> Option<&HeaderValue> {
    ids[0].as_ref().or(ids[1].as_ref())
}

/// Errors that are the server's fault are logged at `error`; a client's mistakes (which a
/// hostile client could send by the million) only at `debug`.
fn log_error(e: &ApiError, id: &RequestId, method: &Method, route: Route) {
    let status = e.status().as_u16();
    let error_type = e.error_type();
    if e.status().is_server_error()
        && !matches!(
            e,
            ApiError::NoModel
                | ApiError::ModelNotReady(_)
                | ApiError::Draining
                | ApiError::Overloaded(_)
        )
    {
        tracing::error!(
            target: REQUEST_LOG_TARGET,
            request_id = %id, %method, route = route.as_str(), status, error_type, error = %e,
            "request failed"
        );
    } else {
        tracing::debug!(
            target: REQUEST_LOG_TARGET,
            request_id = %id, %method, route = route.as_str(), status, error_type, error = %e,
            "request rejected"
        );
    }
}

const X_REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");
const X_MS_REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-ms-request-id");
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A JSON response with `status`.
pub(crate) fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    // A fresh map: `append` is `insert` here (and shares hyper's hot code).
    resp.headers_mut()
        .append(header::CONTENT_TYPE, APPLICATION_JSON);
    resp
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A body whose bytes never come.
    struct Stalled;

    impl hyper::body::Body for Stalled {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
            Poll::Pending
        }
    }

    fn state() -> AppState {
        let config = ServeConfig::new("models");
        let metrics = Arc::new(Metrics::new());
        let fleet = Arc::new(Fleet::new(
            Arc::new(crate::registry::FsRegistry::new("models")),
            Vec::new(),
            config.catalog_options(),
            metrics.clone(),
        ));
        fleet.reload();
        AppState {
            fleet,
            metrics,
            blocking: Arc::new(tokio::sync::Semaphore::new(1)),
            config,
        }
    }

    fn in_flight(state: &AppState) -> String {
        let text = String::from_utf8(state.metrics.render()).unwrap();
        text.lines()
            .find(|l| l.starts_with("treeserve_http_requests_in_flight "))
            .unwrap()
            .to_owned()
    }

    #[tokio::test]
    async fn a_request_dropped_unanswered_ends_its_in_flight_mark() {
        let state = state();
        let request = || {
            Request::post("/score")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Stalled)
                .unwrap()
        };
        // Dropped while waiting for its body (an HTTP/2 client cancelling the stream).
        let mut waiting = Box::pin(answer(request(), &state, None));
        let timed_out =
            tokio::time::timeout(std::time::Duration::from_millis(20), &mut waiting).await;
        assert!(timed_out.is_err(), "the body never comes");
        assert_eq!(in_flight(&state), "treeserve_http_requests_in_flight 1");
        drop(waiting);
        assert_eq!(in_flight(&state), "treeserve_http_requests_in_flight 0");
        // Dropped before it was ever polled.
        let never_polled = answer(request(), &state, None);
        assert_eq!(in_flight(&state), "treeserve_http_requests_in_flight 1");
        drop(never_polled);
        assert_eq!(in_flight(&state), "treeserve_http_requests_in_flight 0");
        // Answered: the mark ends once, not again when the future is dropped.
        let resp = respond(
            Request::post("/score")
                .body(Full::new(Bytes::from_static(
                    br#"{"SepalLengthCm": 6.6, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4}"#,
                )))
                .unwrap(),
            &state,
        )
        .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(in_flight(&state), "treeserve_http_requests_in_flight 0");
    }

    /// The handler's future is created, moved and stored for every request: its size is
    /// a cost per request (it was 2.8 KB, then 1.6 KB, 704 bytes, now 376; moves of it
    /// were the largest user-space item in profiles, and hyper stores it on cold lines of
    /// the connection). A change that grows it should be noticed.
    #[test]
    fn the_handler_future_stays_small() {
        fn size<A, F: Future>(_: impl FnOnce(A) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        let n = size(
            |(req, state, guard): (Request<hyper::body::Incoming>, Arc<AppState>, _)| {
                answer(req, state, Some(guard))
            },
        );
        assert!(n <= 416, "the handler future is {n} bytes");
    }
}
