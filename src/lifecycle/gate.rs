//! The validation gate: a new model (the candidate) is promoted only if it meets the
//! thresholds and is not worse than the current champion, both evaluated on the same
//! held-out rows. A classifier is judged on accuracy, recall and macro F1; a regressor must
//! beat predicting the mean (R² > 0) and its RMSE may not exceed the champion's by more
//! than the tolerance (a fraction of the champion's RMSE).

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::model::{DatasetLink, Metrics, Model, RegressionMetrics};
use crate::train::Dataset;
use crate::train::number;

pub use super::baseline::{Baseline, baseline_rule, held_out_rule};

/// The gate's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateConfig {
    /// The candidate's accuracy on the held-out rows must be at least this.
    pub min_accuracy: f64,
    /// Every class's recall on the held-out rows must be at least this.
    pub min_recall: f64,
    /// The candidate's accuracy and macro F1 may be at most this much below the
    /// champion's; a regressor's RMSE at most this fraction above the champion's.
    pub tolerance: f64,
    /// The share of the baseline's errors the candidate must remove (the baseline: always
    /// the majority class of its training rows, or a regressor's training mean).
    pub baseline_margin: f64,
    /// Let a candidate whose features or target differ from the champion's pass (judged
    /// without the champion).
    pub allow_schema_change: bool,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            min_accuracy: 0.0,
            min_recall: 0.0,
            tolerance: 0.01,
            baseline_margin: 0.25,
            allow_schema_change: false,
        }
    }
}

impl GateConfig {
    /// Reads a JSON gate file (`{"min_accuracy": 0.9, "min_recall": 0.8, "tolerance":
    /// 0.02}`; absent keys keep their defaults).
    pub fn from_json(bytes: &[u8]) -> Result<GateConfig, String> {
        let c: GateConfig = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        c.validate()?;
        Ok(c)
    }

    /// Thresholds are fractions in [0, 1].
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("min_accuracy", self.min_accuracy),
            ("min_recall", self.min_recall),
            ("tolerance", self.tolerance),
            ("baseline_margin", self.baseline_margin),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be between 0 and 1, got {v}"));
            }
        }
        Ok(())
    }
}

/// One rule of the gate and how the candidate fared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateCheck {
    /// Passed?
    pub passed: bool,
    /// The rule and the figures, for people.
    pub detail: String,
}

/// A model's metrics on the gate's held-out rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Registry version (0 for a candidate not yet published).
    pub version: u64,
    /// Metrics on the held-out rows.
    pub metrics: Metrics,
    /// Unweighted mean of the per-class F1 scores (0 for a regressor).
    pub macro_f1: f64,
    /// A regressor's RMSE, MAE and R² on the held-out rows.
    #[serde(default)]
    pub regression: Option<RegressionMetrics>,
}

/// The gate's decision, printed and stored with the candidate's version (record `gate`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Model name.
    pub model: String,
    /// When it was decided, RFC 3339 UTC.
    pub decided: String,
    /// The dataset version the candidate was trained on, if from the registry.
    pub dataset: Option<DatasetLink>,
    /// Held-out rows both models were evaluated on.
    pub held_out_rows: u64,
    /// The thresholds.
    pub config: GateConfig,
    /// The candidate.
    pub candidate: Evaluation,
    /// The champion (the alias's version before the decision), if there was one.
    pub champion: Option<Evaluation>,
    /// Why the champion could not be evaluated, if it could not.
    pub champion_problem: Option<String>,
    /// Every rule.
    pub checks: Vec<GateCheck>,
    /// The alias the candidate is promoted to.
    pub alias: String,
    /// Whether the candidate passed and was promoted.
    pub promoted: bool,
    /// The candidate's held-out rows left out because a model trained on them.
    #[serde(default)]
    pub excluded_rows: u64,
    /// Both models on the champion's own held-out rows the candidate did not train on.
    #[serde(default)]
    pub champion_held_out: Option<HeldOutEvaluation>,
    /// How the rows were chosen, for people.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Both models on the champion's held-out rows (those the candidate did not train on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOutEvaluation {
    /// Rows.
    pub rows: u64,
    /// The candidate.
    pub candidate: Evaluation,
    /// The champion.
    pub champion: Evaluation,
}

