//! Run comparison: every version of a model side by side (`treeserve models NAME
//! --compare`), and a self-contained HTML report (`treeserve report NAME`, and the
//! server's `GET /models/{model}/report`): metric trends, confusion matrices, gate
//! decisions and data statistics. The page needs no network: styles and charts (SVG) are
//! inline.

use std::fmt::Write;

use crate::lifecycle::{self, Decision};
use crate::model::{Manifest, Task};
use crate::registry::{Registry, RegistryError};
use crate::train::number;

mod html;
mod live;
mod tables;
pub use html::{MAX_REPORT_BYTES, SCRIPT, html};
pub use tables::MAX_MATRIX_CLASSES;

/// Most classes given their own rows and chart series (the first ones met); a model
/// with more says how many it has.
pub const MAX_CLASSES_SHOWN: usize = 50;

/// The first [`MAX_CLASSES_SHOWN`] distinct labels, in the order met.
fn shown_labels<'a>(labels: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut shown: Vec<String> = Vec::new();
    for l in labels {
        if shown.len() == MAX_CLASSES_SHOWN {
            break;
        }
        if !shown.contains(l) {
            shown.push(l.clone());
        }
    }
    shown
}

/// One version of a model and what is known about it.
#[derive(Debug, Clone)]
pub struct VersionInfo {
    /// Registry version.
    pub version: u64,
    /// Its manifest.
    pub manifest: Manifest,
    /// Aliases pointing at it.
    pub aliases: Vec<String>,
    /// Its gate decision, if it went through the gate.
    pub decision: Option<Decision>,
}

/// Every readable version of `model`, oldest first.
pub fn versions(reg: &dyn Registry, model: &str) -> Result<Vec<VersionInfo>, RegistryError> {
    let aliases = reg.aliases(model)?;
    let mut out = Vec::new();
    for v in reg.versions(model)? {
        let Ok((manifest, _)) = crate::registry::version_manifest(reg, model, v, false)? else {
            continue;
        };
        out.push(VersionInfo {
            version: v,
            aliases: aliases
                .iter()
                .filter(|(_, r)| r.version == v)
                .map(|(a, _)| a.clone())
                .collect(),
            decision: lifecycle::decision(reg, model, v),
            manifest,
        });
    }
    Ok(out)
}

fn macro_f1(m: &Manifest) -> f64 {
    let pc = &m.metrics.per_class;
    if pc.is_empty() {
        return f64::NAN;
    }
    pc.iter().map(|c| c.f1).sum::<f64>() / pc.len() as f64
}

/// A regressor's test metric by name (`rmse`, `mae`, `r2`); NaN for a classifier.
fn regression_metric(m: &Manifest, which: &str) -> f64 {
    m.regression_metrics
        .as_ref()
        .map_or(f64::NAN, |r| match which {
            "rmse" => r.rmse,
            "mae" => r.mae,
            _ => r.r2,
        })
}

/// Whether any version is a regressor / a classifier.
fn tasks(infos: &[VersionInfo]) -> (bool, bool) {
    let has = |t: Task| infos.iter().any(|i| i.manifest.task == t);
    (has(Task::Regression), has(Task::Classification))
}

fn data_label(m: &Manifest) -> String {
    match &m.training.dataset {
        Some(d) => format!("{}:{}", d.name, d.version),
        None => m.training.source.clone(),
    }
}

fn gate_label(d: &Option<Decision>) -> &'static str {
    match d {
        Some(d) if d.promoted => "promoted",
        Some(_) => "not promoted",
        None => "-",
    }
}

