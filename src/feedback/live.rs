//! One version's live quality from joined labels: totals since start, and the figures over
//! the most recent labels (a ring of `(predicted, actual)`).

use std::collections::VecDeque;
use std::time::Duration;

use super::Answerer;

/// A version's joined labels.
#[derive(Debug)]
pub struct Live {
    model: String,
    version: u64,
    classes: Vec<String>,
    /// The most recent `(predicted, actual)`: class indices, or a regressor's values.
    recent: VecDeque<(f64, f64)>,
    cap: usize,
    labels: u64,
    correct: u64,
    delay_sum: Duration,
}

/// What `/metrics` shows of a version.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveFigures {
    /// The model.
    pub model: String,
    /// The version.
    pub version: u64,
    /// Labels joined since start.
    pub labels: u64,
    /// Of those, rightly predicted (classifiers).
    pub correct: u64,
    /// Labels behind the windowed figures.
    pub window: usize,
    /// Accuracy over the window (classifiers).
    pub accuracy: Option<f64>,
    /// Recall of each class over the window: the class, its labels, the share predicted.
    pub recall: Vec<(String, usize, Option<f64>)>,
    /// Mean absolute error over the window (regressors).
    pub mae: Option<f64>,
    /// Root mean squared error over the window (regressors).
    pub rmse: Option<f64>,
    /// Total time from answer to label, seconds.
    pub delay_seconds: f64,
}

impl Live {
    pub(super) fn new(by: &Answerer, cap: usize) -> Self {
        Self {
            model: by.model.clone(),
            version: by.version,
            classes: by.classes.clone(),
            recent: VecDeque::with_capacity(cap.min(4096)),
            cap: cap.max(1),
            labels: 0,
            correct: 0,
            delay_sum: Duration::ZERO,
        }
    }

    pub(super) fn add(&mut self, predicted: f64, actual: f64, delay: Duration) {
        self.labels += 1;
        self.correct += u64::from(!self.classes.is_empty() && predicted == actual);
        self.delay_sum += delay;
        if self.recent.len() == self.cap {
            self.recent.pop_front();
        }
        self.recent.push_back((predicted, actual));
    }

    pub(super) fn figures(&self) -> LiveFigures {
        let n = self.recent.len();
        let mut f = LiveFigures {
            model: self.model.clone(),
            version: self.version,
            labels: self.labels,
            correct: self.correct,
            window: n,
            accuracy: None,
            recall: Vec::new(),
            mae: None,
            rmse: None,
            delay_seconds: self.delay_sum.as_secs_f64(),
        };
        if n == 0 {
            return f;
        }
        if self.classes.is_empty() {
            let (abs, sq) = self.recent.iter().fold((0.0, 0.0), |(a, s), (p, t)| {
                let e = p - t;
                (a + e.abs(), s + e * e)
            });
            f.mae = Some(abs / n as f64);
            f.rmse = Some((sq / n as f64).sqrt());
        } else {
            let right = self.recent.iter().filter(|(p, t)| p == t).count();
            f.accuracy = Some(right as f64 / n as f64);
            f.recall = self
                .classes
                .iter()
                .enumerate()
                .map(|(k, class)| {
                    let k = k as f64;
                    let of = self.recent.iter().filter(|(_, t)| *t == k);
                    let (all, hit) =
                        of.fold((0, 0), |(a, h), (p, _)| (a + 1, h + usize::from(*p == k)));
                    (
                        class.clone(),
                        all,
                        (all > 0).then(|| hit as f64 / all as f64),
                    )
                })
                .collect();
        }
        f
    }
}
