//! The request handler: routing, limits, the body read, panics caught, errors mapped,
//! request ids, metrics and request logs, for every route.

use std::convert::Infallible;
use std::future::Future;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use tracing::field;

use super::body::{RequestBody, read_body};
use super::request_id::RequestId;
use super::step::{Next, Reply, StateRef, Step};
use super::{ApiError, AppState, REQUEST_LOG_TARGET, catch, conn, keys, routes};
use crate::metrics::Route;

/// The handler. `in_progress` (on a connection) ends when the response is ready: the
/// connection's idle clock starts there. Everything up to the body is decided here,
/// without waiting ([`routes::route`]); the future returned holds only what the answer
/// needs after that (it is moved and stored for every request, so it is kept small),
/// and on the hot routes its only wait is for the body.
pub(super) fn answer<'a, B: RequestBody + 'a, S: StateRef + 'a>(
    req: Request<B>,
    state: S,
    in_progress: Option<conn::RequestGuard>,
) -> impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'a {
    let start = Instant::now();
    let method = req.method().clone();
    // One pass over the headers instead of hashed lookups of custom names.
    let mut ids: Option<Box<Ids>> = None;
    let mut host = false;
    let mut head_error = None;
    // The key presented, looked at only when the server requires keys.
    let mut authorization = None;
    let mut x_api_key = None;
    // hyper stops reading a head at `--max-header-bytes` of buffer, but parses one that
    // arrived whole in a larger read: its size is checked here too.
    let mut head_len = req.uri().path().len() + req.uri().query().map_or(0, str::len);
    let canary_key = state.config.canary_key.as_ref();
    let mut drawn = None;
    for (name, value) in req.headers() {
        head_len += name.as_str().len() + value.len() + 4;
        let i = match name.as_str() {
            "x-request-id" => 0,
            "x-ms-request-id" => 1,
            "host" => {
                host = true;
                continue;
            }
            "transfer-encoding" => {
                head_error = head_error.or_else(|| transfer_coding(value));
                continue;
            }
            "authorization" => {
                authorization.get_or_insert(value);
                continue;
            }
            "x-api-key" => {
                x_api_key.get_or_insert(value);
                continue;
            }
            _ if canary_key.is_some_and(|k| k == name) => {
                drawn.get_or_insert_with(|| crate::serving::draw(Some(value.as_bytes())));
                continue;
            }
            _ => continue,
        };
        ids.get_or_insert_default().client[i] = Some(value.clone());
    }
    let limit = state.config.max_header_bytes;
    if head_len as u64 > limit {
        head_error = Some(ApiError::HeadTooLarge { limit });
    }
    // From a connection (in-process requests are built without a Host).
    if !host && in_progress.is_some() && req.version() == http::Version::HTTP_11 {
        head_error = head_error.or(Some(ApiError::MissingHost));
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
    let required = held.state.keys.as_ref().map(|k| {
        let key = keys::presented(authorization, x_api_key).map(<[u8]>::to_vec);
        (k.keys(), key)
    });
    let mut step: std::thread::Result<Step<'a, B>> = match head_error {
        None => catch::sync(&span, || routes::route(req, &held.state)),
        Some(e) => Ok(Step::Done(Route::Unmatched, Box::new(Err(e)))),
    };
    // With a feedback record, every scored answer (`/score`, V2 infer over HTTP,
    // `/invocations`, KServe V1) has an id to label it by; a canary key header picks the
    // version.
    if let Ok(Step::Body { job, .. }) = &mut step
        && job.scores()
    {
        if held.state.scoring.feedback().is_some() {
            let id = Ids::logged(&mut ids);
            job.ask.id = Some(id.answer_id());
            job.ask.at = Some(start);
        }
        job.ask.drawn = drawn;
    }
    if let (Some((keys, key)), Ok(s)) = (required, &step) {
        let route = s.route();
        let need = keys::scope(route, held.state.config.metrics_open);
        if let Err(refusal) = keys.check(key.as_deref(), need) {
            step = Ok(Step::Done(
                route,
                Box::new(Err(ApiError::Unauthorized(refusal))),
            ));
        }
    }
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
                    match read_body(body, config.max_body_bytes, config.body_read_timeout).await {
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

/// A refusal of a `Transfer-Encoding` other than `chunked`: hyper reads `gzip, chunked`
/// as chunked and would hand the handler a still-compressed body.
#[cold]
#[inline(never)]
fn transfer_coding(value: &HeaderValue) -> Option<ApiError> {
    (!value.as_bytes().eq_ignore_ascii_case(b"chunked")).then(|| {
        let v = &value.as_bytes()[..value.len().min(100)];
        ApiError::UnsupportedTransferEncoding(String::from_utf8_lossy(v).into_owned())
    })
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
fn panicked(state: &AppState, payload: &(dyn std::any::Any + Send)) -> (Route, Reply) {
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
    if !state.config.no_metrics && (e.is_clients() || status == StatusCode::SERVICE_UNAVAILABLE) {
        state.metrics.rejected(e.error_type());
    }
    let id = Ids::logged(ids);
    span.in_scope(|| log_error(&e, id, method, route));
    e.into_response()
}

/// A request's hold on the shared state. Its in-flight mark, if any, ends when the
/// request is answered, or when it is dropped unanswered (the client went away).
struct Held<S: StateRef> {
    state: S,
    in_flight: bool,
}

impl<S: StateRef> Drop for Held<S> {
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
    let error_type = e.error_type().as_str();
    if !e.is_clients() && !e.is_transient() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::sync::Arc;
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
        let state = AppState::new(
            crate::ServeConfig::new(std::path::Path::new("models")),
            Arc::new(crate::registry::FsRegistry::new("models")),
        );
        state.fleet().reload();
        state
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
        let resp = super::super::respond(
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
