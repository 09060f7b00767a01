//! `treeserve promote NAME --from-live URL`: promote the candidate alias's version (the
//! shadow or canary a server has been scoring) only if its live figures, from the labels
//! that server joined, are at least as good as production's on at least `--min-labels`
//! labels each.

use http::Method;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::CommandError;
use super::registry::PromoteArgs;
use crate::client::{ClientError, HttpClient, runtime, send};
use crate::serving::{LiveReport, LiveVersion};

/// Fetches `URL/models/NAME/live`.
pub(super) fn fetch(url: &str, name: &str) -> Result<LiveReport, CommandError> {
    let base = url.trim_end_matches('/');
    let uri: http::Uri = format!("{base}/models/{name}/live")
        .parse()
        .map_err(|_| ClientError::Url(url.into()))?;
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let body = runtime()?.block_on(send(&client, Method::GET, &uri, None))?;
    serde_json::from_slice(&body).map_err(|e| {
        CommandError::Usage(format!(
            "{uri} is not a treeserve live report ({e}); give the URL of a treeserve server"
        ))
    })
}

/// Whether `candidate` may replace `production`: `Ok` with the reason, `Err` with why not.
pub fn decide(
    report: &LiveReport,
    production: u64,
    candidate: u64,
    min_labels: usize,
) -> Result<String, String> {
    let find = |v: u64| report.live.iter().find(|l| l.version == v);
    let enough = |v: u64, role: &str| -> Result<&LiveVersion, String> {
        let labels = find(v).map_or(0, |l| l.window);
        if labels < min_labels {
            let hint = if report.feedback {
                ""
            } else {
                " (the server remembers no answers: start it with --feedback-window)"
            };
            return Err(format!(
                "{role} version {v} has {labels} recent label(s) on the server; at least {min_labels} are needed (--min-labels){hint}"
            ));
        }
        Ok(find(v).expect("found above"))
    };
    let p = enough(production, "production")?;
    let c = enough(candidate, "candidate")?;
    match (c.accuracy, p.accuracy, c.rmse, p.rmse) {
        (Some(ca), Some(pa), ..) => {
            let text = format!(
                "live accuracy: candidate version {candidate} {ca:.4} on {} labels, production version {production} {pa:.4} on {} labels",
                c.window, p.window
            );
            if ca >= pa { Ok(text) } else { Err(text) }
        }
        (_, _, Some(cr), Some(pr)) => {
            let text = format!(
                "live RMSE: candidate version {candidate} {cr:.6} on {} labels, production version {production} {pr:.6} on {} labels",
                c.window, p.window
            );
            if cr <= pr { Ok(text) } else { Err(text) }
        }
        _ => Err(format!(
            "versions {production} and {candidate} have no comparable live figures"
        )),
    }
}

/// Runs `treeserve promote NAME --from-live URL`.
pub(super) fn promote_from_live(a: &PromoteArgs, url: &str) -> Result<(), CommandError> {
    let reg = a.registry.open()?;
    let production = reg.resolve(&a.name, &a.alias)?;
    let candidate = reg.resolve(&a.name, &a.candidate)?;
    if candidate == production {
        println!(
            "{} alias {} is at version {production} already (as is {})",
            a.name, a.alias, a.candidate
        );
        return Ok(());
    }
    let report = fetch(url, &a.name)?;
    match decide(&report, production, candidate, a.min_labels) {
        Ok(why) => {
            super::registry::verify(&*reg, &a.name, &a.alias, candidate)?;
            let rec = reg.set_alias(&a.name, &a.alias, candidate)?;
            println!(
                "{why}\n{} alias {} -> version {}",
                a.name, a.alias, rec.version
            );
            Ok(())
        }
        Err(why) => Err(CommandError::GateRefused(format!(
            "not promoted: {why}; {} alias {} stays at version {production}",
            a.name, a.alias
        ))),
    }
}