impl Decision {
    /// A readable account of the decision.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "gate: {} version {} against {}",
            self.model,
            self.candidate.version,
            match &self.champion {
                Some(c) => format!("{} (version {})", self.alias, c.version),
                None => format!("no {} model", self.alias),
            }
        );
        let _ = writeln!(
            out,
            " on {} held-out rows ({} left out: a model trained on them)",
            self.held_out_rows, self.excluded_rows
        );
        for n in &self.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        let champ = self.champion.as_ref();
        let _ = writeln!(out, "  {:<28} {:>9} {:>9}", "", "candidate", "champion");
        if let Some(r) = &self.candidate.regression {
            let ch = champ.and_then(|c| c.regression.as_ref());
            metric_row(&mut out, "RMSE", r.rmse, ch.map(|c| c.rmse));
            metric_row(&mut out, "MAE", r.mae, ch.map(|c| c.mae));
            metric_row(&mut out, "R²", r.r2, ch.map(|c| c.r2));
        } else {
            self.classification_rows(&mut out);
        }
        if let Some(h) = &self.champion_held_out {
            let _ = writeln!(out, "  on the champion's {} held-out rows:", h.rows);
            match (&h.candidate.regression, &h.champion.regression) {
                (Some(a), Some(b)) => metric_row(&mut out, "RMSE", a.rmse, Some(b.rmse)),
                _ => metric_row(
                    &mut out,
                    "accuracy",
                    h.candidate.metrics.accuracy,
                    Some(h.champion.metrics.accuracy),
                ),
            }
        }
        if let Some(p) = &self.champion_problem {
            let _ = writeln!(out, "  note: {p}");
        }
        for c in &self.checks {
            let _ = writeln!(
                out,
                "  [{}] {}",
                if c.passed { "pass" } else { "FAIL" },
                c.detail
            );
        }
        let _ = writeln!(
            out,
            "  decision: {}",
            if self.promoted {
                format!(
                    "PROMOTED: {} -> version {}",
                    self.alias, self.candidate.version
                )
            } else {
                format!(
                    "NOT PROMOTED: {} stays {}",
                    self.alias,
                    champ.map_or("unset".into(), |c| format!("at version {}", c.version))
                )
            }
        );
        out
    }
}

impl Decision {
    /// A classifier's rows of [`Decision::text`]: accuracy, macro F1, recall by class.
    fn classification_rows(&self, out: &mut String) {
        let champ = self.champion.as_ref();
        metric_row(
            out,
            "accuracy",
            self.candidate.metrics.accuracy,
            champ.map(|c| c.metrics.accuracy),
        );
        metric_row(
            out,
            "macro F1",
            self.candidate.macro_f1,
            champ.map(|c| c.macro_f1),
        );
        for (i, c) in self.candidate.metrics.per_class.iter().enumerate() {
            metric_row(
                out,
                &format!("recall {}", c.label),
                c.recall,
                champ
                    .and_then(|ch| ch.metrics.per_class.get(i))
                    .map(|c| c.recall),
            );
        }
    }
}

/// One line of [`Decision::text`]'s table: the metric, the candidate's, the champion's.
fn metric_row(out: &mut String, name: &str, cand: f64, ch: Option<f64>) {
    let ch = ch.map_or("-".to_string(), number);
    let _ = writeln!(out, "  {name:<28} {:>9} {ch:>9}", number(cand));
}

