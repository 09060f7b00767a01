//! The Open Inference Protocol over gRPC (KServe's `inference.GRPCInferenceService`, what
//! `tritonclient.grpc` calls) on `--grpc-listen`: tonic's framing, status and message
//! limits on the server's own HTTP/2 connections, a thin adapter over the scoring use case
//! like every other protocol. Errors are the HTTP routes' errors with a gRPC code
//! ([`ApiError::grpc_code`]), their message the JSON error's, their `error_type` in the
//! `treeserve-error-type` trailer; each RPC is a `route` in the request metrics.

mod raw;
mod rpc;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response};
use hyper::body::Body;
use tonic::{Code, Status};

use super::{ApiError, AppState, catch, conn, keys};
use crate::metrics::Route;
use raw::{Deadline, RawCodec};

/// The service's path prefix.
const SERVICE: &str = "/inference.GRPCInferenceService/";

/// The trailer naming the error's `error_type`.
const ERROR_TYPE: &str = "treeserve-error-type";

/// The RPCs served, by method name.
fn route(path: &str) -> Route {
    match path.strip_prefix(SERVICE) {
        Some("ServerLive") => Route::GrpcServerLive,
        Some("ServerReady") => Route::GrpcServerReady,
        Some("ModelReady") => Route::GrpcModelReady,
        Some("ServerMetadata") => Route::GrpcServerMetadata,
        Some("ModelMetadata") => Route::GrpcModelMetadata,
        Some("ModelInfer") => Route::GrpcModelInfer,
        _ => Route::Unmatched,
    }
}

/// Answers one gRPC call: the route, the key, the call under the limits, the metrics.
pub(super) async fn answer<B>(
    req: Request<B>,
    state: Arc<AppState>,
    in_progress: conn::RequestGuard,
) -> Result<Response<tonic::body::Body>, Infallible>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    let start = Instant::now();
    let metrics = !state.config.no_metrics;
    if metrics {
        state.metrics.request_started();
    }
    let route = route(req.uri().path());
    let refused = state.keys.as_ref().and_then(|k| {
        let h = req.headers();
        let key = keys::presented(h.get("authorization"), h.get("x-api-key"));
        let need = keys::scope(route, state.config.metrics_open);
        k.keys().check(key, need).err()
    });
    let resp = if let Some(refusal) = refused {
        error_status(&state, route, ApiError::Unauthorized(refusal)).into_http()
    } else if route == Route::Unmatched {
        let path = crate::serving::truncated(req.uri().path());
        let status = Status::unimplemented(format!(
            "no RPC {path}: this server answers inference.GRPCInferenceService's ServerLive, \
             ServerReady, ModelReady, ServerMetadata, ModelMetadata and ModelInfer"
        ));
        if metrics {
            state
                .metrics
                .rejected(crate::error_type::ErrorType::NotFound);
        }
        status.into_http()
    } else {
        let timeout = state.config.body_read_timeout;
        let req = req.map(|b| Deadline::new(b, timeout));
        let limit = state.config.max_body_bytes;
        let mut grpc = tonic::server::Grpc::new(RawCodec).max_decoding_message_size(limit);
        let call = rpc::Call {
            state: state.clone(),
            route,
        };
        match catch::CatchUnwind::in_span(grpc.unary(call, req), &tracing::Span::none()).await {
            Ok(resp) => resp,
            Err(payload) => {
                state.metrics.panicked();
                let msg = catch::message(&*payload);
                let e = ApiError::Internal(format!("a bug: the handler panicked: {msg}"));
                error_status(&state, route, e).into_http()
            }
        }
    };
    let end = Instant::now();
    in_progress.finish(end);
    if metrics {
        let code = resp
            .headers()
            .get("grpc-status")
            .map_or(Code::Ok, |v| Code::from_bytes(v.as_bytes()));
        state.metrics.request_finished(
            route,
            &Method::POST,
            http_status(code),
            end.duration_since(start).as_secs_f64(),
        );
    }
    Ok(resp)
}

type Http2<S> = hyper::server::conn::http2::Connection<
    hyper_util::rt::TokioIo<tokio::net::TcpStream>,
    S,
    hyper_util::rt::TokioExecutor,
>;

/// What a connection's service is.
pub(super) trait GrpcService:
    hyper::service::HttpService<
        hyper::body::Incoming,
        ResBody = tonic::body::Body,
        Error = Infallible,
        Future: Send + 'static,
    >
{
}

impl<S> GrpcService for S where
    S: hyper::service::HttpService<
            hyper::body::Incoming,
            ResBody = tonic::body::Body,
            Error = Infallible,
            Future: Send + 'static,
        >
{
}

pin_project_lite::pin_project! {
    /// A gRPC connection (HTTP/2 only), shut down gracefully with the server.
    pub(super) struct Connection<S: GrpcService> {
        #[pin]
        conn: Http2<S>,
    }
}

impl<S: GrpcService> Connection<S> {
    pub(super) fn new(conn: Http2<S>) -> Self {
        Self { conn }
    }
}

impl<S: GrpcService> std::future::Future for Connection<S> {
    type Output = Result<(), Box<dyn std::error::Error + Send + Sync>>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        self.project().conn.poll(cx).map_err(Into::into)
    }
}

impl<S: GrpcService> conn::Graceful for Connection<S> {
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>) {
        self.project().conn.graceful_shutdown();
    }
}

/// The status answering `e` (counted and logged as over HTTP).
fn error_status(state: &AppState, route: Route, e: ApiError) -> Status {
    let status = e.status();
    if !state.config.no_metrics
        && (e.is_clients() || status == http::StatusCode::SERVICE_UNAVAILABLE)
    {
        state.metrics.rejected(e.error_type());
    }
    if !e.is_clients() && !e.is_transient() {
        tracing::error!(
            target: super::REQUEST_LOG_TARGET,
            route = route.as_str(), error_type = e.error_type().as_str(), error = %e,
            "request failed"
        );
    }
    let mut s = Status::new(e.grpc_code(), e.to_string());
    s.metadata_mut().insert(
        ERROR_TYPE,
        tonic::metadata::MetadataValue::from_static(e.error_type().as_str()),
    );
    s
}

/// The HTTP status a gRPC code is counted under in the request metrics (the status the
/// same error has over HTTP, where the code tells it).
fn http_status(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::InvalidArgument | Code::FailedPrecondition => 400,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        Code::NotFound | Code::Unimplemented => 404,
        Code::ResourceExhausted | Code::OutOfRange => 413,
        Code::Unavailable => 503,
        Code::DeadlineExceeded => 504,
        Code::Cancelled => 0,
        _ => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_has_a_route() {
        for (m, r) in [
            ("ServerLive", Route::GrpcServerLive),
            ("ModelInfer", Route::GrpcModelInfer),
            ("ModelMetadata", Route::GrpcModelMetadata),
        ] {
            assert_eq!(route(&format!("{SERVICE}{m}")), r);
        }
        assert_eq!(
            route("/inference.GRPCInferenceService/ModelStreamInfer"),
            Route::Unmatched
        );
        assert_eq!(route("/other.Service/ServerLive"), Route::Unmatched);
    }
}
