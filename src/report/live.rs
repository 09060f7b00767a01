//! Live figures beside the test figures: from a running server's live report
//! (`GET /models/{model}/live`), each version's role on live traffic (production,
//! shadow, canary), the labels joined to its answers, and its live accuracy (RMSE for a
//! regressor) next to its test accuracy.

use std::fmt::Write;

use super::html::esc;
use super::{VersionInfo, regression_metric};
use crate::serving::{LiveReport, LiveVersion};
use crate::train::number;

/// What version `v` does on live traffic.
fn role(live: &LiveReport, v: u64) -> &'static str {
    if live.version == Some(v) {
        "production"
    } else if live.shadow.as_ref().and_then(|s| s.version) == Some(v) {
        "shadow"
    } else if live.canary.as_ref().and_then(|s| s.version) == Some(v) {
        "canary"
    } else {
        "-"
    }
}

fn figures(live: &LiveReport, v: u64) -> Option<&LiveVersion> {
    live.live.iter().find(|l| l.version == v)
}

/// The live figure of a version: accuracy, or a regressor's RMSE.
fn headline(l: &LiveVersion) -> String {
    match (l.accuracy, l.rmse) {
        (Some(a), _) => number(a),
        (None, Some(r)) => format!("RMSE {}", number(r)),
        _ => "-".into(),
    }
}

/// Rows for `models --compare`: each version's live role, labels and figure.
pub(super) fn rows(infos: &[VersionInfo], live: &LiveReport) -> Vec<(String, Vec<String>)> {
    let cell = |f: &dyn Fn(u64) -> String| infos.iter().map(|i| f(i.version)).collect();
    vec![
        ("live role".into(), cell(&|v| role(live, v).into())),
        (
            "live labels".into(),
            cell(&|v| figures(live, v).map_or("-".into(), |l| l.window.to_string())),
        ),
        (
            "live accuracy/RMSE".into(),
            cell(&|v| figures(live, v).map_or("-".into(), headline)),
        ),
    ]
}

/// The report's section: a table of the versions on live traffic, and the shadow's
/// agreement with production.
pub(super) fn section(out: &mut String, infos: &[VersionInfo], live: &LiveReport) {
    out.push_str("<h2>Live traffic</h2>\n");
    let _ = writeln!(
        out,
        "<p>From the server's labels (its last {} per version); the test figure is the version's own held-out rows.</p>",
        live.live.iter().map(|l| l.window).max().unwrap_or(0)
    );
    out.push_str(
        "<table><tr><th>version</th><th class=\"text\">role</th><th>labels</th><th>live</th><th>test</th></tr>\n",
    );
    for i in infos.iter().rev() {
        let (r, l) = (role(live, i.version), figures(live, i.version));
        if r == "-" && l.is_none() {
            continue;
        }
        let test = match l.and_then(|l| l.rmse) {
            Some(_) => format!("RMSE {}", number(regression_metric(&i.manifest, "rmse"))),
            None => number(i.manifest.metrics.accuracy),
        };
        let _ = writeln!(
            out,
            "<tr><td>v{}</td><td class=\"text\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i.version,
            esc(r),
            l.map_or(0, |l| l.window),
            esc(&l.map_or("-".into(), headline)),
            esc(&test),
        );
    }
    out.push_str("</table>\n");
    if !live.agreement.is_empty() {
        out.push_str(
            "<table><tr><th>production</th><th>shadow</th><th>rows</th><th>agreement</th></tr>\n",
        );
        for a in &live.agreement {
            let figure = match (a.agreement, a.mean_abs_difference) {
                (Some(x), _) => number(x),
                (None, Some(d)) => format!("mean |difference| {}", number(d)),
                _ => "-".into(),
            };
            let _ = writeln!(
                out,
                "<tr><td>v{}</td><td>v{}</td><td>{}</td><td>{}</td></tr>",
                a.version,
                a.shadow_version,
                a.rows,
                esc(&figure)
            );
        }
        out.push_str("</table>\n");
    }
}