/// Evaluates `model` on rows `rows` of `data`, matching features and classes by name. A
/// predicted label the data does not have counts as wrong.
pub fn evaluate(
    model: &Model,
    version: u64,
    data: &Dataset,
    rows: &[usize],
) -> Result<Evaluation, String> {
    let cols: Vec<usize> = model
        .features()
        .iter()
        .map(|f| {
            data.features
                .iter()
                .position(|d| d == f)
                .ok_or_else(|| format!("it reads feature {f:?}, which the data does not have"))
        })
        .collect::<Result<_, _>>()?;
    if model.is_regression() != (data.task() == crate::model::Task::Regression) {
        return Err(format!(
            "it is a {}, the data's target is {}",
            if model.is_regression() {
                "regressor"
            } else {
                "classifier"
            },
            if model.is_regression() {
                "class labels"
            } else {
                "numeric"
            }
        ));
    }
    let mut x = vec![0.0; cols.len()];
    if model.is_regression() {
        let mut out = [0.0];
        let (mut actual, mut predicted) = (Vec::new(), Vec::new());
        for &i in rows {
            let row = data.row(i);
            for (slot, &j) in x.iter_mut().zip(&cols) {
                *slot = row[j];
            }
            model.predict_scores(&x, &mut out);
            actual.push(data.values[i]);
            predicted.push(out[0]);
        }
        return Ok(Evaluation {
            version,
            metrics: Metrics {
                accuracy: f64::NAN,
                per_class: Vec::new(),
                confusion: Vec::new(),
            },
            macro_f1: 0.0,
            regression: Some(crate::train::regression_metrics(&actual, &predicted)),
        });
    }
    let class_of: Vec<u32> = model
        .classes()
        .iter()
        .map(|c| data.classes.binary_search(c).map_or(u32::MAX, |i| i as u32))
        .collect();
    let mut actual = Vec::with_capacity(rows.len());
    let mut predicted = Vec::with_capacity(rows.len());
    for &i in rows {
        let row = data.row(i);
        for (slot, &j) in x.iter_mut().zip(&cols) {
            *slot = row[j];
        }
        actual.push(data.y[i]);
        predicted.push(class_of[model.predict(&x)]);
    }
    let metrics = crate::train::metrics(&data.classes, &actual, &predicted);
    let macro_f1 =
        metrics.per_class.iter().map(|c| c.f1).sum::<f64>() / metrics.per_class.len().max(1) as f64;
    Ok(Evaluation {
        version,
        metrics,
        macro_f1,
        regression: None,
    })
}

/// Applies the rules: thresholds on the candidate, then not worse than the champion by
/// more than the tolerance.
pub fn rules(
    config: &GateConfig,
    candidate: &Evaluation,
    champion: Option<&Evaluation>,
) -> Vec<GateCheck> {
    if let Some(r) = &candidate.regression {
        return regression_rules(config, r, champion);
    }
    let mut checks = Vec::new();
    let acc = candidate.metrics.accuracy;
    checks.push(GateCheck {
        passed: acc >= config.min_accuracy,
        detail: format!(
            "accuracy {acc:.4} ≥ {:.4} (min_accuracy)",
            config.min_accuracy
        ),
    });
    let low: Vec<String> = candidate
        .metrics
        .per_class
        .iter()
        .filter(|c| c.recall < config.min_recall)
        .map(|c| format!("{} {:.4}", c.label, c.recall))
        .collect();
    checks.push(GateCheck {
        passed: low.is_empty(),
        detail: if low.is_empty() {
            format!(
                "every class's recall ≥ {:.4} (min_recall)",
                config.min_recall
            )
        } else {
            format!(
                "recall below {:.4} (min_recall): {}",
                config.min_recall,
                low.join(", ")
            )
        },
    });
    if let Some(ch) = champion.filter(|c| c.regression.is_none()) {
        let t = config.tolerance;
        for (name, c, h) in [
            ("accuracy", acc, ch.metrics.accuracy),
            ("macro F1", candidate.macro_f1, ch.macro_f1),
        ] {
            checks.push(GateCheck {
                passed: c >= h - t,
                detail: format!("{name} {c:.4} ≥ champion's {h:.4} − {t} tolerance"),
            });
        }
    }
    checks
}

/// A regressor's rules: better than predicting the mean of the held-out rows (R² > 0), and
/// an RMSE at most `tolerance` (a fraction) above the champion's.
fn regression_rules(
    config: &GateConfig,
    r: &RegressionMetrics,
    champion: Option<&Evaluation>,
) -> Vec<GateCheck> {
    let mut checks = vec![GateCheck {
        passed: r.r2 > 0.0,
        detail: format!(
            "R² {} > 0 (else no better than predicting the mean; RMSE {})",
            number(r.r2),
            number(r.rmse)
        ),
    }];
    if let Some(h) = champion.and_then(|c| c.regression.as_ref()) {
        let t = config.tolerance;
        let limit = h.rmse * (1.0 + t);
        checks.push(GateCheck {
            passed: r.rmse <= limit,
            detail: format!(
                "RMSE {} ≤ champion's {} + {}% tolerance ({})",
                number(r.rmse),
                number(h.rmse),
                t * 100.0,
                number(limit)
            ),
        });
    }
    checks
}
