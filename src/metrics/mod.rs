//! Every metric treeserve exports: names, help, buckets and handles, created once at
//! start-up. The request path writes only its own thread's shard: no label lookups, no
//! atomic that another core writes.
//! Documented in `docs/metrics.md`.

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto;
use prometheus::{Encoder, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

pub use crate::error_type::ErrorType;

mod names;
mod requests;
mod shadow;
pub use names::*;
use requests::RequestMetrics;
pub(crate) use requests::{counter, desc, family, gauge, label};
pub use shadow::ShadowCollector;

/// Now, in seconds since the Unix epoch.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Request duration buckets (seconds): 10 µs to 10 s, dense below a millisecond where
/// this server lives, with 1 ms, 5 ms, 10 ms, 100 ms and 1 s as SLO points.
pub const DURATION_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_075, 0.000_1, 0.000_25, 0.000_5, 0.000_75, 0.001, 0.002_5,
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Rows-per-request buckets.
pub const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0,
];

/// The bounded `route` label: a route template, or `unmatched` for every unknown path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /score`.
    Score,
    /// `POST /models/{model}/score`.
    ModelScore,
    /// `GET /models/{model}/report`
    ModelReport,
    /// `GET /models/{model}/live`
    ModelLive,
    /// `GET /health/live`.
    HealthLive,
    /// `GET /health/ready`.
    HealthReady,
    /// `GET /models`.
    Models,
    /// `GET /models/{model}`.
    Model,
    /// `GET /metrics`.
    Metrics,
    /// `GET /openapi.json`.
    OpenApi,
    /// `GET /v2`.
    V2Server,
    /// `GET /v2/health/live`.
    V2Live,
    /// `GET /v2/health/ready`.
    V2Ready,
    /// `GET /v2/models/{model}`.
    V2Model,
    /// `GET /v2/models/{model}/ready`.
    V2ModelReady,
    /// `POST /v2/models/{model}/infer`.
    V2Infer,
    /// `GET /v2/models/{model}/versions/{version}`.
    V2Version,
    /// `GET /v2/models/{model}/versions/{version}/ready`.
    V2VersionReady,
    /// `POST /v2/models/{model}/versions/{version}/infer`.
    V2VersionInfer,
    /// `GET /` (Azure ML's liveness).
    Root,
    /// `GET /ping` (MLflow's and SageMaker's health).
    Ping,
    /// `GET /swagger.json` (Azure ML's name for the OpenAPI document).
    Swagger,
    /// `POST /invocations` (MLflow's scoring protocol, SageMaker's contract).
    Invocations,
    /// `POST /models/{model}/invocations`.
    ModelInvocations,
    /// `GET /v1/models/{model}` (KServe V1 / TF Serving).
    V1Model,
    /// `POST /v1/models/{model}:predict`.
    V1Predict,
    /// `POST /feedback`.
    Feedback,
    /// `POST /models/{model}/feedback`.
    ModelFeedback,
    /// gRPC `inference.GRPCInferenceService/ServerLive`.
    GrpcServerLive,
    /// gRPC `ServerReady`.
    GrpcServerReady,
    /// gRPC `ModelReady`.
    GrpcModelReady,
    /// gRPC `ServerMetadata`.
    GrpcServerMetadata,
    /// gRPC `ModelMetadata`.
    GrpcModelMetadata,
    /// gRPC `ModelInfer`.
    GrpcModelInfer,
    /// Any other path (or gRPC method).
    Unmatched,
}

