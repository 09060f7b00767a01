//! The gate's rules beyond the thresholds: a candidate must beat a baseline that always
//! gives the same answer, and must not be worse than the champion on the champion's own
//! held-out rows.

use super::gate::{Evaluation, GateCheck, GateConfig};
use crate::train::{Dataset, number};

/// What the candidate must beat by [`GateConfig::baseline_margin`].
#[derive(Debug, Clone, PartialEq)]
pub enum Baseline {
    /// Always this class (the majority of the training rows).
    Class(String),
    /// Always this number (the mean of the training targets).
    Mean(f64),
}

/// The candidate on the champion's own held-out rows: not worse than the champion by more
/// than the tolerance (accuracy; a regressor's RMSE by a fraction).
pub fn held_out_rule(
    config: &GateConfig,
    candidate: &Evaluation,
    champion: &Evaluation,
    rows: usize,
) -> GateCheck {
    let t = config.tolerance;
    match (&candidate.regression, &champion.regression) {
        (Some(c), Some(h)) => GateCheck {
            passed: c.rmse <= h.rmse * (1.0 + t),
            detail: format!(
                "on the champion's {rows} held-out rows: RMSE {} ≤ champion's {} + {}% tolerance",
                number(c.rmse),
                number(h.rmse),
                t * 100.0
            ),
        },
        _ => {
            let (c, h) = (candidate.metrics.accuracy, champion.metrics.accuracy);
            GateCheck {
                passed: c >= h - t,
                detail: format!(
                    "on the champion's {rows} held-out rows: accuracy {c:.4} ≥ champion's {h:.4} − {t} tolerance"
                ),
            }
        }
    }
}

/// The candidate must remove at least `baseline_margin` of the baseline's errors on the
/// gate's rows (error rate; a regressor's mean squared error), and beat it.
pub fn baseline_rule(
    config: &GateConfig,
    baseline: &Baseline,
    rows: &Dataset,
    candidate: &Evaluation,
) -> GateCheck {
    let m = config.baseline_margin;
    let n = rows.rows().max(1) as f64;
    match baseline {
        Baseline::Class(label) => {
            let p0 = rows
                .y
                .iter()
                .filter(|&&y| rows.classes[y as usize] == *label)
                .count() as f64
                / n;
            let need = p0 + m * (1.0 - p0);
            let acc = candidate.metrics.accuracy;
            GateCheck {
                passed: acc >= need && acc > p0,
                detail: format!(
                    "accuracy {acc:.4} ≥ {need:.4}: better than always answering {label:?} ({p0:.4}) by {m} of its errors (baseline_margin)"
                ),
            }
        }
        Baseline::Mean(mean) => {
            let base = rows.values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            let mse = candidate
                .regression
                .as_ref()
                .map_or(f64::NAN, |r| r.rmse * r.rmse);
            let need = base * (1.0 - m);
            GateCheck {
                passed: mse <= need && mse < base,
                detail: format!(
                    "MSE {} ≤ {}: better than always answering the training mean {} (MSE {}) \
                     by {m} of its error (baseline_margin)",
                    number(mse),
                    number(need),
                    number(*mean),
                    number(base)
                ),
            }
        }
    }
}
