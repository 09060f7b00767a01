//! The report's tables: confusion matrices, regression metrics, datasets.

use std::fmt::Write;

use super::VersionInfo;
use super::html::esc;
use crate::data::DatasetManifest;
use crate::model::{Manifest, Task};
use crate::train::number;

use super::regression_metric;

/// Most classes whose confusion matrix is drawn (a matrix grows with classes²); larger
/// ones are summarised by a note.
pub const MAX_MATRIX_CLASSES: usize = 50;

pub(super) fn confusion_table(m: &Manifest) -> String {
    if m.classes.len() > MAX_MATRIX_CLASSES {
        return format!(
            "<p>{} classes: the matrix is not shown (over {MAX_MATRIX_CLASSES} classes; it would grow with the square of the classes). Accuracy and macro F1 are in the table above.</p>",
            m.classes.len()
        );
    }
    let c = &m.metrics.confusion;
    let max = c.iter().flatten().copied().max().unwrap_or(1).max(1);
    let mut s = String::from(r#"<table class="confusion"><tr><th>actual \ predicted</th>"#);
    for l in &m.classes {
        let _ = write!(s, "<th>{}</th>", esc(l));
    }
    s.push_str("</tr>");
    for (a, row) in c.iter().enumerate() {
        let _ = write!(s, "<tr><th>{}</th>", esc(&m.classes[a]));
        for (p, &n) in row.iter().enumerate() {
            let alpha = n as f64 / max as f64 * 0.8;
            let hue = if a == p { "31,119,180" } else { "214,39,40" };
            let _ = write!(
                s,
                r#"<td style="background:rgba({hue},{alpha:.2})">{n}</td>"#
            );
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");
    s
}

/// A regressor's test metrics, one row per regressor version.
pub(super) fn regression_table(infos: &[VersionInfo]) -> String {
    let mut s = String::from(
        "<h2>Regression metrics (test rows)</h2>\n<table class=\"regression\"><tr><th>version</th><th>test rows</th><th>RMSE</th><th>MAE</th><th>R²</th></tr>",
    );
    for i in infos.iter().filter(|i| i.manifest.task == Task::Regression) {
        let m = &i.manifest;
        let _ = write!(
            s,
            "<tr><td>v{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i.version,
            m.regression_metrics.as_ref().map_or(0, |r| r.rows),
            number(regression_metric(m, "rmse")),
            number(regression_metric(m, "mae")),
            number(regression_metric(m, "r2"))
        );
    }
    s.push_str("</table>\n");
    s
}

pub(super) fn dataset_section(name: &str, manifests: &[DatasetManifest]) -> String {
    let mut out = format!(
        "<h3>Dataset {}</h3>\n<table class=\"datasets\"><tr><th>version</th><th class=\"text\">created</th><th>rows</th><th class=\"text\">sha256</th><th class=\"text\">from</th><th class=\"text\">classes</th><th>duplicates</th><th class=\"text\">warnings</th></tr>",
        esc(name)
    );
    for m in manifests {
        let classes: Vec<String> = m
            .classes
            .iter()
            .map(|c| format!("{} {}", esc(&c.label), c.rows))
            .collect();
        let warnings: Vec<String> = m.findings.iter().map(|f| esc(&f.message)).collect();
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td class="text">{}</td><td>{}</td><td class="text"><code>{}</code></td><td class="text">{}</td><td class="text">{}</td><td>{}</td><td class="text">{}</td></tr>"#,
            m.version,
            esc(&m.created),
            m.rows,
            esc(&m.sha256[..m.sha256.len().min(12)]),
            esc(m.sources.last().map_or("", String::as_str)),
            classes.join("<br>"),
            m.duplicate_rows,
            if warnings.is_empty() {
                "-".into()
            } else {
                warnings.join("<br>")
            }
        );
    }
    out.push_str("</table>\n");
    if let Some(last) = manifests.last() {
        let _ = write!(
            out,
            "<table class=\"columns\"><tr><th class=\"text\">column (v{})</th><th>min</th><th>max</th><th>mean</th><th>std</th></tr>",
            last.version
        );
        for c in &last.columns {
            let _ = write!(
                out,
                r#"<tr><td class="text">{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td></tr>"#,
                esc(&c.name),
                c.min,
                c.max,
                c.mean,
                c.std
            );
        }
        out.push_str("</table>\n");
    }
    out
}
