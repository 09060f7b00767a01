//! Clients of a running server: `treeserve score`, `health` and `smoke`.

use std::path::PathBuf;

use super::{CommandError, io_err};
use crate::client::{ScoreInput, ScoreOptions};

/// `treeserve health`.
#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// Server base URL (default: loopback at the port of TREESERVE_LISTEN, else 8080).
    #[arg(long)]
    pub url: Option<String>,
    /// Give up after this long.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
}

/// `treeserve smoke`.
#[derive(Debug, clap::Args)]
pub struct SmokeArgs {
    /// Server base URL, e.g. http://127.0.0.1:8080.
    pub url: String,
    /// Also write the results as JUnit XML to this file.
    #[arg(long)]
    pub junit: Option<PathBuf>,
}

/// `treeserve score`.
#[derive(Debug, clap::Args)]
pub struct ScoreArgs {
    /// Server base URL, e.g. http://127.0.0.1:8080 (`/score` is appended unless the URL
    /// has a path).
    pub url: String,
    /// CSV file of rows (columns named like the model's features; others are ignored).
    #[arg(long, conflicts_with_all = ["json", "row"])]
    pub csv: Option<PathBuf>,
    /// A JSON body to send as is.
    #[arg(long, conflicts_with = "row")]
    pub json: Option<String>,
    /// One row as NAME=VALUE pairs separated by commas.
    #[arg(long)]
    pub row: Option<String>,
    /// Rows per request with --csv.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Ask for class probabilities.
    #[arg(long)]
    pub probabilities: bool,
    /// With --csv: the label column, to report accuracy.
    #[arg(long, default_value = "Species")]
    pub target: String,
}

impl From<ScoreArgs> for ScoreOptions {
    fn from(a: ScoreArgs) -> Self {
        // clap lets at most one of --json, --row and --csv through.
        let input = match (a.json, a.row, a.csv) {
            (Some(json), _, _) => Some(ScoreInput::Json(json)),
            (None, Some(row), _) => Some(ScoreInput::Row(row)),
            (None, None, Some(csv)) => Some(ScoreInput::Csv(csv)),
            (None, None, None) => None,
        };
        ScoreOptions {
            url: a.url,
            input,
            batch_size: a.batch_size,
            probabilities: a.probabilities,
            target: a.target,
        }
    }
}

/// Runs `treeserve score`.
pub(super) fn score(a: ScoreArgs) -> Result<(), CommandError> {
    crate::client::score_command(&a.into()).map_err(|e| match e {
        crate::client::ClientError::Output(e) => super::output_error(e),
        e => e.into(),
    })
}

/// Runs `treeserve health`.
pub(super) fn health(a: HealthArgs) -> Result<(), CommandError> {
    let url = a.url.unwrap_or_else(crate::smoke::default_health_url);
    crate::smoke::health(&url, a.timeout).map_err(CommandError::NotReady)
}

/// Runs `treeserve smoke`.
pub(super) fn smoke(a: SmokeArgs) -> Result<(), CommandError> {
    let report = crate::smoke::smoke(&a.url)?;
    print!("{}", report.text());
    if let Some(path) = &a.junit {
        std::fs::write(path, report.junit()).map_err(io_err(path))?;
    }
    match report.failures() {
        0 => Ok(()),
        n => Err(CommandError::Smoke(n)),
    }
}
