//! Shadow scoring (`--shadow ALIAS`): every request the alias's version answers is also
//! scored by the shadow version, on a thread of its own, after the answer is made. The
//! request's rows and production's predictions go on a queue bounded in rows
//! (`--shadow-queue-rows`); a request that does not fit is not shadowed, and counted. The
//! queue never makes a request wait.
//!
//! Exported: rows scored by both and those where they agree (per production class), or
//! the absolute difference for a regressor; with a feedback record, the shadow's answers
//! are remembered beside production's, so labels give its live accuracy too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use super::ServedModel;
use crate::feedback::{Answerer, Feedback};

/// Each (model, production version, shadow version)'s agreement.
type Figures = Mutex<HashMap<(String, u64, u64), Agreement>>;

/// One request to score again.
struct Job {
    shadow: Arc<ServedModel>,
    production: Arc<Answerer>,
    /// Rows × features inputs, then production's prediction per row.
    values: Vec<f64>,
    id: Option<Box<str>>,
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

/// The queue, its worker and the figures.
#[derive(Debug)]
pub struct Shadowing {
    tx: Mutex<Sender<Job>>,
    queued_rows: Arc<AtomicUsize>,
    max_rows: usize,
    dropped: AtomicU64,
    figures: Arc<Figures>,
}

impl Shadowing {
    /// Starts the worker thread; at most `max_rows` rows wait. With `feedback`, shadow
    /// answers are remembered beside production's.
    pub fn start(max_rows: usize, feedback: Option<Arc<Feedback>>) -> std::io::Result<Self> {
        let (tx, rx) = channel();
        let queued_rows = Arc::new(AtomicUsize::new(0));
        let figures = Arc::new(Mutex::default());
        let (q, f) = (queued_rows.clone(), Arc::clone(&figures));
        std::thread::Builder::new()
            .name("shadow".into())
            .spawn(move || work(rx, &q, &f, feedback.as_deref()))?;
        Ok(Self {
            tx: Mutex::new(tx),
            queued_rows,
            max_rows,
            dropped: AtomicU64::new(0),
            figures,
        })
    }

    /// Queues `values` (rows × features) and production's answer (`classes`, or a
    /// regressor's `scores`) for `shadow`, unless it is production itself or the queue is
    /// full (then counted).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn push(
        &self,
        shadow: &Arc<ServedModel>,
        production: &ServedModel,
        values: &[f64],
        classes: &[usize],
        scores: &[f64],
        id: Option<&str>,
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
        let mut v = Vec::with_capacity(values.len() + rows);
        v.extend_from_slice(values);
        if production.model.is_regression() {
            v.extend_from_slice(&scores[..rows]);
        } else {
            v.extend(classes.iter().map(|&c| c as f64));
        }
        let job = Job {
            shadow: shadow.clone(),
            production: production.answerer.clone(),
            values: v,
            id: id.map(Box::from),
        };
        if self.tx.lock().expect("shadow queue").send(job).is_err() {
            self.queued_rows.fetch_sub(rows, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
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
    rx: Receiver<Job>,
    queued_rows: &AtomicUsize,
    figures: &Figures,
    feedback: Option<&Feedback>,
) {
    let mut predicted = Vec::new();
    let mut scores = Vec::new();
    for job in rx {
        let model = &job.shadow.model;
        let f = model.num_features();
        let rows = job.values.len() / (f + 1);
        let (inputs, production) = job.values.split_at(rows * f);
        let regression = model.is_regression();
        predicted.clear();
        scores.clear();
        scores.resize(model.num_scores(), 0.0);
        for row in inputs.chunks_exact(f) {
            predicted.push(if regression {
                model.predict_scores(row, &mut scores);
                scores[0]
            } else {
                model.predict(row) as f64
            });
        }
        queued_rows.fetch_sub(rows, Ordering::Relaxed);
        // Remembered before the figures count the rows: whoever sees them counted can
        // label them.
        if let (Some(feedback), Some(id)) = (feedback, &job.id) {
            feedback.remember_beside(id, &job.production, &job.shadow.answerer, &predicted);
        }
        {
            let by = &job.production;
            let key = (by.model.clone(), by.version, model.version());
            let mut figures = figures.lock().expect("shadow figures");
            let a = figures.entry(key).or_insert_with(|| Agreement {
                model: by.model.clone(),
                version: by.version,
                shadow_version: model.version(),
                classes: if by.classes.is_empty() {
                    vec![(String::new(), 0, 0)]
                } else {
                    by.classes.iter().map(|c| (c.clone(), 0, 0)).collect()
                },
                abs_difference: 0.0,
            });
            for (p, s) in production.iter().zip(&predicted) {
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
    }
}
