//! The request-path metrics: per-thread shards that only their thread writes, added up
//! at each scrape (`treeserve_http_requests_total`, `_duration_seconds`, `_in_flight`,
//! `treeserve_batch_rows`, `treeserve_rejected_requests_total`).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricType};

use super::*;

const METHODS: [&str; 4] = ["GET", "POST", "HEAD", "OTHER"];
const STATUSES: [u16; 14] = [
    200, 400, 401, 403, 404, 405, 408, 413, 415, 429, 500, 503, 504, 0,
];

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
    pub(super) fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
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

    /// Marks a request in progress.
    #[inline]
    pub(super) fn started(&self) {
        self.with_shard(|s| bump(&s.started, 1));
    }

    /// Records an answered request (ending its in-flight mark), in one shard access.
    #[inline]
    pub(super) fn observe(&self, route: Route, method: &http::Method, status: u16, seconds: f64) {
        let cell = status_index(status) * METHODS.len() + method_index(method);
        let bucket = DURATION_BUCKETS.partition_point(|&b| b < seconds);
        self.with_shard(|s| {
            let r = &s.routes[route as usize];
            bump(&r.buckets[bucket], 1);
            bump(&r.sum_nanos, (seconds * 1e9) as u64);
            bump(&r.requests[cell], 1);
        });
    }

    /// Ends the in-flight mark of a request dropped unanswered.
    #[inline]
    pub(super) fn abandoned(&self) {
        self.with_shard(|s| bump(&s.abandoned, 1));
    }

    /// Records the rows of a decoded request.
    #[inline]
    pub(super) fn batch(&self, rows: usize) {
        let bucket = BATCH_BUCKETS.partition_point(|&b| b < rows as f64);
        self.with_shard(|s| {
            bump(&s.batch_buckets[bucket], 1);
            bump(&s.batch_sum, rows as u64);
        });
    }

    /// Counts a refused request.
    #[inline]
    pub(super) fn rejected(&self, reason: ErrorType) {
        self.with_shard(|s| bump(&s.rejected[reason as usize], 1));
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

/// The description of metric `treeserve_NAME` with these labels.
pub(crate) fn desc(name: &str, help: &str, labels: &[&str]) -> Desc {
    Desc::new(
        format!("{NAMESPACE}_{name}"),
        help.into(),
        labels.iter().map(|l| l.to_string()).collect(),
        Default::default(),
    )
    .expect("valid metric description")
}

/// A gauge sample.
pub(crate) fn gauge(labels: Vec<proto::LabelPair>, v: f64) -> proto::Metric {
    let mut m = proto::Metric::from_label(labels);
    let mut g = proto::Gauge::default();
    g.set_value(v);
    m.set_gauge(g);
    m
}

/// A counter sample.
pub(crate) fn counter(labels: Vec<proto::LabelPair>, v: f64) -> proto::Metric {
    let mut m = proto::Metric::from_label(labels);
    let mut c = proto::Counter::default();
    c.set_value(v);
    m.set_counter(c);
    m
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

impl std::fmt::Debug for RequestMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestMetrics")
    }
}
