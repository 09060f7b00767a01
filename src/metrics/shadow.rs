//! The shadow version's figures (`--shadow`), computed at scrape time from
//! [`Shadowing`]: rows scored by both versions, how many they agreed on, requests not
//! shadowed.

use std::sync::Arc;

use prometheus::core::Desc;
use prometheus::proto::{MetricFamily, MetricType};

use super::{self as m, counter, family, gauge, label};
use crate::serving::Shadowing;

/// Exposes [`Shadowing`]'s figures.
pub struct ShadowCollector {
    shadowing: Arc<Shadowing>,
    descs: Vec<Desc>,
}

impl ShadowCollector {
    /// A collector of `shadowing`.
    pub fn new(shadowing: Arc<Shadowing>) -> Self {
        let desc = crate::metrics::desc;
        let pair = &["model", "version", "shadow_version"];
        let per_class = &["class", "model", "version", "shadow_version"];
        Self {
            shadowing,
            descs: vec![
                desc(
                    m::SHADOW_ROWS_TOTAL,
                    "Rows scored by production and the shadow version, by production's class.",
                    per_class,
                ),
                desc(
                    m::SHADOW_AGREED_ROWS_TOTAL,
                    "Of those, rows the shadow version put in the same class (classifiers).",
                    per_class,
                ),
                desc(
                    m::SHADOW_AGREEMENT,
                    "Share of rows the shadow version agreed on, since it was loaded (classifiers).",
                    pair,
                ),
                desc(
                    m::SHADOW_ABS_DIFFERENCE_TOTAL,
                    "Sum of absolute differences between production's and the shadow's values (regressors).",
                    pair,
                ),
                desc(
                    m::SHADOW_MEAN_ABS_DIFFERENCE,
                    "Mean absolute difference between production's and the shadow's values (regressors).",
                    pair,
                ),
                desc(
                    m::SHADOW_DROPPED_REQUESTS_TOTAL,
                    "Requests not shadow-scored: the queue (--shadow-queue-rows) was full.",
                    &[],
                ),
            ],
        }
    }
}

impl prometheus::core::Collector for ShadowCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let d = &self.descs;
        let mut f: Vec<Vec<prometheus::proto::Metric>> = vec![Vec::new(); 5];
        for a in self.shadowing.agreements() {
            let (version, shadow) = (a.version.to_string(), a.shadow_version.to_string());
            let pair = || {
                vec![
                    label("model", &a.model),
                    label("version", &version),
                    label("shadow_version", &shadow),
                ]
            };
            let regression = a.is_regression();
            for (class, n, same) in &a.classes {
                let labels = || {
                    let mut l = vec![label("class", class)];
                    l.extend(pair());
                    l
                };
                f[0].push(counter(labels(), *n as f64));
                if !regression {
                    f[1].push(counter(labels(), *same as f64));
                }
            }
            match a.ratios() {
                (Some(share), _) => f[2].push(gauge(pair(), share)),
                (None, Some(mean)) => {
                    f[3].push(counter(pair(), a.abs_difference));
                    f[4].push(gauge(pair(), mean));
                }
                (None, None) => {}
            }
        }
        let kinds = [
            MetricType::COUNTER,
            MetricType::COUNTER,
            MetricType::GAUGE,
            MetricType::COUNTER,
            MetricType::GAUGE,
        ];
        let mut out: Vec<MetricFamily> = f
            .into_iter()
            .enumerate()
            .filter(|(_, m)| !m.is_empty())
            .map(|(i, m)| family(&d[i], kinds[i], m))
            .collect();
        out.push(family(
            &d[5],
            MetricType::COUNTER,
            vec![counter(vec![], self.shadowing.dropped() as f64)],
        ));
        out
    }
}
