//! Reference rows and the framework's expected outputs: reading them, the parity check,
//! and the metrics they give when they carry the target.

use super::ImportError;
use super::build::PARITY_TOLERANCE;
use crate::model::{Metrics, Parity, RegressionMetrics, Task};

/// A CSV file read whole: its name, bytes' SHA-256, header and records.
#[derive(Debug, Clone)]
pub struct Table {
    /// File name, for messages and provenance.
    pub name: String,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Column names.
    pub header: Vec<String>,
    /// Records (each as long as the header).
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Parses CSV `bytes` (a header line, then records).
    pub fn parse(name: &str, bytes: &[u8]) -> Result<Self, ImportError> {
        let bad = |m: String| ImportError::Reference(format!("{name}: {m}"));
        let mut r = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            .from_reader(bytes);
        let header: Vec<String> = r
            .headers()
            .map_err(|e| bad(e.to_string()))?
            .iter()
            .map(str::to_owned)
            .collect();
        let mut rows = Vec::new();
        for rec in r.records() {
            let rec = rec.map_err(|e| bad(e.to_string()))?;
            rows.push(rec.iter().map(str::to_owned).collect());
        }
        if rows.is_empty() {
            return Err(bad("no rows after the header".into()));
        }
        Ok(Table {
            name: name.to_owned(),
            sha256: crate::model::sha256_hex(bytes),
            header,
            rows,
        })
    }

    pub(super) fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }
}

