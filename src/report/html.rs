//! The self-contained HTML report: metric trends (inline SVG charts), confusion
//! matrices (a regressor's RMSE, MAE and R² instead), gate decisions and data statistics.
//! No script or style loads from elsewhere.

use std::fmt::Write;

use super::tables::{confusion_table, dataset_section, regression_table};
use super::{
    MAX_CLASSES_SHOWN, VersionInfo, compare_rows, gate_headline, macro_f1, regression_metric,
    tasks, versions,
};
use crate::data::DatasetStore;
use crate::model::Task;
use crate::registry::{Registry, RegistryError};

/// Escapes text for HTML.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
];

/// A line chart of values in [0, 1] (or down to the series' least value, at most -1)
/// against versions. Values that are not numbers (a metric a version lacks) are left out;
/// values below the axis sit on it.
fn line_chart(id: &str, title: &str, xs: &[String], series: &[(String, Vec<f64>)]) -> String {
    let (w, h, l, r, t, b) = (640.0, 300.0, 56.0, 170.0, 34.0, 40.0);
    let (pw, ph) = (w - l - r, h - t - b);
    let all = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| v.is_finite());
    let lo = all.clone().fold(1.0f64, f64::min).clamp(-1.0, 0.9);
    let lo = (lo * 10.0).floor() / 10.0;
    let hi = 1.0f64;
    let x = |i: usize| {
        if xs.len() <= 1 {
            l + pw / 2.0
        } else {
            l + pw * i as f64 / (xs.len() - 1) as f64
        }
    };
    let y = |v: f64| t + ph - ph * (v.clamp(lo, hi) - lo) / (hi - lo).max(1e-9);
    let mut s = format!(
        r#"<svg class="chart" id="{id}" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{title}">"#,
        title = esc(title)
    );
    let _ = write!(
        s,
        r##"<text x="{}" y="20" text-anchor="middle" class="title">{}</text><rect x="{l}" y="{t}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>"##,
        l + pw / 2.0,
        esc(title)
    );
    let steps = ((hi - lo) * 10.0).round() as usize;
    for k in 0..=steps {
        let v = lo + k as f64 / 10.0;
        let _ = write!(
            s,
            r##"<line x1="{l}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{v:.1}</text>"##,
            l + pw,
            l - 6.0,
            y(v) + 4.0,
            y = y(v)
        );
    }
    for (i, label) in xs.iter().enumerate() {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            x(i),
            t + ph + 18.0,
            esc(label)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">version</text>"#,
        l + pw / 2.0,
        h - 4.0
    );
    for (k, (name, values)) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline class="series" points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            points.join(" ")
        );
        for (i, v) in values.iter().enumerate().filter(|(_, v)| v.is_finite()) {
            let _ = write!(
                s,
                r#"<circle class="mark" cx="{:.1}" cy="{:.1}" r="3.5" fill="{colour}"><title>{} {}: {v:.4}</title></circle>"#,
                x(i),
                y(*v),
                esc(name),
                esc(&xs[i])
            );
        }
        let ly = t + 12.0 + 18.0 * k as f64;
        let _ = write!(
            s,
            r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
            l + pw + 10.0,
            l + pw + 30.0,
            l + pw + 36.0,
            ly + 4.0,
            esc(name)
        );
    }
    s.push_str("</svg>");
    s
}

/// A classifier's trend charts: accuracy and macro F1, recall by class.
fn classification_charts(out: &mut String, infos: &[VersionInfo], xs: &[String]) {
    let overall = vec![
        (
            "accuracy".to_string(),
            infos.iter().map(|i| i.manifest.metrics.accuracy).collect(),
        ),
        (
            "macro F1".to_string(),
            infos.iter().map(|i| macro_f1(&i.manifest)).collect(),
        ),
    ];
    out.push_str(&line_chart(
        "chart-metrics",
        "Test accuracy and macro F1",
        xs,
        &overall,
    ));
    let labels = super::shown_labels(infos.iter().flat_map(|i| &i.manifest.classes));
    let recall: Vec<(String, Vec<f64>)> = labels
        .iter()
        .map(|l| {
            let v = infos
                .iter()
                .map(|i| match i.manifest.task {
                    Task::Regression => f64::NAN, // no point for a regressor's version
                    Task::Classification => i
                        .manifest
                        .metrics
                        .per_class
                        .iter()
                        .find(|c| &c.label == l)
                        .map_or(0.0, |c| c.recall),
                })
                .collect();
            (format!("recall {l}"), v)
        })
        .collect();
    out.push_str(&line_chart(
        "chart-recall",
        "Test recall by class",
        xs,
        &recall,
    ));
    let classes = infos.iter().map(|i| i.manifest.classes.len()).max();
    if let Some(n) = classes.filter(|n| *n > MAX_CLASSES_SHOWN) {
        let _ = write!(
            out,
            "<p>{n} classes: recall and the per-class rows show the first {MAX_CLASSES_SHOWN}.</p>"
        );
    }
}

