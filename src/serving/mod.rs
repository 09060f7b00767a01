//! The served models and the one prediction path every protocol shares.
//!
//! A [`Fleet`] holds one [`Catalog`] per served model; a catalog holds the version its
//! alias points to in an `ArcSwapOption`. A new version is read, decoded and validated off
//! the request path and stored only on success: a bad artifact never replaces a good one.
//! A request loads the handle once and uses that version throughout. [`Scoring`] is the
//! one scoring use case of every protocol; [`Follower`] the one reload task.

mod catalog;
mod codec;
mod fleet;
mod follow;
mod live;
mod score_error;
mod scoring;
mod shadow;
mod side;

pub use catalog::{Catalog, CatalogOptions};
pub use codec::{GrpcCodec, ScoreCodec, TabularCodec, V2Codec};
pub use fleet::{Fleet, FleetReport, Models, ScoreModel};
pub use follow::{FollowOptions, Follower, ReloadLog, Reloader};
pub use live::{AgreementReport, LiveReport, LiveVersion, SideReport};
pub use score_error::ScoreError;
pub use scoring::{Ask, Codec, Local, Outcome, Pending, Scored, Scoring, find, truncated};
pub use shadow::{Agreement, Shadowing};
pub use side::{CanarySplit, Side, draw};

use crate::model::{ArtifactError, Model};
use crate::protocol::score;
use crate::registry::RegistryError;

/// A validated model with its precomputed response encodings.
#[derive(Debug)]
pub struct ServedModel {
    /// Unique per loaded model in this process (never reused), for per-thread caches.
    pub id: u64,
    /// The model.
    pub model: Model,
    /// `/score` response encoding.
    pub score: score::Encoder,
    /// Open Inference Protocol response pieces.
    pub v2: crate::protocol::v2::Encoder,
    /// `ModelInfer` (V2 over gRPC) answer pieces.
    pub grpc: crate::protocol::v2::grpc::Encoder,
    /// MLflow's and KServe V1's `{"predictions": [...]}` encoding.
    pub tabular: crate::protocol::tabular::Encoder,
    /// The version as decimal text, for response headers.
    pub version_text: String,
    /// Predictions and drift signals of this version.
    pub stats: crate::stats::ModelStats,
    /// This version, as the feedback record names it.
    pub answerer: std::sync::Arc<crate::feedback::Answerer>,
}

impl ServedModel {
    /// Wraps a validated model.
    pub fn new(model: Model) -> Self {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            score: score::Encoder::new(&model),
            tabular: crate::protocol::tabular::Encoder::new(&model),
            v2: crate::protocol::v2::Encoder::new(
                model.name(),
                &model.version().to_string(),
                model.classes(),
            ),
            grpc: crate::protocol::v2::grpc::Encoder::new(
                model.name(),
                &model.version().to_string(),
                model.classes(),
            ),
            answerer: std::sync::Arc::new(crate::feedback::Answerer {
                model: model.name().to_owned(),
                version: model.version(),
                classes: model.classes().to_vec(),
                features: model.features().to_vec(),
                target: model.manifest().target.clone(),
            }),
            version_text: model.version().to_string(),
            stats: crate::stats::ModelStats::new(&model),
            model,
        }
    }
}

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The registry could not be read.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The artifact was refused.
    #[error("version {version}: {source}")]
    Artifact {
        /// The version that was refused.
        version: u64,
        /// Why.
        source: ArtifactError,
    },
    /// The artifact names another model.
    #[error("version {version} holds model {found:?}, expected {expected:?}")]
    NameMismatch {
        /// The version.
        version: u64,
        /// The name the registry has it under.
        expected: String,
        /// The name in the artifact.
        found: String,
    },
    /// Nothing is served, the alias's version cannot be, and no earlier version of the
    /// alias loads either.
    #[error(
        "nothing served: the alias's version {version} cannot be served ({error}), and no earlier version of the alias loads ({tried}); promote a good version"
    )]
    NoFallback {
        /// The alias's version.
        version: u64,
        /// Why it cannot be served.
        error: Box<LoadError>,
        /// Earlier versions tried, and why each failed.
        tried: String,
    },
    /// The new version reads other features than the served one.
    #[error(
        "version {version} reads features [{}], the served version reads [{}]; refusing the swap (clients would break; --allow-schema-change allows it)",
        .to.join(", "), .from.join(", ")
    )]
    SchemaChange {
        /// The refused version.
        version: u64,
        /// Features of the served version.
        from: Vec<String>,
        /// Features of the new version.
        to: Vec<String>,
    },
    /// A pinned version that failed to load moments ago (not retried yet), or whose
    /// load did not finish.
    #[error("{0}")]
    Unavailable(String),
}

impl LoadError {
    /// A short, bounded reason for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            LoadError::Registry(RegistryError::Io { .. } | RegistryError::Refused { .. }) => {
                "registry_io"
            }
            LoadError::Registry(_) => "registry",
            LoadError::Artifact { source, .. } => source.reason(),
            LoadError::NameMismatch { .. } => "name_mismatch",
            LoadError::SchemaChange { .. } => "schema_change",
            LoadError::Unavailable(_) => "unavailable",
            LoadError::NoFallback { error, .. } => error.reason(),
        }
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// The alias still points to the served version.
    Unchanged(u64),
    /// The alias points to a version that already failed with these very bytes.
    KnownBad(u64),
    /// Nothing was served and the alias's version cannot be: an earlier version of the
    /// alias is served instead (see [`Catalog::fallback`]).
    Fallback {
        /// The version served.
        to: u64,
        /// The alias's version, which cannot be served.
        alias_version: u64,
    },
    /// A new version is now served.
    Swapped {
        /// Version served before, if any.
        from: Option<u64>,
        /// Version served now.
        to: u64,
    },
}

/// Predicts the rows of `values` (row-major) into `classes`, and their scores into
/// `scores` (`rows × num_scores`: class probabilities, or a regressor's value; filled when
/// `want_scores`, else possibly not), recording each row in the model's statistics when
/// `record`. One row is predicted inline; more go through [`Model::predict_rows`] in
/// blocks, split over up to `threads` threads when large. The one prediction path of
/// every protocol.
pub fn predict(
    served: &ServedModel,
    values: &[f64],
    classes: &mut Vec<usize>,
    scores: &mut Vec<f64>,
    want_scores: bool,
    record: bool,
    threads: usize,
) {
    let model = &served.model;
    let f = model.num_features();
    let k = model.num_scores();
    let n = values.len() / f;
    classes.clear();
    if n == 1 && !want_scores {
        // One row: inline, as fast as the model's one-row call.
        classes.push(model.predict(values));
    } else if n == 1 {
        scores.clear();
        scores.resize(k, 0.0);
        classes.push(model.predict_scores(values, scores));
    } else {
        scores.clear();
        scores.resize(n * k, 0.0);
        classes.resize(n, 0);
        model.predict_rows(values, scores, classes, want_scores, threads);
    }
    if record {
        for (row, &class) in values.chunks_exact(f).zip(classes.iter()) {
            served.stats.record(row, class);
        }
    }
}
