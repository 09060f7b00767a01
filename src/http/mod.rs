//! The HTTP server: hyper 1, HTTP/1.1 and h2c on one port (picked by peeking at a connection's
//! first bytes, see `negotiate`), a plain match on method and path (`routes`), and thin
//! route adapters (`score`, `v2`, `info`) over the scoring use case
//! ([`crate::serving::Scoring`]) and the wire formats of [`crate::protocol`].

mod body;
mod catch;
mod conn;
mod error;
mod feedback;
mod grpc;
mod handler;
mod info;
mod keys;
mod negotiate;
mod report;
mod request_id;
mod routes;
mod score;
mod step;
mod tabular;
#[cfg(feature = "tls")]
mod tls;
mod v2;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

pub use body::RequestBody;
pub use error::ApiError;
use handler::answer;
#[cfg(feature = "tls")]
pub use tls::{Certs, follow as tls_follow};

use crate::config::ServeConfig;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::serving::{Fleet, Scoring};

/// State shared by every request.
#[derive(Debug)]
pub struct AppState {
    /// The scoring use case (and through it the served models).
    pub scoring: Scoring,
    /// Metric handles.
    pub metrics: Arc<Metrics>,
    /// Configuration.
    pub config: ServeConfig,
    /// Built reports, per model.
    reports: report::Reports,
    /// The API keys, with `--api-keys-file`.
    pub keys: Option<Arc<crate::auth::KeyFile>>,
    /// The certificate and key, with `--tls-cert`.
    #[cfg(feature = "tls")]
    pub tls: Option<Arc<tls::Certs>>,
}

impl AppState {
    /// The state of a server following `registry` as `config` says, with nothing loaded
    /// yet ([`Fleet::reload`] loads it). The one constructor: the application, tests and
    /// benchmarks all build it here.
    pub fn new(config: ServeConfig, registry: Arc<dyn Registry>) -> Self {
        let metrics = Arc::new(Metrics::new());
        let contact = metrics.clone();
        let registry = Arc::new(crate::registry::Cached::new(
            registry,
            config.cache_dir.as_deref(),
            Arc::new(move |up| contact.registry_contact(up)),
        ));
        let fleet = Arc::new(Fleet::new(
            registry,
            config.models.clone(),
            config.catalog_options(),
            metrics.clone(),
        ));
        let scoring = Scoring::new(
            fleet,
            metrics.clone(),
            config.max_batch_rows,
            config.max_blocking_requests,
            !config.no_metrics,
        );
        // Large batches use as many threads as the runtime has workers.
        let scoring = match config.workers {
            Some(w) => scoring.with_batch_threads(w),
            None => scoring,
        };
        let scoring = match config.feedback() {
            Some(options) => {
                let mut feedback = crate::feedback::Feedback::new(options);
                if let Some(files) = config.feedback_files() {
                    // Application::build made the folder; only a thread spawn can fail.
                    match crate::feedback::Files::start(files) {
                        Ok(files) => feedback = feedback.with_files(files),
                        Err(e) => tracing::error!(error = %e, "--feedback-dir: no feedback files"),
                    }
                }
                let feedback = Arc::new(feedback);
                metrics.register(Box::new(crate::feedback::Collector::new(feedback.clone())));
                scoring.with_feedback(feedback)
            }
            None => scoring,
        };
        let scoring = match &config.shadow {
            Some(_) => {
                let feedback = scoring.feedback().cloned();
                match crate::serving::Shadowing::start(config.shadow_queue_rows, feedback) {
                    Ok(q) => {
                        let q = Arc::new(q);
                        metrics.register(Box::new(crate::metrics::ShadowCollector::new(q.clone())));
                        scoring.with_shadowing(q)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "--shadow: cannot start the shadow thread");
                        scoring
                    }
                }
            }
            None => scoring,
        };
        Self {
            scoring,
            metrics,
            config,
            reports: report::Reports::default(),
            keys: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// This state, requiring the keys of `keys` on every route but the probes.
    pub fn with_keys(mut self, keys: Arc<crate::auth::KeyFile>) -> Self {
        self.keys = Some(keys);
        self
    }

    /// The served models.
    #[inline]
    pub fn fleet(&self) -> &Arc<Fleet> {
        self.scoring.fleet()
    }

    /// This state, serving HTTPS (and gRPC over TLS) with `certs`.
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, certs: Arc<tls::Certs>) -> Self {
        self.tls = Some(certs);
        self
    }
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    /// `--grpc-listen`'s listener.
    grpc: Option<TcpListener>,
    state: Arc<AppState>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A model name that cannot be in a registry.
    #[error("invalid model name {0:?}")]
    InvalidModelName(String),
    /// Binding the listen address failed.
    #[error(
        "cannot listen on {addr}: {source} (another server there? pick an address with --listen or TREESERVE_LISTEN)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Nothing to serve at start, and `--wait-for-model` was not given (what to do is in
    /// the message).
    #[error("{0}")]
    NothingToServe(String),
    /// The registry cannot be used (`--registry` refused, or its configuration).
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// `--api-keys-file` cannot be used (what is wrong is in the message).
    #[error("--api-keys-file {0}")]
    ApiKeys(String),
    /// `--tls-cert` / `--tls-key` cannot be used (what is wrong is in the message).
    #[error("{0}")]
    Tls(String),
    /// `--feedback-dir` cannot be used.
    #[error("--feedback-dir {0}")]
    FeedbackDir(String),
}

