//! Shadow scoring (`--shadow ALIAS`): every request the alias's version answers is also
//! scored by the shadow version, on a thread of its own. The request's rows and
//! production's predictions are appended to a queue bounded in rows
//! (`--shadow-queue-rows`); a request that does not fit is not shadowed, and counted. The
//! queue never makes a request wait: the worker takes it whole, in batches (pausing a
//! millisecond between them, so that under load it wakes once per batch, not per
//! request), and sleeps when it is empty.
//!
//! Exported: rows scored by both and those where they agree (per production class), or
//! the absolute difference for a regressor; with a feedback record, the shadow's answers
//! are remembered beside production's, so labels give its live accuracy too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::ServedModel;
use crate::feedback::{AnswerId, Answerer, Feedback};

/// Each (model, production version, shadow version)'s agreement.
type Figures = Mutex<HashMap<(String, u64, u64), Agreement>>;

/// How long the worker waits after a batch, so that it takes requests by the hundred
/// under load rather than waking for each.
const BATCH_PAUSE: Duration = Duration::from_millis(1);

/// Requests waiting: their rows in one buffer, in runs of one (shadow, production) pair.
#[derive(Default)]
struct Pending {
    /// Per request: rows × features inputs, then production's prediction per row.
    values: Vec<f64>,
    groups: Vec<Group>,
}

/// Consecutive requests of one pair.
struct Group {
    shadow: Arc<ServedModel>,
    production: Arc<Answerer>,
    /// Per request: its rows and its id (with a feedback record).
    requests: Vec<(usize, Option<AnswerId>)>,
}

/// Agreement of one shadow version with one production version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Agreement {
    /// The model.
    pub model: String,
    /// Production's version.
    pub version: u64,
    /// The shadow's version.
    pub shadow_version: u64,
    /// Per production class: (class, rows, rows the shadow agreed on). One entry with an
    /// empty class for a regressor.
    pub classes: Vec<(String, u64, u64)>,
    /// Sum of absolute differences (regressors).
    pub abs_difference: f64,
}

impl Agreement {
    /// Whether the pair are regressors (one entry, with no class).
    pub fn is_regression(&self) -> bool {
        self.classes.len() == 1 && self.classes[0].0.is_empty()
    }

    /// Rows scored by both, and the rows the shadow agreed on.
    pub fn totals(&self) -> (u64, u64) {
        self.classes
            .iter()
            .fold((0, 0), |(n, a), c| (n + c.1, a + c.2))
    }

    /// The share of rows agreed on (classifiers) and the mean absolute difference
    /// (regressors), once rows were scored.
    pub fn ratios(&self) -> (Option<f64>, Option<f64>) {
        let (rows, agreed) = self.totals();
        if rows == 0 {
            return (None, None);
        }
        if self.is_regression() {
            (None, Some(self.abs_difference / rows as f64))
        } else {
            (Some(agreed as f64 / rows as f64), None)
        }
    }
}

/// The queue, its worker and the figures.
#[derive(Debug)]
pub struct Shadowing {
    pending: Arc<Mutex<Pending>>,
    worker: std::thread::Thread,
    queued_rows: Arc<AtomicUsize>,
    max_rows: usize,
    dropped: AtomicU64,
    figures: Arc<Figures>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("values", &self.values.len())
            .field("groups", &self.groups.len())
            .finish()
    }
}

impl Shadowing {
    /// Starts the worker thread; at most `max_rows` rows wait. With `feedback`, shadow
    /// answers are remembered beside production's.
    pub fn start(max_rows: usize, feedback: Option<Arc<Feedback>>) -> std::io::Result<Self> {
        let pending = Arc::new(Mutex::new(Pending::default()));
        let queued_rows = Arc::new(AtomicUsize::new(0));
        let figures = Arc::new(Mutex::default());
        let (p, q, f) = (pending.clone(), queued_rows.clone(), Arc::clone(&figures));
        let worker = std::thread::Builder::new()
            .name("shadow".into())
            .spawn(move || work(&p, &q, &f, feedback.as_deref()))?
            .thread()
            .clone();
        Ok(Self {
            pending,
            worker,
            queued_rows,
            max_rows,
            dropped: AtomicU64::new(0),
            figures,
        })
    }