impl Route {
    const ALL: [Route; 35] = [
        Route::Score,
        Route::ModelScore,
        Route::ModelReport,
        Route::ModelLive,
        Route::HealthLive,
        Route::HealthReady,
        Route::Models,
        Route::Model,
        Route::Metrics,
        Route::OpenApi,
        Route::V2Server,
        Route::V2Live,
        Route::V2Ready,
        Route::V2Model,
        Route::V2ModelReady,
        Route::V2Infer,
        Route::V2Version,
        Route::V2VersionReady,
        Route::V2VersionInfer,
        Route::Root,
        Route::Ping,
        Route::Swagger,
        Route::Invocations,
        Route::ModelInvocations,
        Route::V1Model,
        Route::V1Predict,
        Route::Feedback,
        Route::ModelFeedback,
        Route::GrpcServerLive,
        Route::GrpcServerReady,
        Route::GrpcModelReady,
        Route::GrpcServerMetadata,
        Route::GrpcModelMetadata,
        Route::GrpcModelInfer,
        Route::Unmatched,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Score => "/score",
            Route::ModelScore => "/models/{model}/score",
            Route::ModelReport => "/models/{model}/report",
            Route::ModelLive => "/models/{model}/live",
            Route::HealthLive => "/health/live",
            Route::HealthReady => "/health/ready",
            Route::Models => "/models",
            Route::Model => "/models/{model}",
            Route::Metrics => "/metrics",
            Route::OpenApi => "/openapi.json",
            Route::V2Server => "/v2",
            Route::V2Live => "/v2/health/live",
            Route::V2Ready => "/v2/health/ready",
            Route::V2Model => "/v2/models/{model}",
            Route::V2ModelReady => "/v2/models/{model}/ready",
            Route::V2Infer => "/v2/models/{model}/infer",
            Route::V2Version => "/v2/models/{model}/versions/{version}",
            Route::V2VersionReady => "/v2/models/{model}/versions/{version}/ready",
            Route::V2VersionInfer => "/v2/models/{model}/versions/{version}/infer",
            Route::Root => "/",
            Route::Ping => "/ping",
            Route::Swagger => "/swagger.json",
            Route::Invocations => "/invocations",
            Route::ModelInvocations => "/models/{model}/invocations",
            Route::V1Model => "/v1/models/{model}",
            Route::V1Predict => "/v1/models/{model}:predict",
            Route::Feedback => "/feedback",
            Route::ModelFeedback => "/models/{model}/feedback",
            Route::GrpcServerLive => "/inference.GRPCInferenceService/ServerLive",
            Route::GrpcServerReady => "/inference.GRPCInferenceService/ServerReady",
            Route::GrpcModelReady => "/inference.GRPCInferenceService/ModelReady",
            Route::GrpcServerMetadata => "/inference.GRPCInferenceService/ServerMetadata",
            Route::GrpcModelMetadata => "/inference.GRPCInferenceService/ModelMetadata",
            Route::GrpcModelInfer => "/inference.GRPCInferenceService/ModelInfer",
            Route::Unmatched => "unmatched",
        }
    }
}

const REQUESTS_HELP: &str = "HTTP requests answered, by route template, method and status code.";
const DURATION_HELP: &str =
    "Time from request head received to response ready, in seconds, by route template.";

