//! Data-quality checks run before any training: expected columns and types, missing
//! values, values far outside the previous version's ranges, unknown or vanished labels,
//! duplicated rows and class imbalance. Critical findings stop the pipeline; warnings do
//! not.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::{ClassCount, ColumnStats, DatasetManifest, Schema, Table};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Stops the pipeline.
    Critical,
    /// Reported; the pipeline goes on.
    Warning,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// Which check found it: `rows`, `columns`, `types`, `missing`, `range`, `labels`,
    /// `duplicates` or `imbalance`.
    pub check: String,
    /// What is wrong, for people.
    pub message: String,
}

/// Thresholds of the checks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CheckConfig {
    /// A value is far outside the previous range when it lies more than this many range
    /// widths beyond the previous minimum or maximum.
    pub far_outside: f64,
    /// More than this fraction of rows with a far-outside value is critical (fewer: a
    /// warning).
    pub max_far_fraction: f64,
    /// The largest class having more than this many times the rows of the smallest is
    /// a warning.
    pub max_imbalance: f64,
}

impl Default for CheckConfig {
    fn default() -> Self {
        Self {
            far_outside: 1.0,
            max_far_fraction: 0.05,
            max_imbalance: 3.0,
        }
    }
}

/// All findings of one run of the checks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// What was checked (a file name or dataset version).
    pub subject: String,
    /// Rows checked.
    pub rows: u64,
    /// Findings, critical first.
    pub findings: Vec<Finding>,
}

impl Report {
    /// A report of one critical finding (a file that cannot even be checked).
    pub fn critical_only(subject: String, rows: u64, check: &str, message: String) -> Report {
        Report {
            subject,
            rows,
            findings: vec![Finding {
                severity: Severity::Critical,
                check: check.into(),
                message,
            }],
        }
    }

    /// Number of critical findings.
    pub fn critical(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Critical)
            .count()
    }

    /// The warnings.
    pub fn warnings(&self) -> Vec<Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .cloned()
            .collect()
    }

    /// A readable report.
    pub fn text(&self) -> String {
        let mut out = format!("data checks: {} ({} rows)\n", self.subject, self.rows);
        if self.findings.is_empty() {
            out.push_str("  ok: no problems found\n");
        }
        for f in &self.findings {
            let tag = match f.severity {
                Severity::Critical => "CRITICAL",
                Severity::Warning => "warning ",
            };
            let _ = writeln!(out, "  {tag} [{}] {}", f.check, f.message);
        }
        let _ = writeln!(
            out,
            "  {} critical, {} warning(s): {}",
            self.critical(),
            self.findings.len() - self.critical(),
            if self.critical() == 0 {
                "passed"
            } else {
                "REJECTED"
            }
        );
        out
    }

    fn push(&mut self, severity: Severity, check: &str, message: String) {
        self.findings.push(Finding {
            severity,
            check: check.into(),
            message,
        });
    }
}

/// Decides the schema of a table: `target` is the label, `id_column` (if the table has it)
/// is ignored, every other column is a feature.
pub fn schema_of(table: &Table, target: &str, id_column: Option<&str>) -> Schema {
    let id_column = id_column
        .filter(|id| table.column(id).is_some())
        .map(str::to_owned);
    Schema {
        target: target.to_owned(),
        features: table
            .columns
            .iter()
            .filter(|c| *c != target && Some(c.as_str()) != id_column.as_deref())
            .cloned()
            .collect(),
        id_column,
    }
}

/// Column statistics, class counts and duplicate count of a table (cells that are not
/// numbers are skipped).
pub struct Profile {
    /// Per-feature statistics.
    pub columns: Vec<ColumnStats>,
    /// Rows per class.
    pub classes: Vec<ClassCount>,
    /// Rows repeating an earlier row (features and label).
    pub duplicate_rows: u64,
}

/// Profiles a table under `schema`.
pub fn profile(table: &Table, schema: &Schema) -> Profile {
    let columns = schema
        .features
        .iter()
        .map(|name| {
            let values: Vec<f64> = table
                .column(name)
                .map(|j| {
                    table
                        .rows
                        .iter()
                        .filter_map(|(_, r)| r.get(j)?.parse::<f64>().ok())
                        .filter(|v| v.is_finite())
                        .collect()
                })
                .unwrap_or_default();
            let n = values.len().max(1) as f64;
            let mean = values.iter().sum::<f64>() / n;
            let var = values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
            ColumnStats {
                name: name.clone(),
                min: values.iter().copied().fold(f64::INFINITY, f64::min),
                max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                mean,
                std: var.sqrt(),
            }
        })
        .collect();
    let mut classes: BTreeMap<String, u64> = BTreeMap::new();
    if let Some(t) = table.column(&schema.target) {
        for (_, r) in &table.rows {
            if let Some(l) = r.get(t).filter(|l| !l.is_empty()) {
                *classes.entry(l.clone()).or_default() += 1;
            }
        }
    }
    let (duplicate_rows, _) = duplicates(table, schema);
    Profile {
        columns,
        classes: classes
            .into_iter()
            .map(|(label, rows)| ClassCount { label, rows })
            .collect(),
        duplicate_rows,
    }
}