    /// Queues `values` (rows × features) and production's answer (`classes`, or a
    /// regressor's `scores`) for `shadow`, unless it is production itself or the queue is
    /// full (then counted).
    pub(super) fn push(
        &self,
        shadow: &Arc<ServedModel>,
        production: &ServedModel,
        values: &[f64],
        classes: &[usize],
        scores: &[f64],
        id: Option<&AnswerId>,
    ) {
        if shadow.id == production.id {
            return;
        }
        let rows = classes.len();
        let queued = self.queued_rows.fetch_add(rows, Ordering::Relaxed);
        if queued + rows > self.max_rows {
            self.queued_rows.fetch_sub(rows, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let id = id.cloned();
        let mut pending = self.pending.lock().expect("shadow queue");
        let first = pending.groups.is_empty();
        pending.values.extend_from_slice(values);
        if production.model.is_regression() {
            pending.values.extend_from_slice(&scores[..rows]);
        } else {
            pending.values.extend(classes.iter().map(|&c| c as f64));
        }
        match pending.groups.last_mut() {
            Some(g)
                if g.shadow.id == shadow.id && Arc::ptr_eq(&g.production, &production.answerer) =>
            {
                g.requests.push((rows, id));
            }
            _ => pending.groups.push(Group {
                shadow: shadow.clone(),
                production: production.answerer.clone(),
                requests: vec![(rows, id)],
            }),
        }
        drop(pending);
        if first {
            // Cheap unless the worker sleeps (then one wake for the whole batch).
            self.worker.unpark();
        }
    }

    /// Requests not shadowed because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Each (production, shadow) pair's agreement so far.
    pub fn agreements(&self) -> Vec<Agreement> {
        let figures = self.figures.lock().expect("shadow figures");
        let mut out: Vec<Agreement> = figures.values().cloned().collect();
        out.sort_by(|a, b| {
            (&a.model, a.version, a.shadow_version).cmp(&(&b.model, b.version, b.shadow_version))
        });
        out
    }
}

fn work(
    pending: &Mutex<Pending>,
    queued_rows: &AtomicUsize,
    figures: &Figures,
    feedback: Option<&Feedback>,
) {
    let mut batch = Pending::default();
    let mut predicted = Vec::new();
    let mut scores = Vec::new();
    loop {
        {
            let mut p = pending.lock().expect("shadow queue");
            if p.groups.is_empty() {
                drop(p);
                std::thread::park();
                continue;
            }
            std::mem::swap(&mut *p, &mut batch);
        }
        let mut at = 0;
        for group in batch.groups.drain(..) {
            let model = &group.shadow.model;
            let f = model.num_features();
            // Held for the group: whoever sees its rows counted can label them.
            let mut figures = figures.lock().expect("shadow figures");
            let agreement = agreement(&mut figures, &group.production, model);
            for (rows, id) in group.requests {
                let job = &batch.values[at..at + rows * (f + 1)];
                at += rows * (f + 1);
                let (inputs, production) = job.split_at(rows * f);
                predicted.clear();
                scores.clear();
                scores.resize(model.num_scores(), 0.0);
                for row in inputs.chunks_exact(f) {
                    predicted.push(if model.is_regression() {
                        model.predict_scores(row, &mut scores);
                        scores[0]
                    } else {
                        model.predict(row) as f64
                    });
                }
                queued_rows.fetch_sub(rows, Ordering::Relaxed);
                if let (Some(feedback), Some(id)) = (feedback, &id) {
                    feedback.remember_beside(
                        id,
                        &group.production,
                        &group.shadow.answerer,
                        &predicted,
                    );
                }
                count(agreement, &group.production, model, production, &predicted);
            }
        }
        batch.values.clear();
        std::thread::sleep(BATCH_PAUSE);
    }
}

/// The pair's agreement so far.
fn agreement<'f>(
    figures: &'f mut HashMap<(String, u64, u64), Agreement>,
    by: &Answerer,
    model: &crate::model::Model,
) -> &'f mut Agreement {
    let key = (by.model.clone(), by.version, model.version());
    figures.entry(key).or_insert_with(|| Agreement {
        model: by.model.clone(),
        version: by.version,
        shadow_version: model.version(),
        classes: if by.classes.is_empty() {
            vec![(String::new(), 0, 0)]
        } else {
            by.classes.iter().map(|c| (c.clone(), 0, 0)).collect()
        },
        abs_difference: 0.0,
    })
}

/// Adds one request's rows to the pair's agreement.
fn count(
    a: &mut Agreement,
    by: &Answerer,
    model: &crate::model::Model,
    production: &[f64],
    predicted: &[f64],
) {
    for (p, s) in production.iter().zip(predicted) {
        if by.classes.is_empty() {
            a.classes[0].1 += 1;
            a.abs_difference += (p - s).abs();
        } else if let Some(c) = a.classes.get_mut(*p as usize) {
            c.1 += 1;
            // The shadow's class index means the same class only if the lists match.
            let same = model.classes().get(*s as usize) == Some(&c.0);
            c.2 += u64::from(same);
        }
    }
}