/// The report's one script (the CSP names its hash): marks each chart with its rendered
/// size, which a headless browser (the tests) reads back from the DOM.
pub const SCRIPT: &str = r#"
for (const s of document.querySelectorAll("svg.chart")) {
  const r = s.getBoundingClientRect();
  s.dataset.rendered = Math.round(r.width) + "x" + Math.round(r.height);
  s.dataset.marks = s.querySelectorAll("circle.mark").length;
}
document.body.dataset.ready = "yes";
"#;

/// Most bytes of a report's HTML: past it, the remaining per-version sections are left
/// out with a note (a model with many versions, features or classes).
pub const MAX_REPORT_BYTES: usize = 8 << 20;

/// Whether `out` reached [`MAX_REPORT_BYTES`]; says so in the page the first time.
fn full(out: &mut String, noted: &mut bool) -> bool {
    if out.len() < MAX_REPORT_BYTES {
        return false;
    }
    if !*noted {
        *noted = true;
        let _ = write!(
            out,
            "<p class=\"fail\">The report reached its size limit of {} MiB: the rest of this section and later per-version tables are left out. <code>treeserve models NAME --compare</code> shows every version.</p>",
            MAX_REPORT_BYTES >> 20
        );
    }
    true
}

/// The self-contained HTML report of `model`; with a server's `live` report, its live
/// figures too.
pub fn html(
    reg: &dyn Registry,
    datasets: Option<&DatasetStore>,
    model: &str,
    live: Option<&crate::serving::LiveReport>,
) -> Result<String, RegistryError> {
    let infos = versions(reg, model)?;
    let xs: Vec<String> = infos.iter().map(|i| format!("v{}", i.version)).collect();
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>treeserve report: {name}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; font-variant-numeric: tabular-nums; }}
th {{ background: #f4f4f4; }}
td.text, th.text {{ text-align: left; }}
.pass {{ color: #176d17; }} .fail {{ color: #b00; font-weight: bold; }}
svg.chart {{ display: block; margin: 0.5em 0; font-size: 12px; }}
svg .title {{ font-size: 14px; font-weight: bold; }}
.matrices {{ display: flex; flex-wrap: wrap; gap: 1.5em; }}
</style></head><body>
<h1>treeserve report: {name}</h1>
<p>{n} version(s); generated {now} by treeserve {tv}.</p>
"#,
        name = esc(model),
        n = infos.len(),
        now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        tv = env!("CARGO_PKG_VERSION"),
    );
    // Trends.
    out.push_str("<h2>Metrics across versions</h2>\n");
    let (regressors, classifiers) = tasks(&infos);
    if classifiers {
        classification_charts(&mut out, &infos, &xs);
    }
    if regressors {
        let r2 = vec![(
            "R²".to_string(),
            infos
                .iter()
                .map(|i| regression_metric(&i.manifest, "r2"))
                .collect(),
        )];
        out.push_str(&line_chart(
            "chart-r2",
            "Test R² (1 is perfect, 0 predicts the mean)",
            &xs,
            &r2,
        ));
    }
    if let Some(live) = live {
        super::live::section(&mut out, &infos, live);
    }
    // Side by side.
    out.push_str("\n<h2>Versions side by side</h2>\n<table class=\"compare\"><tr><th></th>");
    for x in &xs {
        let _ = write!(out, "<th>{}</th>", esc(x));
    }
    out.push_str("</tr>");
    let mut noted = false;
    for (label, cells) in compare_rows(&infos) {
        if full(&mut out, &mut noted) {
            break;
        }
        let _ = write!(out, r#"<tr><th class="text">{}</th>"#, esc(&label));
        for c in cells {
            let _ = write!(out, "<td>{}</td>", esc(&c));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>\n");
    // Gate decisions.
    out.push_str("<h2>Gate decisions</h2>\n");
    let decided: Vec<&VersionInfo> = infos.iter().filter(|i| i.decision.is_some()).collect();
    if decided.is_empty() {
        out.push_str("<p>No version went through the gate.</p>\n");
    } else {
        out.push_str(
            r#"<table class="gate"><tr><th>version</th><th class="text">decided</th><th class="text">data</th><th>held-out rows</th><th>candidate</th><th>champion</th><th>champion's</th><th class="text">checks</th><th class="text">decision</th></tr>"#,
        );
        for i in decided {
            if full(&mut out, &mut noted) {
                break;
            }
            let d = i.decision.as_ref().expect("filtered");
            let checks: Vec<String> = d
                .checks
                .iter()
                .map(|c| {
                    format!(
                        r#"<span class="{}">{} {}</span>"#,
                        if c.passed { "pass" } else { "fail" },
                        if c.passed { "✓" } else { "✗" },
                        esc(&c.detail)
                    )
                })
                .collect();
            let _ = write!(
                out,
                r#"<tr><td>v{}</td><td class="text">{}</td><td class="text">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="text">{}</td><td class="text {}">{}</td></tr>"#,
                i.version,
                esc(&d.decided),
                esc(&d
                    .dataset
                    .as_ref()
                    .map_or("-".into(), |l| format!("{}:{}", l.name, l.version))),
                d.held_out_rows,
                esc(&gate_headline(&d.candidate)),
                d.champion
                    .as_ref()
                    .map_or("-".into(), |c| format!("v{}", c.version)),
                d.champion
                    .as_ref()
                    .map_or("-".into(), |c| esc(&gate_headline(c))),
                checks.join("<br>"),
                if d.promoted { "pass" } else { "fail" },
                if d.promoted {
                    format!("promoted to {}", esc(&d.alias))
                } else {
                    "not promoted".into()
                }
            );
        }
        out.push_str("</table>\n");
    }
    // Confusion matrices.
    if regressors {
        out.push_str(&regression_table(&infos));
    }
    if classifiers {
        out.push_str("<h2>Confusion matrices (test rows)</h2>\n<div class=\"matrices\">");
    }
    for i in infos
        .iter()
        .filter(|i| i.manifest.task == Task::Classification)
    {
        if full(&mut out, &mut noted) {
            break;
        }
        let _ = write!(
            out,
            "<div><h3>v{} ({} test rows)</h3>{}</div>",
            i.version,
            i.manifest.training.test_rows,
            confusion_table(&i.manifest)
        );
    }
    if classifiers {
        out.push_str("</div>\n");
    }
    // Data.
    out.push_str("<h2>Data</h2>\n");
    let mut dataset_names: Vec<String> = infos
        .iter()
        .filter_map(|i| i.manifest.training.dataset.as_ref().map(|d| d.name.clone()))
        .collect();
    dataset_names.sort();
    dataset_names.dedup();
    if let Some(store) = datasets {
        for name in &dataset_names {
            if full(&mut out, &mut noted) {
                break;
            }
            let manifests = store.manifests(name).unwrap_or_default();
            out.push_str(&dataset_section(name, &manifests));
        }
    }
    out.push_str("<h3>Training feature statistics by model version</h3>\n<table class=\"features\"><tr><th>version</th><th class=\"text\">feature</th><th>min</th><th>max</th><th>mean</th><th>std</th></tr>");
    'stats: for i in &infos {
        for f in &i.manifest.feature_stats {
            if full(&mut out, &mut noted) {
                break 'stats;
            }
            let _ = write!(
                out,
                r#"<tr><td>v{}</td><td class="text">{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td></tr>"#,
                i.version,
                esc(&f.name),
                f.min,
                f.max,
                f.mean,
                f.std
            );
        }
    }
    out.push_str("</table>\n");
    let _ = write!(out, "<script>{SCRIPT}</script>\n</body></html>\n");
    Ok(out)
}
