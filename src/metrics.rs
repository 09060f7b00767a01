//! Every metric treeserve exports: names, help, buckets and handles, created once at
//! start-up. The request path only indexes arrays of ready handles: no label lookups.
//! Documented in `docs/metrics.md`.

use std::sync::OnceLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Prefix of every metric.
pub const NAMESPACE: &str = "treeserve";
/// `treeserve_http_requests_total{route,method,status}`.
pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
/// `treeserve_http_request_duration_seconds{route}`.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";
/// `treeserve_model_info{model,version,sha256}`.
pub const MODEL_INFO: &str = "model_info";
/// `treeserve_model_loads_total{outcome}`.
pub const MODEL_LOADS_TOTAL: &str = "model_loads_total";
/// `treeserve_build_info{version}`.
pub const BUILD_INFO: &str = "build_info";

/// Request duration buckets (seconds): 10 µs to 10 s, dense below a millisecond where
/// this server lives, with 1 ms, 5 ms, 10 ms, 100 ms and 1 s as SLO points.
pub const DURATION_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_075, 0.000_1, 0.000_25, 0.000_5, 0.000_75, 0.001, 0.002_5,
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The bounded `route` label: a route template, or `unmatched` for every unknown path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /score`.
    Score,
    /// `GET /health/live`.
    HealthLive,
    /// `GET /health/ready`.
    HealthReady,
    /// `GET /models`.
    Models,
    /// `GET /metrics`.
    Metrics,
    /// Any other path.
    Unmatched,
}

impl Route {
    const ALL: [Route; 6] = [
        Route::Score,
        Route::HealthLive,
        Route::HealthReady,
        Route::Models,
        Route::Metrics,
        Route::Unmatched,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Score => "/score",
            Route::HealthLive => "/health/live",
            Route::HealthReady => "/health/ready",
            Route::Models => "/models",
            Route::Metrics => "/metrics",
            Route::Unmatched => "unmatched",
        }
    }
}

const METHODS: [&str; 4] = ["GET", "POST", "HEAD", "OTHER"];
const STATUSES: [u16; 12] = [200, 400, 404, 405, 408, 413, 415, 429, 500, 503, 504, 0];

fn method_index(method: &http::Method) -> usize {
    match *method {
        http::Method::GET => 0,
        http::Method::POST => 1,
        http::Method::HEAD => 2,
        _ => 3,
    }
}

fn status_index(status: u16) -> usize {
    STATUSES[..STATUSES.len() - 1]
        .iter()
        .position(|&s| s == status)
        .unwrap_or(STATUSES.len() - 1)
}

type Cells = [[[OnceLock<IntCounter>; STATUSES.len()]; METHODS.len()]; Route::ALL.len()];

/// The metric handles.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_cells: Box<Cells>,
    durations: [Histogram; Route::ALL.len()],
    model_info: IntGaugeVec,
    model_loads: IntCounterVec,
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

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let opts = |name: &str, help: &str| Opts::new(name, help).namespace(NAMESPACE);
        let requests = IntCounterVec::new(
            opts(
                HTTP_REQUESTS_TOTAL,
                "HTTP requests answered, by route template, method and status code.",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let duration_vec = HistogramVec::new(
            HistogramOpts::new(
                HTTP_REQUEST_DURATION_SECONDS,
                "Time from request head received to response ready, in seconds, by route template.",
            )
            .namespace(NAMESPACE)
            .buckets(DURATION_BUCKETS.to_vec()),
            &["route"],
        )
        .expect("valid metric");
        let model_info = IntGaugeVec::new(
            opts(
                MODEL_INFO,
                "The model version being served (value 1), by model, version and artifact SHA-256.",
            ),
            &["model", "version", "sha256"],
        )
        .expect("valid metric");
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
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration_vec.clone()),
            Box::new(model_info.clone()),
            Box::new(model_loads.clone()),
            Box::new(build_info),
        ] {
            registry.register(c).expect("unique metric");
        }
        let durations = Route::ALL.map(|r| duration_vec.with_label_values(&[r.as_str()]));
        Self {
            registry,
            requests,
            request_cells: Box::new(std::array::from_fn(|_| {
                std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new()))
            })),
            durations,
            model_info,
            model_loads,
        }
    }

    /// Records one answered request.
    #[inline]
    pub fn observe_request(&self, route: Route, method: &http::Method, status: u16, seconds: f64) {
        let r = route as usize;
        let (m, s) = (method_index(method), status_index(status));
        self.request_cells[r][m][s]
            .get_or_init(|| {
                let status = match STATUSES[s] {
                    0 => "other".to_string(),
                    code => code.to_string(),
                };
                self.requests
                    .with_label_values(&[route.as_str(), METHODS[m], &status])
            })
            .inc();
        self.durations[r].observe(seconds);
    }

    /// Sets the served model (replacing any earlier one in `model_info`).
    pub fn set_model(&self, model: &str, version: u64, sha256: &str) {
        self.model_info.reset();
        self.model_info
            .with_label_values(&[model, &version.to_string(), sha256])
            .set(1);
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
