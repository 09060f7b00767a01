//! What a served model has seen: predictions by class, and the input-drift signals against
//! the training baseline stored in its artifact (out-of-range counts and the population
//! stability index over a sliding window).
//!
//! Recording a row costs a few plain adds into this thread's slot (a branchless count over
//! each feature's bin edges); the PSI is computed at scrape time from
//! cumulative counts and snapshots taken by a background tick.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::model::Model;

/// Counter slots: each thread that records takes one for itself while it lives (so its
/// adds are plain load + store, no atomic read-modify-write); the last slot is shared by
/// any threads beyond that, with atomic adds.
const SLOTS: usize = 32;
const SHARED_SLOT: usize = SLOTS - 1;

/// Smallest bin fraction used in the PSI, so an empty bin does not make it infinite.
pub const PSI_EPSILON: f64 = 1e-4;

static SLOT_TAKEN: Mutex<[bool; SHARED_SLOT]> = Mutex::new([false; SHARED_SLOT]);

/// This thread's slot, released when the thread ends.
struct SlotLease(usize);

impl SlotLease {
    fn take() -> Self {
        let mut taken = SLOT_TAKEN.lock().expect("slot lock");
        match taken.iter().position(|t| !t) {
            Some(i) => {
                taken[i] = true;
                SlotLease(i)
            }
            None => SlotLease(SHARED_SLOT),
        }
    }
}

impl Drop for SlotLease {
    fn drop(&mut self) {
        if self.0 != SHARED_SLOT
            && let Ok(mut taken) = SLOT_TAKEN.lock()
        {
            taken[self.0] = false;
        }
    }
}

thread_local! {
    static SLOT: SlotLease = SlotLease::take();
}

#[inline]
fn slot_index() -> usize {
    SLOT.with(|s| s.0)
}