/// The rows of the side-by-side comparison: (label, one cell per version).
fn compare_rows(infos: &[VersionInfo]) -> Vec<(String, Vec<String>)> {
    let cell = |f: &dyn Fn(&VersionInfo) -> String| infos.iter().map(f).collect::<Vec<_>>();
    let mut rows: Vec<(String, Vec<String>)> = vec![
        ("created".to_string(), cell(&|i| i.manifest.created.clone())),
        (
            "algorithm".into(),
            cell(&|i| i.manifest.algorithm.as_str().into()),
        ),
        ("aliases".into(), cell(&|i| i.aliases.join(","))),
        ("data".into(), cell(&|i| data_label(&i.manifest))),
        (
            "rows train/test".into(),
            cell(&|i| {
                format!(
                    "{}/{}",
                    i.manifest.training.train_rows, i.manifest.training.test_rows
                )
            }),
        ),
    ];
    let (regressors, classifiers) = tasks(infos);
    if classifiers {
        rows.push((
            "accuracy".into(),
            cell(&|i| number(i.manifest.metrics.accuracy)),
        ));
        rows.push(("macro F1".into(), cell(&|i| number(macro_f1(&i.manifest)))));
    }
    if regressors {
        for (label, which) in [("RMSE", "rmse"), ("MAE", "mae"), ("R²", "r2")] {
            rows.push((
                label.into(),
                cell(&|i| number(regression_metric(&i.manifest, which))),
            ));
        }
    }
    let labels = shown_labels(
        infos
            .iter()
            .flat_map(|i| i.manifest.metrics.per_class.iter().map(|c| &c.label)),
    );
    for (what, get) in [
        (
            "recall",
            (|c: &crate::model::ClassMetrics| c.recall) as fn(&_) -> f64,
        ),
        ("precision", |c| c.precision),
        ("F1", |c| c.f1),
    ] {
        for l in &labels {
            rows.push((
                format!("{what} {l}"),
                cell(&|i| {
                    i.manifest
                        .metrics
                        .per_class
                        .iter()
                        .find(|c| &c.label == l)
                        .map_or("-".into(), |c| format!("{:.4}", get(c)))
                }),
            ));
        }
    }
    rows.push(("gate".into(), cell(&|i| gate_label(&i.decision).into())));
    if classifiers {
        rows.push((
            "gate held-out acc.".into(),
            cell(&|i| {
                i.decision.as_ref().map_or("-".into(), |d| {
                    format!(
                        "{} vs {}",
                        number(d.candidate.metrics.accuracy),
                        d.champion
                            .as_ref()
                            .map_or("-".into(), |c| number(c.metrics.accuracy))
                    )
                })
            }),
        ));
    }
    if regressors {
        rows.push((
            "gate held-out RMSE".into(),
            cell(&|i| {
                i.decision.as_ref().map_or("-".into(), |d| {
                    format!(
                        "{} vs {}",
                        gate_rmse(&d.candidate),
                        d.champion.as_ref().map_or("-".into(), gate_rmse)
                    )
                })
            }),
        ));
    }
    rows
}

/// A gate evaluation's RMSE, or `-` for a classifier.
fn gate_rmse(e: &lifecycle::gate::Evaluation) -> String {
    e.regression.as_ref().map_or("-".into(), |r| number(r.rmse))
}

/// A gate evaluation's headline figure: accuracy, or a regressor's RMSE and R².
fn gate_headline(e: &lifecycle::gate::Evaluation) -> String {
    match &e.regression {
        Some(r) => format!("RMSE {} R² {}", number(r.rmse), number(r.r2)),
        None => number(e.metrics.accuracy),
    }
}

/// Metrics of every version side by side, as text; with a server's `live` report, the
/// live figures too.
pub fn compare_text(
    reg: &dyn Registry,
    model: &str,
    live: Option<&crate::serving::LiveReport>,
) -> Result<String, RegistryError> {
    let infos = versions(reg, model)?;
    let mut rows = compare_rows(&infos);
    if let Some(live) = live {
        rows.extend(live::rows(&infos, live));
    }
    let label_w = rows
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    let widths: Vec<usize> = (0..infos.len())
        .map(|j| {
            rows.iter()
                .map(|(_, c)| c[j].chars().count())
                .max()
                .unwrap_or(0)
                .max(format!("v{}", infos[j].version).len())
        })
        .collect();
    let mut out = format!("{model}: {} version(s)\n", infos.len());
    let _ = write!(out, "  {:label_w$}", "");
    for (j, i) in infos.iter().enumerate() {
        let _ = write!(out, "  {:>w$}", format!("v{}", i.version), w = widths[j]);
    }
    out.push('\n');
    for (label, cells) in &rows {
        let _ = write!(out, "  {label:label_w$}");
        for (j, c) in cells.iter().enumerate() {
            let _ = write!(out, "  {c:>w$}", w = widths[j]);
        }
        out.push('\n');
    }
    Ok(out)
}
