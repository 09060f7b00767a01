//! The human-readable training report.

use std::fmt::Write;

use crate::model::{Manifest, Task};

/// A metric with 4 decimals, or `-` when it is not a number.
pub(crate) fn number(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "-".into()
    }
}

/// Renders accuracy, per-class precision / recall / F1 and the confusion matrix as a table;
/// for a regressor, RMSE, MAE and R² on the test rows.
pub fn render_report(m: &Manifest) -> String {
    let mut s = String::new();
    let t = &m.training;
    let _ = writeln!(
        s,
        "model {}  algorithm {}  features {}  {}",
        m.name,
        m.algorithm.as_str(),
        m.features.len(),
        match m.task {
            Task::Classification => format!("classes {}", m.classes.len()),
            Task::Regression => format!("regression of {}", m.target),
        }
    );
    let _ = writeln!(
        s,
        "data {} ({} rows, sha256 {})  train {}  test {}  seed {}",
        t.source,
        t.rows,
        &t.sha256[..t.sha256.len().min(12)],
        t.train_rows,
        t.test_rows,
        t.split_seed
    );
    if m.task == Task::Regression {
        match &m.regression_metrics {
            Some(r) => {
                let _ = writeln!(
                    s,
                    "\non {} test rows:  RMSE {}  MAE {}  R² {}",
                    r.rows,
                    number(r.rmse),
                    number(r.mae),
                    number(r.r2)
                );
            }
            None => {
                let _ = writeln!(s, "\nno test metrics");
            }
        }
        return s;
    }
    let _ = writeln!(s, "\naccuracy {:.4}\n", m.metrics.accuracy);
    let w = m
        .classes
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let _ = writeln!(
        s,
        "{:<w$}  {:>9}  {:>9}  {:>9}  {:>7}",
        "class", "precision", "recall", "f1", "support"
    );
    for c in &m.metrics.per_class {
        let _ = writeln!(
            s,
            "{:<w$}  {:>9.4}  {:>9.4}  {:>9.4}  {:>7}",
            c.label, c.precision, c.recall, c.f1, c.support
        );
    }
    let _ = writeln!(s, "\nconfusion matrix (rows: actual, columns: predicted)");
    let cw = w.max(6);
    let _ = write!(s, "{:<w$}", "");
    for c in &m.classes {
        let _ = write!(s, "  {c:>cw$}");
    }
    s.push('\n');
    for (c, row) in m.classes.iter().zip(&m.metrics.confusion) {
        let _ = write!(s, "{c:<w$}");
        for n in row {
            let _ = write!(s, "  {n:>cw$}");
        }
        s.push('\n');
    }
    s
}