#[inline]
fn add(c: &AtomicU64, exclusive: bool) {
    if exclusive {
        c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    } else {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Layout of one slot's counters.
#[derive(Debug, Clone)]
struct Layout {
    classes: usize,
    /// Per feature, in the model's order: what recording a value needs, together.
    features: Vec<FeatureBins>,
    /// Counters per slot, rounded up to whole cache lines.
    stride: usize,
}

/// One feature's training range and bins, and where its counters are.
#[derive(Debug, Clone)]
struct FeatureBins {
    /// Offset of its `[below, above, bin 0, bin 1, ...]` block.
    offset: usize,
    min: f64,
    max: f64,
    /// Interior bin edges of the training baseline, sorted.
    edges: Box<[f64]>,
}

impl FeatureBins {
    /// The bin of `v`: how many edges are below it (what `partition_point` gives), as a
    /// branchless count over the few edges: the branches of a binary search on request
    /// values mispredict, and its steps form one chain of dependent loads.
    #[inline]
    fn bin(&self, v: f64) -> usize {
        self.edges.iter().map(|e| usize::from(*e < v)).sum()
    }

    /// Number of bins: one more than the edges.
    fn bins(&self) -> usize {
        self.edges.len() + 1
    }
}

/// Counters of one served model.
#[derive(Debug)]
pub struct ModelStats {
    layout: Layout,
    counters: Box<[AtomicU64]>,
    /// Snapshots of the bin counts `(taken at, rows, bins per feature)`, oldest first.
    window: Mutex<VecDeque<(Instant, Vec<u64>)>>,
}

/// One feature's drift signals.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureDrift {
    /// Feature name.
    pub feature: String,
    /// Values below the training minimum, since the model was loaded.
    pub below: u64,
    /// Values above the training maximum, since the model was loaded.
    pub above: u64,
    /// Population stability index over the window (`None` without enough rows).
    pub psi: Option<f64>,
}

impl ModelStats {
    /// Counters for `model`, all zero.
    pub fn new(model: &Model) -> Self {
        let m = model.manifest();
        let classes = model.num_classes();
        let mut offset = classes;
        let features = m
            .feature_stats
            .iter()
            .map(|s| {
                let f = FeatureBins {
                    offset,
                    min: s.min,
                    max: s.max,
                    edges: s.bin_edges.clone().into(),
                };
                offset += 2 + f.bins();
                f
            })
            .collect();
        let stride = offset.div_ceil(16) * 16;
        let layout = Layout {
            classes,
            features,
            stride,
        };
        let bins: usize = layout.features.iter().map(FeatureBins::bins).sum();
        Self {
            counters: (0..stride * SLOTS).map(|_| AtomicU64::new(0)).collect(),
            layout,
            // The window starts at the load, with every count zero.
            window: Mutex::new(VecDeque::from([(Instant::now(), vec![0; bins])])),
        }
    }

    /// Records one predicted row.
    #[inline]
    pub fn record(&self, row: &[f64], class: usize) {
        let l = &self.layout;
        let slot = slot_index();
        let exclusive = slot != SHARED_SLOT;
        let base = slot * l.stride;
        let c = &self.counters[base..base + l.stride];
        if class < l.classes {
            // A regressor has no class counters.
            add(&c[class], exclusive);
        }
        for (&v, f) in row.iter().zip(&l.features) {
            if v.is_nan() {
                // A missing value is in no range and no bin.
                continue;
            }
            let o = f.offset;
            if v < f.min {
                add(&c[o], exclusive);
            } else if v > f.max {
                add(&c[o + 1], exclusive);
            }
            add(&c[o + 2 + f.bin(v)], exclusive);
        }
    }

    fn total(&self, i: usize) -> u64 {
        (0..SLOTS)
            .map(|s| self.counters[s * self.layout.stride + i].load(Ordering::Relaxed))
            .sum()
    }

    /// Predictions per class since the model was loaded.
    pub fn predictions(&self) -> Vec<u64> {
        (0..self.layout.classes).map(|c| self.total(c)).collect()
    }

    /// Cumulative bin counts of every feature, concatenated.
    fn bins(&self) -> Vec<u64> {
        let l = &self.layout;
        l.features
            .iter()
            .flat_map(|f| (0..f.bins()).map(move |b| f.offset + 2 + b))
            .map(|i| self.total(i))
            .collect()
    }

    /// Records a snapshot for the sliding window and drops those older than `window`.
    pub fn tick(&self, window: Duration) {
        let now = Instant::now();
        let bins = self.bins();
        let mut w = self.window.lock().expect("window lock");
        w.push_back((now, bins));
        while w.len() > 1 && now.duration_since(w[0].0) > window {
            w.pop_front();
        }
    }

    /// (rows, bins) in the window: now minus the oldest snapshot.
    fn window_counts(&self) -> (u64, Vec<u64>) {
        let now = self.bins();
        let base = self
            .window
            .lock()
            .expect("window lock")
            .front()
            .map(|(_, b)| b.clone())
            .unwrap_or_else(|| vec![0; now.len()]);
        let diff: Vec<u64> = now
            .iter()
            .zip(&base)
            .map(|(a, b)| a.saturating_sub(*b))
            .collect();
        let first_feature_bins = self.layout.features.first().map_or(0, FeatureBins::bins);
        (diff[..first_feature_bins].iter().sum(), diff)
    }

    /// Rows in the window, and drift signals per feature (PSI only once the window holds
    /// `min_rows` rows).
    pub fn drift(&self, model: &Model, min_rows: u64) -> (u64, Vec<FeatureDrift>) {
        let l = &self.layout;
        let (rows, window) = self.window_counts();
        let mut at = 0;
        let features = model
            .manifest()
            .feature_stats
            .iter()
            .zip(&l.features)
            .map(|(s, f)| {
                let counts = &window[at..at + f.bins()];
                at += f.bins();
                let psi = (rows >= min_rows).then(|| psi(counts, &s.bin_fractions));
                FeatureDrift {
                    feature: s.name.clone(),
                    below: self.total(f.offset),
                    above: self.total(f.offset + 1),
                    psi,
                }
            })
            .collect();
        (rows, features)
    }
}

/// Population stability index of observed bin `counts` against `expected` fractions:
/// Σ (a − e) · ln(a / e), fractions floored at [`PSI_EPSILON`]. Below 0.1: stable;
/// 0.1–0.2: moderate shift; above 0.2: significant shift.
pub fn psi(counts: &[u64], expected: &[f64]) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0.0;
    }
    counts
        .iter()
        .zip(expected)
        .map(|(&c, &e)| {
            let a = (c as f64 / total as f64).max(PSI_EPSILON);
            let e = e.max(PSI_EPSILON);
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// Exposes the served models and their statistics: `treeserve_model_info`,
/// `treeserve_predictions_total`, `treeserve_drift_psi`,
/// `treeserve_drift_out_of_range_total`, `treeserve_drift_window_rows`.
pub struct ModelCollector {
    fleet: std::sync::Arc<crate::serving::Fleet>,
    min_rows: u64,
    descs: Vec<prometheus::core::Desc>,
}

impl ModelCollector {
    /// A collector reading `fleet`'s models; PSI needs `min_rows` rows in the window.
    pub fn new(fleet: std::sync::Arc<crate::serving::Fleet>, min_rows: u64) -> Self {
        let desc = crate::metrics::desc;
        Self {
            fleet,
            min_rows,
            descs: vec![
                desc(
                    crate::metrics::MODEL_INFO,
                    "The version each model's alias serves (value 1), by model, version and artifact SHA-256.",
                    &["model", "sha256", "version"],
                ),
                desc(
                    crate::metrics::PREDICTIONS_TOTAL,
                    "Rows predicted, by model, version and predicted class.",
                    &["class", "model", "version"],
                ),
                desc(
                    crate::metrics::DRIFT_PSI,
                    "Population stability index of each feature over the drift window, against the training data (over 0.2: significant shift).",
                    &["feature", "model"],
                ),
                desc(
                    crate::metrics::DRIFT_OUT_OF_RANGE_TOTAL,
                    "Input values outside the training range, by feature and side (below or above), since the version was loaded.",
                    &["feature", "model", "side"],
                ),
                desc(
                    crate::metrics::DRIFT_WINDOW_ROWS,
                    "Rows in the current drift window.",
                    &["model"],
                ),
                desc(
                    crate::metrics::MODEL_TEST_ACCURACY,
                    "Accuracy of the alias's version on its held-out test rows (classifiers with labelled test rows): the bar live accuracy is held to.",
                    &["model", "version"],
                ),
            ],
        }
    }
}

impl prometheus::core::Collector for ModelCollector {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        use crate::metrics::{family, label};
        use prometheus::proto::{Counter, Gauge, Metric, MetricType};
        let counter = |labels, v: u64| {
            let mut m = Metric::from_label(labels);
            let mut c = Counter::default();
            c.set_value(v as f64);
            m.set_counter(c);
            m
        };
        let gauge = |labels, v: f64| {
            let mut m = Metric::from_label(labels);
            let mut g = Gauge::default();
            g.set_value(v);
            m.set_gauge(g);
            m
        };
        let (mut infos, mut predictions, mut psis, mut ranges, mut rows) =
            (vec![], vec![], vec![], vec![], vec![]);
        let mut accuracies = vec![];
        let models = self.fleet.models_full();
        for catalog in models.iter() {
            let current = catalog.current();
            let pinned = catalog.pinned_loaded();
            for served in current.iter().chain(&pinned) {
                let model = &served.model;
                for (class, n) in model.classes().iter().zip(served.stats.predictions()) {
                    predictions.push(counter(
                        vec![
                            label("class", class),
                            label("model", model.name()),
                            label("version", &served.version_text),
                        ],
                        n,
                    ));
                }
            }
            let Some(served) = current else { continue };
            let model = &served.model;
            let name = model.name();
            infos.push(gauge(
                vec![
                    label("model", name),
                    label("sha256", model.sha256()),
                    label("version", &served.version_text),
                ],
                1.0,
            ));
            let (window_rows, drift) = served.stats.drift(model, self.min_rows);
            for d in drift {
                if let Some(p) = d.psi {
                    psis.push(gauge(
                        vec![label("feature", &d.feature), label("model", name)],
                        p,
                    ));
                }
                for (side, n) in [("below", d.below), ("above", d.above)] {
                    ranges.push(counter(
                        vec![
                            label("feature", &d.feature),
                            label("model", name),
                            label("side", side),
                        ],
                        n,
                    ));
                }
            }
            rows.push(gauge(vec![label("model", name)], window_rows as f64));
            let accuracy = model.manifest().metrics.accuracy;
            if accuracy.is_finite() {
                accuracies.push(gauge(
                    vec![label("model", name), label("version", &served.version_text)],
                    accuracy,
                ));
            }
        }
        vec![
            family(&self.descs[0], MetricType::GAUGE, infos),
            family(&self.descs[1], MetricType::COUNTER, predictions),
            family(&self.descs[2], MetricType::GAUGE, psis),
            family(&self.descs[3], MetricType::COUNTER, ranges),
            family(&self.descs[4], MetricType::GAUGE, rows),
            family(&self.descs[5], MetricType::GAUGE, accuracies),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_is_zero_for_the_baseline_and_grows_with_shift() {
        let e = [0.25, 0.25, 0.25, 0.25];
        assert!(psi(&[100, 100, 100, 100], &e).abs() < 1e-12);
        let small = psi(&[110, 95, 100, 95], &e);
        let big = psi(&[0, 0, 100, 300], &e);
        assert!(small > 0.0 && small < 0.1, "{small}");
        assert!(big > 0.2, "{big}");
        assert_eq!(psi(&[0, 0, 0, 0], &e), 0.0);
    }

    proptest::proptest! {
        /// The branchless count agrees with `partition_point` for any sorted edges
        /// (duplicates and infinities included) and any value, NaN included.
        #[test]
        fn bin_is_partition_point(
            mut edges in proptest::collection::vec(
                proptest::prop_oneof![
                    -1e3..1e3f64,
                    proptest::sample::select(vec![0.0, 1.0, f64::INFINITY, f64::NEG_INFINITY]),
                ],
                0..40,
            ),
            v in proptest::prop_oneof![
                -1.1e3..1.1e3f64,
                proptest::sample::select(vec![0.0, 1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY]),
            ],
        ) {
            edges.sort_by(f64::total_cmp);
            let expected = edges.partition_point(|e| *e < v);
            let f = FeatureBins { offset: 0, min: 0.0, max: 0.0, edges: edges.into() };
            proptest::prop_assert_eq!(f.bin(v), expected);
        }
    }
}