impl Server {
    /// Binds the listen address. Models are loaded by the fleet
    /// ([`crate::serving::Fleet::reload`]), before or after.
    pub async fn bind(state: Arc<AppState>) -> Result<Self, ServeError> {
        let addr = state.config.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let grpc = match state.config.grpc_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServeError::Bind { addr, source })?,
            ),
            None => None,
        };
        Ok(Self {
            listener,
            grpc,
            state,
        })
    }

    /// The gRPC address bound, with `--grpc-listen`.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc
            .as_ref()
            .map(|l| l.local_addr().expect("bound socket has an address"))
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
        // Request heads are capped (`--max-header-bytes`): hyper's HTTP/1 read buffer
        // never grows past it (a longer head is answered 431), and HTTP/2 header lists
        // over it are refused. HTTP/2 send buffers are capped per stream too, so a client
        // that never opens its receive window holds at most that much per stream
        // (response bodies themselves are shared `Bytes`, e.g. the cached report).
        let config = &self.state.config;
        let head = config.max_header_bytes as usize;
        let mut auto = auto::Builder::new(TokioExecutor::new());
        auto.http1()
            .keep_alive(true)
            .header_read_timeout(None)
            .max_buf_size(head)
            .writev(false);
        auto.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(config.max_h2_streams)
            .max_header_list_size(head as u32)
            .max_send_buf_size(H2_SEND_BUF);
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .keep_alive(true)
            .header_read_timeout(None)
            .max_buf_size(head)
            .writev(false);
        let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(config.max_h2_streams)
            .max_header_list_size(head as u32)
            .max_send_buf_size(H2_SEND_BUF);
        let builders = Arc::new(negotiate::Builders { http1, http2, auto });
        // HTTPS: HTTP/2 or HTTP/1.1 by ALPN; gRPC: HTTP/2 only.
        #[cfg(feature = "tls")]
        let tls = self.state.tls.as_ref().map(|certs| {
            (
                certs.acceptor(&[b"h2", b"http/1.1"]),
                certs.acceptor(&[b"h2"]),
            )
        });
        #[cfg(not(feature = "tls"))]
        let tls: Option<()> = None;
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
                        self.state
                            .metrics
                            .rejected(crate::error_type::ErrorType::TooManyConnections);
                        // Over TLS a plain answer is noise: the connection is closed.
                        if tls.is_none() {
                            tokio::spawn(refuse(stream));
                        }
                        continue;
                    }
                    let state = self.state.clone();
                    let activity = connections.activity();
                    let act = activity.clone();
                    let svc = service_fn(move |req| answer(req, state.clone(), Some(act.begin())));
                    match &tls {
                        #[cfg(feature = "tls")]
                        Some((acceptor, _)) => {
                            let conn = tls::Serving::new(acceptor, stream, svc, builders.clone(), false);
                            spawn_watched(connections.watch(conn, activity));
                        }
                        _ => {
                            let conn = negotiate::Serving::new(stream, svc, builders.clone());
                            spawn_watched(connections.watch(conn, activity));
                        }
                    }
                }
                Some(stream) = accept(self.grpc.as_ref()) => {
                    if connections.count() >= self.state.config.max_connections {
                        self.state
                            .metrics
                            .rejected(crate::error_type::ErrorType::TooManyConnections);
                        continue;
                    }
                    let state = self.state.clone();
                    let activity = connections.activity();
                    let act = activity.clone();
                    let svc = service_fn(move |req| grpc::answer(req, state.clone(), act.begin()));
                    match &tls {
                        #[cfg(feature = "tls")]
                        Some((_, acceptor)) => {
                            let conn = tls::Serving::new(acceptor, stream, svc, builders.clone(), true);
                            spawn_watched(connections.watch(conn, activity));
                        }
                        _ => {
                            let io = hyper_util::rt::TokioIo::new(stream);
                            let conn = grpc::Connection::new(builders.http2.serve_connection(io, svc));
                            spawn_watched(connections.watch(conn, activity));
                        }
                    }
                }
                () = &mut shutdown => break,
            }
        }
        drop(self.listener);
        drop(self.grpc);
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

/// Runs a supervised connection in a task of its own.
fn spawn_watched<C>(conn: conn::Watched<C>)
where
    C: conn::Graceful<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static,
{
    tokio::spawn(async move {
        match conn.await {
            Some(Ok(())) => {}
            Some(Err(e)) => tracing::debug!(error = %e, "connection ended with an error"),
            None => tracing::debug!("connection closed: no request head within the timeout"),
        }
    });
}

/// The next connection on `listener` (never, without one); accept errors back off.
async fn accept(listener: Option<&TcpListener>) -> Option<tokio::net::TcpStream> {
    let Some(listener) = listener else {
        return std::future::pending().await;
    };
    match listener.accept().await {
        Ok((stream, _)) => {
            let _ = stream.set_nodelay(true);
            Some(stream)
        }
        Err(e) => {
            tracing::warn!(error = %e, "gRPC accept failed");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            None
        }
    }
}

/// Most bytes an HTTP/2 stream buffers for a client that does not read (hyper's default
/// is 400 KiB).
const H2_SEND_BUF: usize = 64 * 1024;

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

const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
/// `X-Content-Type-Options: nosniff`: browsers must not guess another type than the one
/// given (a JSON error quoting a path must never run as HTML).
pub(crate) const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");

/// A JSON response with `status`.
pub(crate) fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    // A fresh map: `append` is `insert` here (and shares hyper's hot code).
    let h = resp.headers_mut();
    h.append(header::CONTENT_TYPE, APPLICATION_JSON);
    h.append(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF);
    resp
}