/// (rows repeating an earlier row exactly, rows whose features repeat an earlier row's
/// with another label).
fn duplicates(table: &Table, schema: &Schema) -> (u64, u64) {
    let idx: Vec<Option<usize>> = schema.features.iter().map(|f| table.column(f)).collect();
    let t = table.column(&schema.target);
    let mut seen: HashMap<Vec<&str>, &str> = HashMap::new();
    let (mut exact, mut conflicting) = (0, 0);
    for (_, r) in &table.rows {
        let key: Vec<&str> = idx
            .iter()
            .map(|i| i.and_then(|i| r.get(i)).map_or("", String::as_str))
            .collect();
        let label = t.and_then(|t| r.get(t)).map_or("", String::as_str);
        match seen.get(&key) {
            Some(&l) if l == label => exact += 1,
            Some(_) => conflicting += 1,
            None => {
                seen.insert(key, label);
            }
        }
    }
    (exact, conflicting)
}

/// Checks `table` against `schema` and, when there is one, the previous dataset version.
/// `whole` says whether `table` is a complete dataset (then labels of `previous` missing
/// from it have vanished) or new rows to be appended to `previous`.
pub fn check(
    table: &Table,
    schema: &Schema,
    previous: Option<&DatasetManifest>,
    whole: bool,
    config: &CheckConfig,
) -> Report {
    let mut report = Report {
        subject: table.source.clone(),
        rows: table.rows.len() as u64,
        findings: Vec::new(),
    };
    use Severity::{Critical, Warning};
    if table.rows.is_empty() {
        report.push(Critical, "rows", "no data rows".into());
    }
    // Columns: the label must be there; against the previous version, the same features.
    let Some(t) = table.column(&schema.target) else {
        report.push(
            Critical,
            "columns",
            format!(
                "no label column {:?} (columns: {})",
                schema.target,
                table.columns.join(", ")
            ),
        );
        return sorted(report);
    };
    if let Some(prev) = previous {
        for f in &prev.schema.features {
            if table.column(f).is_none() {
                report.push(
                    Critical,
                    "columns",
                    format!("column {f:?} of version {} is missing", prev.version),
                );
            }
        }
        for f in &schema.features {
            if !prev.schema.features.contains(f) {
                report.push(
                    Critical,
                    "columns",
                    format!(
                        "unexpected column {f:?} (version {} has {})",
                        prev.version,
                        prev.schema.features.join(", ")
                    ),
                );
            }
        }
    }
    let mut seen_names = Vec::new();
    for c in &table.columns {
        if c.is_empty() {
            report.push(Critical, "columns", "a column has no name".into());
        } else if seen_names.contains(&c) {
            report.push(Critical, "columns", format!("column {c:?} appears twice"));
        }
        seen_names.push(c);
    }
    // Field counts, types and missing values.
    let width = table.columns.len();
    let ragged: Vec<u64> = table
        .rows
        .iter()
        .filter(|(_, r)| r.len() != width)
        .map(|(l, _)| *l)
        .collect();
    if !ragged.is_empty() {
        report.push(
            Critical,
            "columns",
            format!(
                "{} row(s) do not have {width} fields (first at line {})",
                ragged.len(),
                ragged[0]
            ),
        );
    }
    let cols: Vec<(String, usize)> = schema
        .features
        .iter()
        .filter_map(|f| Some((f.clone(), table.column(f)?)))
        .collect();
    for (name, j) in &cols {
        let (mut missing, mut bad, mut first_bad) = (0u64, 0u64, None);
        for (line, r) in &table.rows {
            match r.get(*j).map(String::as_str) {
                None | Some("") => missing += 1,
                Some(cell) => {
                    if !cell.parse::<f64>().is_ok_and(f64::is_finite) {
                        bad += 1;
                        first_bad.get_or_insert((*line, cell.to_owned()));
                    }
                }
            }
        }
        if missing > 0 {
            report.push(
                Critical,
                "missing",
                format!("column {name:?}: {missing} missing value(s)"),
            );
        }
        if let Some((line, cell)) = first_bad {
            report.push(
                Critical,
                "types",
                format!(
                    "column {name:?}: {bad} value(s) are not finite numbers (first {cell:?} at line {line})"
                ),
            );
        }
    }
    let missing_labels = table
        .rows
        .iter()
        .filter(|(_, r)| r.get(t).is_none_or(String::is_empty))
        .count();
    if missing_labels > 0 {
        report.push(
            Critical,
            "missing",
            format!(
                "label column {:?}: {missing_labels} missing label(s)",
                schema.target
            ),
        );
    }
    let prof = profile(table, schema);
    // Ranges against the previous version.
    if let Some(prev) = previous
        && !table.rows.is_empty()
    {
        let mut far_rows = vec![false; table.rows.len()];
        for (name, j) in &cols {
            let Some(p) = prev.columns.iter().find(|c| &c.name == name) else {
                continue;
            };
            let span = (p.max - p.min).abs().max(f64::EPSILON);
            let (lo, hi) = (
                p.min - config.far_outside * span,
                p.max + config.far_outside * span,
            );
            let mut n = 0;
            let mut worst: Option<f64> = None;
            for (i, (_, r)) in table.rows.iter().enumerate() {
                if let Some(v) = r.get(*j).and_then(|c| c.parse::<f64>().ok())
                    && v.is_finite()
                    && (v < lo || v > hi)
                {
                    n += 1;
                    far_rows[i] = true;
                    if worst.is_none_or(|w| (v - p.mean).abs() > (w - p.mean).abs()) {
                        worst = Some(v);
                    }
                }
            }
            if let Some(w) = worst {
                report.push(
                    Warning,
                    "range",
                    format!(
                        "column {name:?}: {n} value(s) far outside version {}'s range [{}, {}] (e.g. {w})",
                        prev.version, p.min, p.max
                    ),
                );
            }
        }
        let far = far_rows.iter().filter(|&&f| f).count();
        let fraction = far as f64 / table.rows.len() as f64;
        if fraction > config.max_far_fraction {
            report.push(
                Critical,
                "range",
                format!(
                    "{far} of {} rows ({:.1}%) have values far outside the previous ranges (at most {:.1}% allowed)",
                    table.rows.len(),
                    fraction * 100.0,
                    config.max_far_fraction * 100.0
                ),
            );
        }
    }
    // Labels against the previous version.
    if let Some(prev) = previous {
        let known: Vec<&str> = prev.classes.iter().map(|c| c.label.as_str()).collect();
        let unknown: Vec<&str> = prof
            .classes
            .iter()
            .map(|c| c.label.as_str())
            .filter(|l| !known.contains(l))
            .collect();
        if !unknown.is_empty() {
            report.push(
                Critical,
                "labels",
                format!(
                    "unknown label(s) {unknown:?} (version {} has {known:?})",
                    prev.version
                ),
            );
        }
        if whole {
            let vanished: Vec<&str> = known
                .iter()
                .copied()
                .filter(|l| !prof.classes.iter().any(|c| c.label == *l))
                .collect();
            if !vanished.is_empty() {
                report.push(
                    Critical,
                    "labels",
                    format!(
                        "label(s) {vanished:?} of version {} have vanished",
                        prev.version
                    ),
                );
            }
        }
    } else if whole && prof.classes.len() < 2 && !table.rows.is_empty() {
        report.push(
            Critical,
            "labels",
            format!("{} class(es): at least two are needed", prof.classes.len()),
        );
    }
    // Duplicates.
    let (exact, conflicting) = duplicates(table, schema);
    if exact > 0 {
        report.push(
            Warning,
            "duplicates",
            format!("{exact} row(s) repeat an earlier row exactly"),
        );
    }
    if conflicting > 0 {
        report.push(
            Warning,
            "duplicates",
            format!("{conflicting} row(s) repeat an earlier row's features with another label"),
        );
    }
    // Class balance (of a whole dataset; a file of new rows is naturally lopsided).
    if whole
        && let (Some(lo), Some(hi)) = (
            prof.classes.iter().min_by_key(|c| c.rows),
            prof.classes.iter().max_by_key(|c| c.rows),
        )
        && prof.classes.len() >= 2
        && hi.rows as f64 > config.max_imbalance * lo.rows as f64
    {
        report.push(
            Warning,
            "imbalance",
            format!(
                "class {:?} has {} rows, class {:?} only {} (more than {}×)",
                hi.label, hi.rows, lo.label, lo.rows, config.max_imbalance
            ),
        );
    }
    sorted(report)
}

fn sorted(mut r: Report) -> Report {
    r.findings.sort_by_key(|f| f.severity == Severity::Warning);
    r
}

#[cfg(test)]
mod tests;