/// The reference rows in feature order (NaN for an empty cell of a missing-aware model),
/// and the target column when the file has one (class indices or values).
#[allow(clippy::type_complexity)]
pub(super) fn reference_rows(
    t: &Table,
    features: &[String],
    missing_aware: bool,
    target: &str,
    task: Task,
    classes: &[String],
) -> Result<(Vec<Vec<f64>>, Option<Vec<f64>>), ImportError> {
    let bad = |m: String| ImportError::Reference(format!("{}: {m}", t.name));
    let cols = features
        .iter()
        .map(|f| {
            t.column(f).ok_or_else(|| {
                bad(format!(
                    "no column {f:?} (the model reads {})",
                    features.join(", ")
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let target_col = t.column(target);
    let mut rows = Vec::with_capacity(t.rows.len());
    let mut actual = target_col.map(|_| Vec::with_capacity(t.rows.len()));
    for (i, rec) in t.rows.iter().enumerate() {
        let line = i + 2;
        let row = cols
            .iter()
            .zip(features)
            .map(|(&c, name)| {
                let cell = rec[c].as_str();
                if cell.is_empty() {
                    return if missing_aware {
                        Ok(f64::NAN)
                    } else {
                        Err(bad(format!(
                            "line {line}, column {name:?} is empty, and this model does not \
                             route missing values"
                        )))
                    };
                }
                match cell.parse::<f64>() {
                    Ok(v) if v.is_finite() => Ok(v),
                    _ => Err(bad(format!(
                        "line {line}, column {name:?}: {cell:?} is not a finite number"
                    ))),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        rows.push(row);
        if let (Some(c), Some(actual)) = (target_col, actual.as_mut()) {
            let cell = rec[c].as_str();
            let v = match task {
                Task::Classification => classes.iter().position(|l| l == cell).map(|i| i as f64),
                Task::Regression => cell.parse::<f64>().ok().filter(|v| v.is_finite()),
            };
            actual.push(v.ok_or_else(|| {
                bad(format!(
                    "line {line}, target {target:?}: {cell:?} is not a {}",
                    match task {
                        Task::Classification =>
                            format!("class of the model ({})", classes.join(", ")),
                        Task::Regression => "finite number".into(),
                    }
                ))
            })?);
        }
    }
    Ok((rows, actual))
}

fn close(ours: f64, theirs: f64) -> bool {
    (ours - theirs).abs() <= PARITY_TOLERANCE * theirs.abs().max(1e-3)
}

pub(super) fn check_parity(
    exp: &Table,
    outputs: &[(usize, Vec<f64>)],
    target: &str,
    task: Task,
    classes: &[String],
) -> Result<Parity, ImportError> {
    let bad = |m: String| ImportError::Reference(format!("{}: {m}", exp.name));
    if exp.rows.len() != outputs.len() {
        return Err(bad(format!(
            "{} rows, the reference has {}",
            exp.rows.len(),
            outputs.len()
        )));
    }
    let key = format!("predicted_{}", target.to_lowercase());
    let predicted = exp.column(&key).ok_or_else(|| {
        bad(format!(
            "no column {key:?} (what `treeserve predict` writes)"
        ))
    })?;
    let proba: Vec<usize> = classes
        .iter()
        .filter_map(|c| exp.column(&format!("p_{c}")))
        .collect();
    if !proba.is_empty() && proba.len() != classes.len() {
        return Err(bad("p_<class> columns for some classes only".into()));
    }
    let (mut max_abs, mut max_rel) = (0.0f64, 0.0f64);
    let mut differ = Vec::new();
    let number = |cell: &str, line: usize, col: &str| {
        cell.parse::<f64>().map_err(|_| {
            bad(format!(
                "line {line}, column {col:?}: {cell:?} is not a number"
            ))
        })
    };
    for (i, (rec, (class, scores))) in exp.rows.iter().zip(outputs).enumerate() {
        let line = i + 2;
        let mut compare = |ours: f64, theirs: f64, what: &str| {
            let abs = (ours - theirs).abs();
            max_abs = max_abs.max(abs);
            max_rel = max_rel.max(abs / theirs.abs().max(1e-3));
            if !close(ours, theirs) && differ.len() < 5 {
                differ.push(format!(
                    "line {line} {what}: ours {ours:?}, theirs {theirs:?}"
                ));
            }
        };
        match task {
            Task::Regression => {
                let theirs = number(&rec[predicted], line, &key)?;
                compare(scores[0], theirs, &key);
            }
            Task::Classification => {
                for (c, &col) in proba.iter().enumerate() {
                    let theirs = number(&rec[col], line, &exp.header[col])?;
                    compare(scores[c], theirs, &exp.header[col]);
                }
                let label = &rec[predicted];
                if label != &classes[*class] {
                    // A tie within the tolerance may break either way.
                    let tie = classes.iter().position(|l| l == label).is_some_and(|c| {
                        close(scores[c], scores[*class]) || close(scores[*class], scores[c])
                    });
                    if !tie && differ.len() < 5 {
                        differ.push(format!(
                            "line {line} class: ours {:?}, theirs {label:?}",
                            classes[*class]
                        ));
                    }
                }
            }
        }
    }
    if !differ.is_empty() {
        return Err(ImportError::Parity(format!(
            "treeserve's outputs differ from the framework's beyond {PARITY_TOLERANCE:e} \
             relative: {} (max abs {max_abs:e}, max rel {max_rel:e}); the import is refused",
            differ.join("; ")
        )));
    }
    Ok(Parity {
        rows: outputs.len() as u64,
        max_abs,
        max_rel,
    })
}

pub(super) fn metrics_of(
    task: Task,
    classes: &[String],
    actual: Option<&[f64]>,
    outputs: &[(usize, Vec<f64>)],
) -> (Metrics, Option<RegressionMetrics>) {
    let unknown = Metrics {
        accuracy: f64::NAN,
        per_class: Vec::new(),
        confusion: Vec::new(),
    };
    let Some(actual) = actual else {
        return (unknown, None);
    };
    match task {
        Task::Classification => {
            let a: Vec<u32> = actual.iter().map(|&v| v as u32).collect();
            let p: Vec<u32> = outputs.iter().map(|(c, _)| *c as u32).collect();
            (crate::train::metrics(classes, &a, &p), None)
        }
        Task::Regression => {
            let predicted: Vec<f64> = outputs.iter().map(|(_, s)| s[0]).collect();
            (
                unknown,
                Some(crate::train::regression_metrics(actual, &predicted)),
            )
        }
    }
}
