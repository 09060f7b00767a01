//! Every metric treeserve exports: names, help, buckets and handles, created once at
//! start-up. The request path writes only its own thread's shard: no label lookups, no
//! atomic that another core writes.
//! Documented in `docs/metrics.md`.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricType};
use prometheus::{Encoder, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

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

const ROUTES: usize = Route::ALL.len();
const CELLS: usize = ROUTES * METHODS.len() * STATUSES.len();
const BUCKETS: usize = DURATION_BUCKETS.len();

/// One thread's request counts and durations. Only its owner thread writes it (plain
/// load + store on atomics), a scrape reads every shard.
#[repr(align(128))]
struct Shard {
    requests: [AtomicU64; CELLS],
    /// Non-cumulative bucket counts; values above the last bound only count in `count`.
    buckets: [[AtomicU64; BUCKETS]; ROUTES],
    count: [AtomicU64; ROUTES],
    sum_nanos: [AtomicU64; ROUTES],
}

impl Shard {
    fn new() -> Self {
        Self {
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            count: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

#[inline]
fn bump(a: &AtomicU64, by: u64) {
    // Single writer: no read-modify-write instruction needed.
    a.store(
        a.load(Ordering::Relaxed).wrapping_add(by),
        Ordering::Relaxed,
    );
}

thread_local! {
    /// This thread's shard of each live `RequestMetrics`, by id.
    static SHARDS: RefCell<Vec<(u64, Arc<Shard>)>> = const { RefCell::new(Vec::new()) };
}

/// `http_requests_total` and `http_request_duration_seconds`, sharded per thread.
struct RequestMetrics {
    id: u64,
    shards: Mutex<Vec<Arc<Shard>>>,
    descs: Vec<Desc>,
}

impl RequestMetrics {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let desc = |name: &str, help: &str, labels: &[&str]| {
            Desc::new(
                format!("{NAMESPACE}_{name}"),
                help.into(),
                labels.iter().map(|l| l.to_string()).collect(),
                Default::default(),
            )
            .expect("valid metric description")
        };
        Self {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            shards: Mutex::new(Vec::new()),
            descs: vec![
                desc(
                    HTTP_REQUESTS_TOTAL,
                    REQUESTS_HELP,
                    &["method", "route", "status"],
                ),
                desc(HTTP_REQUEST_DURATION_SECONDS, DURATION_HELP, &["route"]),
            ],
        }
    }

    #[inline]
    fn with_shard(&self, f: impl FnOnce(&Shard)) {
        SHARDS.with(|cell| {
            let mut shards = cell.borrow_mut();
            if let Some((_, s)) = shards.iter().find(|(id, _)| *id == self.id) {
                return f(s);
            }
            let shard = Arc::new(Shard::new());
            self.shards.lock().expect("shards lock").push(shard.clone());
            f(&shard);
            shards.push((self.id, shard));
        })
    }

    #[inline]
    fn observe(&self, route: Route, method: usize, status: usize, seconds: f64) {
        let r = route as usize;
        let cell = (r * METHODS.len() + method) * STATUSES.len() + status;
        let bucket = DURATION_BUCKETS.partition_point(|&b| b < seconds);
        self.with_shard(|s| {
            bump(&s.requests[cell], 1);
            if bucket < BUCKETS {
                bump(&s.buckets[r][bucket], 1);
            }
            bump(&s.count[r], 1);
            bump(&s.sum_nanos[r], (seconds * 1e9) as u64);
        });
    }
}

fn label(name: &str, value: &str) -> proto::LabelPair {
    let mut l = proto::LabelPair::default();
    l.set_name(name.into());
    l.set_value(value.into());
    l
}

fn family(desc: &Desc, kind: MetricType, metrics: Vec<proto::Metric>) -> proto::MetricFamily {
    let mut f = proto::MetricFamily::default();
    f.set_name(desc.fq_name.clone());
    f.set_help(desc.help.clone());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}

impl Collector for RequestMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let shards = self.shards.lock().expect("shards lock").clone();
        let sum = |f: &dyn Fn(&Shard) -> &AtomicU64| -> u64 {
            shards.iter().map(|s| f(s).load(Ordering::Relaxed)).sum()
        };
        let mut requests = Vec::new();
        for (r, route) in Route::ALL.iter().enumerate() {
            for (m, method) in METHODS.iter().enumerate() {
                for (st, status) in STATUSES.iter().enumerate() {
                    let cell = (r * METHODS.len() + m) * STATUSES.len() + st;
                    let n = sum(&|s| &s.requests[cell]);
                    if n == 0 {
                        continue;
                    }
                    let status = match status {
                        0 => "other".to_string(),
                        code => code.to_string(),
                    };
                    let mut metric = proto::Metric::from_label(vec![
                        label("method", method),
                        label("route", route.as_str()),
                        label("status", &status),
                    ]);
                    let mut c = proto::Counter::default();
                    c.set_value(n as f64);
                    metric.set_counter(c);
                    requests.push(metric);
                }
            }
        }
        let mut durations = Vec::new();
        for (r, route) in Route::ALL.iter().enumerate() {
            let count = sum(&|s| &s.count[r]);
            if count == 0 {
                continue;
            }
            let mut h = proto::Histogram::default();
            h.set_sample_count(count);
            h.set_sample_sum(sum(&|s| &s.sum_nanos[r]) as f64 / 1e9);
            let mut cumulative = 0;
            h.set_bucket(
                DURATION_BUCKETS
                    .iter()
                    .enumerate()
                    .map(|(b, &upper)| {
                        cumulative += sum(&|s| &s.buckets[r][b]);
                        let mut bucket = proto::Bucket::default();
                        bucket.set_upper_bound(upper);
                        bucket.set_cumulative_count(cumulative);
                        bucket
                    })
                    .collect(),
            );
            let mut metric = proto::Metric::from_label(vec![label("route", route.as_str())]);
            metric.set_histogram(h);
            durations.push(metric);
        }
        vec![
            family(&self.descs[0], MetricType::COUNTER, requests),
            family(&self.descs[1], MetricType::HISTOGRAM, durations),
        ]
    }
}

const REQUESTS_HELP: &str = "HTTP requests answered, by route template, method and status code.";
const DURATION_HELP: &str =
    "Time from request head received to response ready, in seconds, by route template.";

/// The metric handles.
pub struct Metrics {
    registry: Registry,
    requests: Arc<RequestMetrics>,
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
            Box::new(Shared(requests.clone())) as Box<dyn Collector>,
            Box::new(model_info.clone()),
            Box::new(model_loads.clone()),
            Box::new(build_info),
        ] {
            registry.register(c).expect("unique metric");
        }
        Self {
            registry,
            requests,
            model_info,
            model_loads,
        }
    }

    /// Records one answered request.
    #[inline]
    pub fn observe_request(&self, route: Route, method: &http::Method, status: u16, seconds: f64) {
        self.requests
            .observe(route, method_index(method), status_index(status), seconds);
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
