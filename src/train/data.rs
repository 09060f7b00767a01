//! CSV loading with errors that name the line and column.

use std::path::Path;

use super::TrainError;
use crate::model::Task;

/// A labelled tabular data set, row-major: class labels, or a numeric target (regression).
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Feature names, in column order.
    pub features: Vec<String>,
    /// Target column name.
    pub target: String,
    /// Class labels, sorted; `y` holds indices into this (empty for regression).
    pub classes: Vec<String>,
    /// Feature values, `rows × features.len()`, row-major.
    pub x: Vec<f64>,
    /// Class index of each row (empty for regression).
    pub y: Vec<u32>,
    /// Numeric target of each row (regression; empty for classification).
    pub values: Vec<f64>,
    /// SHA-256 of the file bytes, hex.
    pub sha256: String,
    /// File name.
    pub source: String,
}

impl Dataset {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.y.len().max(self.values.len())
    }

    /// What the target is: classes, or numbers (regression).
    pub fn task(&self) -> Task {
        if self.values.is_empty() {
            Task::Classification
        } else {
            Task::Regression
        }
    }

    /// Row `i`'s feature values.
    pub fn row(&self, i: usize) -> &[f64] {
        let f = self.features.len();
        &self.x[i * f..(i + 1) * f]
    }
}

/// Reads a CSV with a header row for classification. `target` names the label column;
/// `id_column`, if present in the header, is ignored. Every other column is a numeric
/// feature.
pub fn load_csv(path: &Path, target: &str, id_column: Option<&str>) -> Result<Dataset, TrainError> {
    load_csv_for(path, target, id_column, Task::Classification)
}

/// [`load_csv`] for `task`: for regression the target must be a finite number on every
/// row.
pub fn load_csv_for(
    path: &Path,
    target: &str,
    id_column: Option<&str>,
    task: Task,
) -> Result<Dataset, TrainError> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    let source = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    parse_csv_for(&bytes, &source, target, id_column, task)
}

/// Parses CSV bytes for classification; see [`load_csv`].
pub fn parse_csv(
    bytes: &[u8],
    source: &str,
    target: &str,
    id_column: Option<&str>,
) -> Result<Dataset, TrainError> {
    parse_csv_for(bytes, source, target, id_column, Task::Classification)
}

/// Parses CSV bytes for `task`; see [`load_csv_for`].
pub fn parse_csv_for(
    bytes: &[u8],
    source: &str,
    target: &str,
    id_column: Option<&str>,
    task: Task,
) -> Result<Dataset, TrainError> {
    let data_err = |line: u64, column: Option<&str>, message: String| TrainError::Data {
        line,
        column: column.map(str::to_owned),
        message,
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(data_err(1, None, "the file is empty".into()));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let header = reader
        .headers()
        .map_err(|e| data_err(1, None, format!("cannot read the header: {e}")))?
        .clone();
    let names: Vec<&str> = header.iter().collect();
    let target_idx = names.iter().position(|n| *n == target).ok_or_else(|| {
        data_err(
            1,
            None,
            format!(
                "no target column {target:?} in the header ({})",
                names.join(",")
            ),
        )
    })?;
    let id_idx = id_column.and_then(|id| names.iter().position(|n| *n == id));
    let feature_cols: Vec<usize> = (0..names.len())
        .filter(|&i| i != target_idx && Some(i) != id_idx)
        .collect();
    if feature_cols.is_empty() {
        return Err(data_err(1, None, "no feature columns".into()));
    }
    for &i in &feature_cols {
        if names[i].is_empty() {
            return Err(data_err(1, None, format!("column {} has no name", i + 1)));
        }
        if names[..i].contains(&names[i]) {
            return Err(data_err(1, Some(names[i]), "duplicate column name".into()));
        }
    }
    let features: Vec<String> = feature_cols.iter().map(|&i| names[i].to_owned()).collect();

    let mut x = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    let mut values: Vec<f64> = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let more = reader.read_record(&mut record).map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            data_err(line, None, format!("malformed CSV: {e}"))
        })?;
        if !more {
            break;
        }
        let line = record.position().map_or(0, |p| p.line());
        if record.len() == 1 && record.get(0) == Some("") {
            continue; // blank line
        }
        if record.len() != names.len() {
            return Err(data_err(
                line,
                None,
                format!("{} fields, the header has {}", record.len(), names.len()),
            ));
        }
        for &i in &feature_cols {
            let cell = &record[i];
            if cell.is_empty() {
                return Err(data_err(line, Some(names[i]), "missing value".into()));
            }
            let v: f64 = cell
                .parse()
                .map_err(|_| data_err(line, Some(names[i]), format!("{cell:?} is not a number")))?;
            if !v.is_finite() {
                return Err(data_err(
                    line,
                    Some(names[i]),
                    format!("{cell:?} is not finite"),
                ));
            }
            x.push(v);
        }
        let label = &record[target_idx];
        if label.is_empty() {
            return Err(data_err(line, Some(target), "missing label".into()));
        }
        if task == Task::Regression {
            let v = label.parse::<f64>().ok().filter(|v| v.is_finite());
            values.push(v.ok_or_else(|| {
                data_err(
                    line,
                    Some(target),
                    format!("{label:?} is not a number: --task regression needs a numeric target"),
                )
            })?);
        } else {
            labels.push(label.to_owned());
        }
    }
    if labels.is_empty() && values.is_empty() {
        return Err(data_err(2, None, "no data rows".into()));
    }
    if task == Task::Regression {
        if values.iter().all(|&v| v == values[0]) {
            return Err(data_err(
                2,
                Some(target),
                format!(
                    "the target is {} on every row: a regressor needs it to vary",
                    values[0]
                ),
            ));
        }
        return Ok(Dataset {
            features,
            target: target.to_owned(),
            classes: Vec::new(),
            x,
            y: Vec::new(),
            values,
            sha256: crate::model::sha256_hex(bytes),
            source: source.to_owned(),
        });
    }
    let mut classes = labels.clone();
    classes.sort();
    classes.dedup();
    if classes.len() < 2 {
        return Err(data_err(
            2,
            Some(target),
            format!("only one class ({:?}); at least two are needed", classes[0]),
        ));
    }
    let y = labels
        .iter()
        .map(|l| classes.binary_search(l).expect("label is in classes") as u32)
        .collect();
    Ok(Dataset {
        features,
        target: target.to_owned(),
        classes,
        x,
        y,
        values: Vec::new(),
        sha256: crate::model::sha256_hex(bytes),
        source: source.to_owned(),
    })
}
