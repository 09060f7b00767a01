//! Test metrics (classification and regression) and the drift baseline's feature
//! statistics.

use crate::model::{ClassMetrics, FeatureStats, Metrics, RegressionMetrics};

/// Accuracy, per-class precision / recall / F1 and the confusion matrix. `predicted`
/// values outside `classes` count as wrong.
pub fn metrics(classes: &[String], actual: &[u32], predicted: &[u32]) -> Metrics {
    let k = classes.len();
    let mut confusion = vec![vec![0u64; k]; k];
    let mut support = vec![0u64; k];
    for (&a, &p) in actual.iter().zip(predicted) {
        support[a as usize] += 1;
        // A prediction outside `classes` (another model's label) is wrong in every column.
        if let Some(cell) = confusion[a as usize].get_mut(p as usize) {
            *cell += 1;
        }
    }
    let correct: u64 = (0..k).map(|c| confusion[c][c]).sum();
    let ratio = |num: u64, den: u64| {
        if den == 0 {
            0.0
        } else {
            num as f64 / den as f64
        }
    };
    let per_class = (0..k)
        .map(|c| {
            let tp = confusion[c][c];
            let support = support[c];
            let predicted_c: u64 = (0..k).map(|a| confusion[a][c]).sum();
            let precision = ratio(tp, predicted_c);
            let recall = ratio(tp, support);
            let f1 = if precision + recall == 0.0 {
                0.0
            } else {
                2.0 * precision * recall / (precision + recall)
            };
            ClassMetrics {
                label: classes[c].clone(),
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect();
    Metrics {
        accuracy: ratio(correct, actual.len() as u64),
        per_class,
        confusion,
    }
}

/// Number of quantile bins in the drift baseline.
pub const DRIFT_BINS: usize = 10;

/// Min, max, mean, population std and decile bins of one feature's values.
pub fn feature_stats(name: &str, values: impl Iterator<Item = f64>) -> FeatureStats {
    let mut v: Vec<f64> = values.filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        // No value seen (every reference value missing): no baseline to drift from.
        v.push(0.0);
    }
    v.sort_by(f64::total_cmp);
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    let mut edges: Vec<f64> = (1..DRIFT_BINS)
        .map(|q| {
            let pos = q as f64 / DRIFT_BINS as f64 * (v.len().saturating_sub(1)) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
        })
        .collect();
    edges.dedup();
    let mut counts = vec![0u64; edges.len() + 1];
    for x in &v {
        counts[edges.partition_point(|e| e < x)] += 1;
    }
    FeatureStats {
        name: name.to_owned(),
        min: v.first().copied().unwrap_or(0.0),
        max: v.last().copied().unwrap_or(0.0),
        mean,
        std: var.sqrt(),
        bin_fractions: counts.iter().map(|&c| c as f64 / n).collect(),
        bin_edges: edges,
    }
}

/// RMSE, MAE and R² of `predicted` against `actual` (R² is NaN when `actual` does not
/// vary; everything is NaN for no rows).
pub fn regression_metrics(actual: &[f64], predicted: &[f64]) -> RegressionMetrics {
    let n = actual.len() as f64;
    let mean = actual.iter().sum::<f64>() / n;
    let (mut se, mut ae, mut tot) = (0.0, 0.0, 0.0);
    for (&y, &p) in actual.iter().zip(predicted) {
        se += (p - y).powi(2);
        ae += (p - y).abs();
        tot += (y - mean).powi(2);
    }
    RegressionMetrics {
        rmse: (se / n).sqrt(),
        mae: ae / n,
        r2: if tot > 0.0 { 1.0 - se / tot } else { f64::NAN },
        rows: actual.len() as u64,
    }
}
