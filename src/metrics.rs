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

pub use crate::error_type::ErrorType;

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
/// `treeserve_http_requests_in_flight`.
pub const HTTP_REQUESTS_IN_FLIGHT: &str = "http_requests_in_flight";
/// `treeserve_batch_rows` (rows per `/score` request).
pub const BATCH_ROWS: &str = "batch_rows";
/// `treeserve_rejected_requests_total{reason}`.
pub const REJECTED_REQUESTS_TOTAL: &str = "rejected_requests_total";
/// `treeserve_model_last_swap_timestamp_seconds`.
pub const MODEL_LAST_SWAP_TIMESTAMP_SECONDS: &str = "model_last_swap_timestamp_seconds";
/// `treeserve_model_ready`.
pub const MODEL_READY: &str = "model_ready";
/// `treeserve_build_info{version}`.
pub const BUILD_INFO: &str = "build_info";
/// `treeserve_http_request_panics_total`.
pub const HTTP_REQUEST_PANICS_TOTAL: &str = "http_request_panics_total";
/// `treeserve_predictions_total{class,model,version}`.
pub const PREDICTIONS_TOTAL: &str = "predictions_total";
/// `treeserve_drift_psi{feature,model}`.
pub const DRIFT_PSI: &str = "drift_psi";
/// `treeserve_drift_out_of_range_total{feature,model,side}`.
pub const DRIFT_OUT_OF_RANGE_TOTAL: &str = "drift_out_of_range_total";
/// `treeserve_drift_window_rows{model}`.
pub const DRIFT_WINDOW_ROWS: &str = "drift_window_rows";

/// Every metric's name (without the `treeserve_` prefix), each documented in
/// `docs/metrics.md` (a unit test checks that the page names each one).
pub const NAMES: &[&str] = &[
    HTTP_REQUESTS_TOTAL,
    HTTP_REQUEST_DURATION_SECONDS,
    MODEL_INFO,
    MODEL_LOADS_TOTAL,
    HTTP_REQUESTS_IN_FLIGHT,
    BATCH_ROWS,
    REJECTED_REQUESTS_TOTAL,
    MODEL_LAST_SWAP_TIMESTAMP_SECONDS,
    MODEL_READY,
    BUILD_INFO,
    HTTP_REQUEST_PANICS_TOTAL,
    PREDICTIONS_TOTAL,
    DRIFT_PSI,
    DRIFT_OUT_OF_RANGE_TOTAL,
    DRIFT_WINDOW_ROWS,
];

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
    /// Any other path.
    Unmatched,
}

