//! What a running server knows of a model's versions on live traffic
//! (`GET /models/{model}/live`, `treeserve promote --from-live`): the alias's, shadow's and
//! canary's versions, each version's figures from joined labels, and the shadow's
//! agreement with production.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ScoreError, Scoring, Side};

/// A model's live report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveReport {
    /// The model.
    pub model: String,
    /// The alias production follows.
    pub alias: String,
    /// Its version loaded now.
    pub version: Option<u64>,
    /// The shadow (`--shadow`), if configured.
    pub shadow: Option<SideReport>,
    /// The canary (`--canary`), if configured.
    pub canary: Option<SideReport>,
    /// Whether answers are remembered for labels (`--feedback-window`).
    pub feedback: bool,
    /// Each labelled version's figures.
    pub live: Vec<LiveVersion>,
    /// The shadow's agreement with production, per pair of versions.
    pub agreement: Vec<AgreementReport>,
}

/// A side version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideReport {
    /// Its alias.
    pub alias: String,
    /// Its version loaded now (none: the alias does not exist, or its version cannot be
    /// loaded).
    pub version: Option<u64>,
    /// The canary's share of requests, percent.
    pub percent: Option<f64>,
}

/// One version's figures from joined labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveVersion {
    /// The version.
    pub version: u64,
    /// Labels joined since start.
    pub labels: u64,
    /// Labels behind the windowed figures (the most recent).
    pub window: usize,
    /// Accuracy over the window (classifiers).
    pub accuracy: Option<f64>,
    /// Recall of each class over the window (classifiers).
    pub recall: BTreeMap<String, Option<f64>>,
    /// Mean absolute error over the window (regressors).
    pub mae: Option<f64>,
    /// Root mean squared error over the window (regressors).
    pub rmse: Option<f64>,
    /// Mean time from answer to label.
    pub mean_label_delay_seconds: Option<f64>,
}

/// The shadow's agreement with production.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgreementReport {
    /// Production's version.
    pub version: u64,
    /// The shadow's version.
    pub shadow_version: u64,
    /// Rows scored by both.
    pub rows: u64,
    /// Share of rows in the same class (classifiers).
    pub agreement: Option<f64>,
    /// Mean absolute difference (regressors).
    pub mean_abs_difference: Option<f64>,
}

impl Scoring {
    /// Model `name`'s live report.
    pub fn live_report(&self, name: &str) -> Result<LiveReport, ScoreError> {
        let catalog = self.catalog(name)?;
        let side = |side: Side| {
            catalog.side_alias(side).map(|alias| SideReport {
                alias: alias.to_owned(),
                version: catalog.side(side).map(|s| s.model.version()),
                percent: (side == Side::Canary).then(|| catalog.canary_percent()),
            })
        };
        let live = self.feedback().map_or_else(Vec::new, |f| {
            f.live()
                .into_iter()
                .filter(|l| l.model == name)
                .map(|l| LiveVersion {
                    version: l.version,
                    labels: l.labels,
                    window: l.window,
                    accuracy: l.accuracy,
                    recall: l.recall.into_iter().map(|(c, _, r)| (c, r)).collect(),
                    mae: l.mae,
                    rmse: l.rmse,
                    mean_label_delay_seconds: (l.labels > 0)
                        .then(|| l.delay_seconds / l.labels as f64),
                })
                .collect()
        });
        let agreement = self.shadowing().map_or_else(Vec::new, |s| {
            s.agreements()
                .into_iter()
                .filter(|a| a.model == name)
                .map(|a| {
                    let (agreement, mean_abs_difference) = a.ratios();
                    AgreementReport {
                        version: a.version,
                        shadow_version: a.shadow_version,
                        rows: a.totals().0,
                        agreement,
                        mean_abs_difference,
                    }
                })
                .collect()
        });
        Ok(LiveReport {
            model: name.to_owned(),
            alias: catalog.alias().to_owned(),
            version: catalog.current().map(|s| s.model.version()),
            shadow: side(Side::Shadow),
            canary: side(Side::Canary),
            feedback: self.feedback().is_some(),
            live,
            agreement,
        })
    }
}