/// The metric handles.
pub struct Metrics {
    registry: Registry,
    requests: Arc<RequestMetrics>,
    model_loads: IntCounterVec,
    last_swap: prometheus::Gauge,
    ready: prometheus::IntGauge,
    panics: prometheus::IntCounter,
    registry_up: prometheus::IntGauge,
    registry_contact: prometheus::Gauge,
    /// 0 before any contact, 1 up, 2 down: what the log last said.
    registry_state: std::sync::atomic::AtomicU8,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Lets the registry own a collector that `Metrics` also keeps.
struct Shared(Arc<RequestMetrics>);

impl Collector for Shared {
    fn desc(&self) -> Vec<&Desc> {
        self.0.desc()
    }
    fn collect(&self) -> Vec<proto::MetricFamily> {
        self.0.collect()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let opts = |name: &str, help: &str| Opts::new(name, help).namespace(NAMESPACE);
        let requests = Arc::new(RequestMetrics::new());
        let model_loads = IntCounterVec::new(
            opts(
                MODEL_LOADS_TOTAL,
                "Model loads attempted, by outcome: success or a bounded failure reason.",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let build_info = IntGaugeVec::new(
            opts(BUILD_INFO, "Build information (value 1)."),
            &["version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let last_swap = prometheus::Gauge::with_opts(opts(
            MODEL_LAST_SWAP_TIMESTAMP_SECONDS,
            "When the served model was last swapped in, in seconds since the Unix epoch.",
        ))
        .expect("valid metric");
        let ready = prometheus::IntGauge::with_opts(opts(
            MODEL_READY,
            "1 while the server is ready: the models it must serve are loaded (/health/ready answers 200), else 0.",
        ))
        .expect("valid metric");
        let registry_up = prometheus::IntGauge::with_opts(opts(
            REGISTRY_UP,
            "1 while the registry answers, 0 while it cannot be reached (the server keeps serving what it loaded, or what --cache-dir holds).",
        ))
        .expect("valid metric");
        let registry_contact = prometheus::Gauge::with_opts(opts(
            REGISTRY_LAST_CONTACT_TIMESTAMP_SECONDS,
            "When the registry last answered, in seconds since the Unix epoch.",
        ))
        .expect("valid metric");
        let panics = prometheus::IntCounter::with_opts(opts(
            HTTP_REQUEST_PANICS_TOTAL,
            "Requests whose handler panicked (a bug): each was answered 500, the server carried on.",
        ))
        .expect("valid metric");
        for c in [
            Box::new(Shared(requests.clone())) as Box<dyn Collector>,
            Box::new(panics.clone()),
            Box::new(ready.clone()),
            Box::new(model_loads.clone()),
            Box::new(build_info),
            Box::new(last_swap.clone()),
            Box::new(registry_up.clone()),
            Box::new(registry_contact.clone()),
            #[cfg(target_os = "linux")]
            Box::new(prometheus::process_collector::ProcessCollector::new(
                std::process::id() as i32,
                NAMESPACE,
            )),
        ] {
            registry.register(c).expect("unique metric");
        }
        Self {
            registry,
            requests,
            model_loads,
            last_swap,
            ready,
            panics,
            registry_up,
            registry_contact,
            registry_state: Default::default(),
        }
    }

    /// Whether the registry answered its last call (false before any call).
    pub fn registry_is_up(&self) -> bool {
        self.registry_up.get() == 1
    }

    /// Records whether a registry call was answered (`true`) or the registry could not be
    /// reached; says so in the log when that changes.
    pub fn registry_contact(&self, up: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        const UP: u8 = 1;
        const DOWN: u8 = 2;
        self.registry_up.set(i64::from(up));
        if up {
            self.registry_contact.set(unix_now());
        }
        let was = self
            .registry_state
            .swap(if up { UP } else { DOWN }, Relaxed);
        match (was, up) {
            (DOWN, true) => tracing::info!("the registry answers again"),
            (w, false) if w != DOWN => tracing::warn!(
                "the registry cannot be reached: serving the versions loaded (or cached with --cache-dir) until it answers (said once until it answers)"
            ),
            _ => {}
        }
    }

    /// Counts a request whose handler panicked.
    pub fn panicked(&self) {
        self.panics.inc();
    }

    /// Marks a request in progress. Every start must be followed by exactly one
    /// [`Metrics::request_finished`] or [`Metrics::request_abandoned`].
    #[inline]
    pub fn request_started(&self) {
        self.requests.started();
    }

    /// Records an answered request and ends its in-flight mark, in one shard access.
    #[inline]
    pub fn request_finished(&self, route: Route, method: &http::Method, status: u16, seconds: f64) {
        self.requests.observe(route, method, status, seconds);
    }

    /// Ends the in-flight mark of a request that was dropped unanswered.
    #[inline]
    pub fn request_abandoned(&self) {
        self.requests.abandoned();
    }

    /// Records the rows of a decoded `/score` request.
    #[inline]
    pub fn observe_batch(&self, rows: usize) {
        self.requests.batch(rows);
    }

    /// Counts a request refused with a client error or a 503 (`reason` is its
    /// `error_type`).
    pub fn rejected(&self, reason: ErrorType) {
        self.requests.rejected(reason);
    }

    /// Records that a model version was swapped in now.
    pub fn swapped(&self) {
        self.last_swap.set(unix_now());
    }

    /// Sets whether the server is ready (`/health/ready` answers 200).
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// Registers another collector (e.g. the served model's statistics).
    pub fn register(&self, collector: Box<dyn Collector>) {
        self.registry.register(collector).expect("unique metric");
    }

    /// Counts a model load by outcome (`success` or a failure reason).
    pub fn model_load(&self, outcome: &str) {
        self.model_loads.with_label_values(&[outcome]).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 * 1024);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        out
    }
}

/// Content type of [`Metrics::render`].
pub const TEXT_FORMAT: &str = prometheus::TEXT_FORMAT;

#[cfg(test)]
mod tests;