impl Route {
    const ALL: [Route; 19] = [
        Route::Score,
        Route::ModelScore,
        Route::ModelReport,
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
        Route::Unmatched,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Score => "/score",
            Route::ModelScore => "/models/{model}/score",
            Route::ModelReport => "/models/{model}/report",
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
const BUCKETS: usize = DURATION_BUCKETS.len();
/// Request counters of one route: one per (status, method), 200 first.
const CELLS: usize = STATUSES.len() * METHODS.len();

/// One route's part of a shard, laid out so that recording a request writes two cache
/// lines: the duration bucket (the sub-millisecond ones come first), then the sum and the
/// `200` counters, which share a line.
#[repr(C, align(64))]
struct RouteShard {
    /// Non-cumulative duration bucket counts; the last counts durations above every
    /// bound. Their total is the histogram's count (no separate counter to write).
    buckets: [AtomicU64; BUCKETS + 1],
    sum_nanos: AtomicU64,
    /// Answered requests by `status_index * METHODS.len() + method_index`.
    requests: [AtomicU64; CELLS],
}

impl RouteShard {
    fn new() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// One thread's request counts and durations. Only its owner thread writes it (plain
/// load + store on atomics), a scrape reads every shard. A request touches the head's
/// first line (its start and its batch size) and two lines of its route.
#[repr(C, align(128))]
struct Shard {
    /// Requests started on this thread. In flight: started − answered − abandoned,
    /// summed over shards (a request may end on another thread than it started on).
    started: AtomicU64,
    batch_sum: AtomicU64,
    /// Non-cumulative rows-per-request bucket counts, the last above every bound.
    batch_buckets: [AtomicU64; BATCH_BUCKETS.len() + 1],
    /// Requests dropped unanswered.
    abandoned: AtomicU64,
    rejected: [AtomicU64; ErrorType::ALL.len()],
    routes: [RouteShard; ROUTES],
}

impl Shard {
    fn new() -> Self {
        Self {
            started: AtomicU64::new(0),
            batch_sum: AtomicU64::new(0),
            batch_buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            abandoned: AtomicU64::new(0),
            rejected: std::array::from_fn(|_| AtomicU64::new(0)),
            routes: std::array::from_fn(|_| RouteShard::new()),
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

/// The request-path metrics, sharded per thread.
pub struct RequestMetrics {
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
                desc(HTTP_REQUESTS_IN_FLIGHT, "Requests being answered now.", &[]),
                desc(BATCH_ROWS, "Rows per /score request that decoded.", &[]),
                desc(
                    REJECTED_REQUESTS_TOTAL,
                    "Requests refused with a client error, by reason (the error_type of the answer).",
                    &["reason"],
                ),
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
            let shard = self.new_shard();
            f(&shard);
            shards.push((self.id, shard));
        })
    }

    /// This thread's first shard. Out of line: a shard is built on the stack (11 KB), and
    /// that frame inlined into the request path would put each call's stack writes on cold
    /// cache lines.
    #[cold]
    #[inline(never)]
    fn new_shard(&self) -> Arc<Shard> {
        let shard = Arc::new(Shard::new());
        self.shards.lock().expect("shards lock").push(shard.clone());
        shard
    }

    /// Records an answered request (which ends its in-flight mark).
    #[inline]
    fn observe(&self, route: Route, method: usize, status: usize, seconds: f64) {
        let cell = status * METHODS.len() + method;
        let bucket = DURATION_BUCKETS.partition_point(|&b| b < seconds);
        self.with_shard(|s| {
            let r = &s.routes[route as usize];
            bump(&r.buckets[bucket], 1);
            bump(&r.sum_nanos, (seconds * 1e9) as u64);
            bump(&r.requests[cell], 1);
        });
    }
}

/// A histogram from non-cumulative `counts`, one per bound plus the overflow: the sample
/// count is their total.
fn histogram(bounds: &[f64], counts: &[u64], sum: f64) -> proto::Histogram {
    let mut h = proto::Histogram::default();
    h.set_sample_count(counts.iter().sum());
    h.set_sample_sum(sum);
    let mut cumulative = 0;
    h.set_bucket(
        bounds
            .iter()
            .zip(counts)
            .map(|(&upper, &n)| {
                cumulative += n;
                let mut b = proto::Bucket::default();
                b.set_upper_bound(upper);
                b.set_cumulative_count(cumulative);
                b
            })
            .collect(),
    );
    h
}

pub(crate) fn label(name: &str, value: &str) -> proto::LabelPair {
    let mut l = proto::LabelPair::default();
    l.set_name(name.into());
    l.set_value(value.into());
    l
}

pub(crate) fn family(
    desc: &Desc,
    kind: MetricType,
    metrics: Vec<proto::Metric>,
) -> proto::MetricFamily {
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
            // Counters only grow; wrapping so that not even an overflow can panic here.
            shards
                .iter()
                .map(|s| f(s).load(Ordering::Relaxed))
                .fold(0, u64::wrapping_add)
        };
        let mut requests = Vec::new();
        let mut answered = 0u64;
        for (r, route) in Route::ALL.iter().enumerate() {
            for (st, status) in STATUSES.iter().enumerate() {
                for (m, method) in METHODS.iter().enumerate() {
                    let n = sum(&|s| &s.routes[r].requests[st * METHODS.len() + m]);
                    if n == 0 {
                        continue;
                    }
                    answered = answered.wrapping_add(n);
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
            let counts: Vec<u64> = (0..=BUCKETS)
                .map(|b| sum(&|s| &s.routes[r].buckets[b]))
                .collect();
            if counts.iter().all(|&n| n == 0) {
                continue;
            }
            let sum_seconds = sum(&|s| &s.routes[r].sum_nanos) as f64 / 1e9;
            let h = histogram(DURATION_BUCKETS, &counts, sum_seconds);
            let mut metric = proto::Metric::from_label(vec![label("route", route.as_str())]);
            metric.set_histogram(h);
            durations.push(metric);
        }
        // Started last: a request counted as answered above has started (clamped at zero
        // all the same, the shards being read one after another).
        let ended = answered.wrapping_add(sum(&|s| &s.abandoned));
        let in_flight = sum(&|s| &s.started).wrapping_sub(ended) as i64;
        let mut gauge = proto::Gauge::default();
        gauge.set_value(in_flight.max(0) as f64);
        let in_flight = proto::Metric::from_gauge(gauge);
        let batch_counts: Vec<u64> = (0..=BATCH_BUCKETS.len())
            .map(|b| sum(&|s| &s.batch_buckets[b]))
            .collect();
        let mut batch = proto::Metric::default();
        batch.set_histogram(histogram(
            BATCH_BUCKETS,
            &batch_counts,
            sum(&|s| &s.batch_sum) as f64,
        ));
        let rejected = ErrorType::ALL
            .iter()
            .filter_map(|&reason| {
                let n = sum(&|s| &s.rejected[reason as usize]);
                (n > 0).then(|| {
                    let mut m = proto::Metric::from_label(vec![label("reason", reason.as_str())]);
                    let mut c = proto::Counter::default();
                    c.set_value(n as f64);
                    m.set_counter(c);
                    m
                })
            })
            .collect();
        vec![
            family(&self.descs[0], MetricType::COUNTER, requests),
            family(&self.descs[1], MetricType::HISTOGRAM, durations),
            family(&self.descs[2], MetricType::GAUGE, vec![in_flight]),
            family(&self.descs[3], MetricType::HISTOGRAM, vec![batch]),
            family(&self.descs[4], MetricType::COUNTER, rejected),
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
    model_loads: IntCounterVec,
    last_swap: prometheus::Gauge,
    ready: prometheus::IntGauge,
    panics: prometheus::IntCounter,
}

impl std::fmt::Debug for RequestMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestMetrics")
    }
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
        self.requests.with_shard(|s| bump(&s.started, 1));
    }

    /// Records an answered request and ends its in-flight mark, in one shard access.
    #[inline]
    pub fn request_finished(&self, route: Route, method: &http::Method, status: u16, seconds: f64) {
        self.requests
            .observe(route, method_index(method), status_index(status), seconds);
    }

    /// Ends the in-flight mark of a request that was dropped unanswered.
    pub fn request_abandoned(&self) {
        self.requests.with_shard(|s| bump(&s.abandoned, 1));
    }

    /// Records the rows of a decoded `/score` request.
    #[inline]
    pub fn observe_batch(&self, rows: usize) {
        let bucket = BATCH_BUCKETS.partition_point(|&b| b < rows as f64);
        self.requests.with_shard(|s| {
            bump(&s.batch_buckets[bucket], 1);
            bump(&s.batch_sum, rows as u64);
        });
    }

    /// Counts a request refused with a client error or a 503 (`reason` is its
    /// `error_type`).
    pub fn rejected(&self, reason: ErrorType) {
        self.requests
            .with_shard(|s| bump(&s.rejected[reason as usize], 1));
    }

    /// Records that a model version was swapped in now.
    pub fn swapped(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_swap.set(now);
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
mod tests {
    use super::*;

    #[test]
    fn every_metric_and_reason_is_documented() {
        let doc = include_str!("../docs/metrics.md");
        for name in NAMES {
            assert!(
                doc.contains(&format!("| `{NAMESPACE}_{name}` |")),
                "docs/metrics.md has no row for {NAMESPACE}_{name}"
            );
        }
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{NAMESPACE}_{REJECTED_REQUESTS_TOTAL}`")))
            .expect("rejected row");
        for t in ErrorType::ALL {
            // Server errors (500) are not rejections: they are not counted.
            if matches!(t, ErrorType::Internal | ErrorType::VersionUnavailable) {
                continue;
            }
            assert!(
                row.contains(&format!("`{}`", t.as_str())),
                "{t:?} undocumented"
            );
        }
    }

    fn line(m: &Metrics, prefix: &str) -> String {
        let text = String::from_utf8(m.render()).unwrap();
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .to_owned()
    }

    #[test]
    fn in_flight_is_started_minus_answered_and_abandoned_across_threads() {
        let m = Arc::new(Metrics::new());
        // Three start here; one ends on another thread, one is abandoned there.
        (0..3).for_each(|_| m.request_started());
        let other = m.clone();
        std::thread::spawn(move || {
            other.request_finished(Route::Score, &http::Method::POST, 200, 0.000_2);
            other.request_abandoned();
        })
        .join()
        .unwrap();
        assert_eq!(
            line(&m, "treeserve_http_requests_in_flight "),
            "treeserve_http_requests_in_flight 1"
        );
        m.request_finished(Route::Score, &http::Method::POST, 503, 0.000_2);
        assert_eq!(
            line(&m, "treeserve_http_requests_in_flight "),
            "treeserve_http_requests_in_flight 0"
        );
    }

    #[test]
    fn histogram_counts_include_values_above_every_bound() {
        let m = Metrics::new();
        for seconds in [0.000_005, 0.000_3, 60.0] {
            m.request_started();
            m.request_finished(Route::Score, &http::Method::POST, 200, seconds);
        }
        let d = "treeserve_http_request_duration_seconds";
        assert_eq!(
            line(
                &m,
                &format!("{d}_bucket{{route=\"/score\",le=\"0.00001\"}}")
            ),
            format!("{d}_bucket{{route=\"/score\",le=\"0.00001\"}} 1")
        );
        assert_eq!(
            line(&m, &format!("{d}_bucket{{route=\"/score\",le=\"10\"}}")),
            format!("{d}_bucket{{route=\"/score\",le=\"10\"}} 2")
        );
        assert_eq!(
            line(&m, &format!("{d}_bucket{{route=\"/score\",le=\"+Inf\"}}")),
            format!("{d}_bucket{{route=\"/score\",le=\"+Inf\"}} 3")
        );
        assert_eq!(
            line(&m, &format!("{d}_count{{route=\"/score\"}}")),
            format!("{d}_count{{route=\"/score\"}} 3")
        );
        for rows in [1, 100, 20_000] {
            m.observe_batch(rows);
        }
        assert_eq!(
            line(&m, "treeserve_batch_rows_bucket{le=\"10000\"}"),
            "treeserve_batch_rows_bucket{le=\"10000\"} 2"
        );
        assert_eq!(
            line(&m, "treeserve_batch_rows_count"),
            "treeserve_batch_rows_count 3"
        );
        assert_eq!(
            line(&m, "treeserve_batch_rows_sum"),
            "treeserve_batch_rows_sum 20101"
        );
    }
}
