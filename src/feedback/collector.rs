//! The feedback record's metrics, computed at scrape time.

use std::sync::Arc;

use prometheus::core::Desc;
use prometheus::proto::{Metric, MetricFamily, MetricType};

use super::Feedback;
use crate::metrics::{self as m, counter, family, gauge, label};

/// Exposes [`Feedback`]'s figures.
pub struct Collector {
    feedback: Arc<Feedback>,
    descs: Vec<Desc>,
}

impl Collector {
    /// A collector of `feedback`.
    pub fn new(feedback: Arc<Feedback>) -> Self {
        let desc = crate::metrics::desc;
        let mv = &["model", "version"];
        Self {
            feedback,
            descs: vec![
                desc(
                    m::FEEDBACK_LABELS_TOTAL,
                    "Labels posted to /feedback, by outcome.",
                    &["outcome"],
                ),
                desc(
                    m::FEEDBACK_REMEMBERED,
                    "Answers remembered for labels to join.",
                    &[],
                ),
                desc(
                    m::LIVE_LABELS_TOTAL,
                    "Labels joined to a version's answers.",
                    mv,
                ),
                desc(
                    m::LIVE_CORRECT_TOTAL,
                    "Joined labels the version predicted rightly (classifiers).",
                    mv,
                ),
                desc(
                    m::LIVE_WINDOW_LABELS,
                    "Labels behind the live figures (the most recent ones).",
                    mv,
                ),
                desc(
                    m::LIVE_ACCURACY,
                    "Accuracy over the most recent joined labels (classifiers).",
                    mv,
                ),
                desc(
                    m::LIVE_RECALL,
                    "Recall of each true class over the most recent joined labels.",
                    &["class", "model", "version"],
                ),
                desc(
                    m::LIVE_MAE,
                    "Mean absolute error over the most recent joined labels (regressors).",
                    mv,
                ),
                desc(
                    m::LIVE_RMSE,
                    "Root mean squared error over the most recent joined labels (regressors).",
                    mv,
                ),
                desc(
                    m::LIVE_LABEL_DELAY_SECONDS_TOTAL,
                    "Total time from answer to label of the joined labels (divide by live_labels_total).",
                    mv,
                ),
                desc(
                    m::FEEDBACK_FILE_ROWS_TOTAL,
                    "Labelled rows for --feedback-dir: written in completed files, or dropped.",
                    &["outcome"],
                ),
                desc(
                    m::FEEDBACK_FILES_TOTAL,
                    "Feedback files completed (renamed into --feedback-dir).",
                    &[],
                ),
            ],
        }
    }
}

impl prometheus::core::Collector for Collector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let d = &self.descs;
        let outcomes = self
            .feedback
            .outcomes()
            .into_iter()
            .map(|(o, n)| counter(vec![label("outcome", o.as_str())], n as f64))
            .collect();
        let mut f: Vec<Vec<Metric>> = vec![Vec::new(); 8];
        for live in self.feedback.live() {
            let version = live.version.to_string();
            let mv = || vec![label("model", &live.model), label("version", &version)];
            f[0].push(counter(mv(), live.labels as f64));
            f[2].push(gauge(mv(), live.window as f64));
            f[7].push(counter(mv(), live.delay_seconds));
            if let Some(a) = live.accuracy {
                f[1].push(counter(mv(), live.correct as f64));
                f[3].push(gauge(mv(), a));
            }
            for (class, _, recall) in &live.recall {
                if let Some(r) = recall {
                    let labels = vec![
                        label("class", class),
                        label("model", &live.model),
                        label("version", &version),
                    ];
                    f[4].push(gauge(labels, *r));
                }
            }
            if let (Some(mae), Some(rmse)) = (live.mae, live.rmse) {
                f[5].push(gauge(mv(), mae));
                f[6].push(gauge(mv(), rmse));
            }
        }
        let kinds = [
            MetricType::COUNTER,
            MetricType::COUNTER,
            MetricType::GAUGE,
            MetricType::GAUGE,
            MetricType::GAUGE,
            MetricType::GAUGE,
            MetricType::GAUGE,
            MetricType::COUNTER,
        ];
        let mut out = vec![
            family(&d[0], MetricType::COUNTER, outcomes),
            family(
                &d[1],
                MetricType::GAUGE,
                vec![gauge(vec![], self.feedback.remembered() as f64)],
            ),
        ];
        for (i, metrics) in f.into_iter().enumerate() {
            if !metrics.is_empty() {
                out.push(family(&d[i + 2], kinds[i], metrics));
            }
        }
        if let Some(files) = self.feedback.files() {
            let c = files.counts();
            let n = |a: &std::sync::atomic::AtomicU64| {
                a.load(std::sync::atomic::Ordering::Relaxed) as f64
            };
            let rows = vec![
                counter(vec![label("outcome", "written")], n(&c.written)),
                counter(vec![label("outcome", "dropped")], n(&c.dropped)),
            ];
            out.push(family(&d[10], MetricType::COUNTER, rows));
            out.push(family(
                &d[11],
                MetricType::COUNTER,
                vec![counter(vec![], n(&c.files))],
            ));
        }
        out
    }
}
