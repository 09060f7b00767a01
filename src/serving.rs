//! The served model and the one prediction path every protocol shares.
//!
//! A [`Catalog`] holds the current model in an `ArcSwapOption`. A new version is read,
//! decoded and validated off the request path and stored only on success: a bad artifact
//! never replaces a good one. A request loads the handle once and uses that version
//! throughout.

use std::sync::Arc;

use arc_swap::ArcSwapOption;

use crate::metrics::Metrics;
use crate::model::tree::TreeLimits;
use crate::model::{ArtifactError, Model};
use crate::protocol::score;
use crate::registry::{Registry, RegistryError};

/// A validated model with its precomputed response encodings.
#[derive(Debug)]
pub struct ServedModel {
    /// Unique per loaded model in this process (never reused), for per-thread caches.
    pub id: u64,
    /// The model.
    pub model: Model,
    /// `/score` response encoding.
    pub score: score::Encoder,
    /// The version as decimal text, for response headers.
    pub version_text: String,
    /// Predictions and drift signals of this version.
    pub stats: crate::stats::ModelStats,
}

impl ServedModel {
    /// Wraps a validated model.
    pub fn new(model: Model) -> Self {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            score: score::Encoder::new(&model),
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
    /// The registry holds several models and none was named.
    #[error("the registry holds several models ({0}); name one with --model")]
    Ambiguous(String),
    /// The registry holds no model.
    #[error("the registry holds no model yet")]
    Empty,
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
}

impl LoadError {
    /// A short, bounded reason for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            LoadError::Registry(RegistryError::Io { .. }) => "registry_io",
            LoadError::Registry(_) => "registry",
            LoadError::Artifact { source, .. } => source.reason(),
            LoadError::NameMismatch { .. } => "name_mismatch",
            LoadError::Ambiguous(_) | LoadError::Empty => "no_model",
            LoadError::SchemaChange { .. } => "schema_change",
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
    /// A new version is now served.
    Swapped {
        /// Version served before, if any.
        from: Option<u64>,
        /// Version served now.
        to: u64,
    },
}

/// The model a server follows: a registry, a model name and an alias.
#[derive(Debug)]
pub struct Catalog {
    registry: Arc<dyn Registry>,
    model: Option<String>,
    alias: String,
    limits: TreeLimits,
    allow_schema_change: bool,
    current: ArcSwapOption<ServedModel>,
    metrics: Arc<Metrics>,
    /// The last version that failed to load, and the SHA-256 of its bytes: not retried
    /// (nor counted again) until the alias or the bytes change.
    last_failure: std::sync::Mutex<Option<(u64, String)>>,
}

impl Catalog {
    /// A catalog with no model loaded yet. `model: None` serves the registry's only model.
    pub fn new(
        registry: Arc<dyn Registry>,
        model: Option<String>,
        alias: String,
        limits: TreeLimits,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            registry,
            model,
            alias,
            limits,
            allow_schema_change: false,
            current: ArcSwapOption::empty(),
            metrics,
            last_failure: std::sync::Mutex::new(None),
        }
    }

    /// Whether a version with other feature names may replace the served one.
    pub fn allow_schema_change(mut self, allow: bool) -> Self {
        self.allow_schema_change = allow;
        self
    }

    /// The model being served, if any, as an owned handle (for work that outlives a
    /// synchronous section, e.g. a blocking task).
    #[inline]
    pub fn current(&self) -> Option<Arc<ServedModel>> {
        self.current.load_full()
    }

    /// The model being served, as a cheap guard that touches no shared reference count.
    /// Hold it only within synchronous code (not across `.await`).
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Option<Arc<ServedModel>>> {
        self.current.load()
    }

    fn model_name(&self) -> Result<String, LoadError> {
        if let Some(m) = &self.model {
            return Ok(m.clone());
        }
        let models = self.registry.models()?;
        match models.as_slice() {
            [] => Err(LoadError::Empty),
            [one] => Ok(one.clone()),
            many => Err(LoadError::Ambiguous(many.join(", "))),
        }
    }

    /// Re-reads the alias; if it points to another version, loads and validates that
    /// version and only then swaps it in. On any failure the current model stays.
    /// Blocking (file I/O): call from a blocking thread.
    pub fn reload(&self) -> Result<Reloaded, LoadError> {
        let result = self.try_reload();
        match &result {
            Ok(Reloaded::Swapped { .. }) => self.metrics.model_load("success"),
            Ok(Reloaded::Unchanged(_) | Reloaded::KnownBad(_)) => {}
            Err(e) => self.metrics.model_load(e.reason()),
        }
        result
    }

    fn try_reload(&self) -> Result<Reloaded, LoadError> {
        let name = self.model_name()?;
        let version = self.registry.resolve(&name, &self.alias)?;
        let from = self.current.load().as_ref().map(|m| m.model.version());
        if from == Some(version) {
            return Ok(Reloaded::Unchanged(version));
        }
        let bytes = self.registry.read(&name, version)?;
        let digest = crate::model::sha256_hex(&bytes);
        let mut last_failure = self.last_failure.lock().expect("lock");
        if last_failure.as_ref() == Some(&(version, digest.clone())) {
            return Ok(Reloaded::KnownBad(version));
        }
        let checked = self.check(&name, version, &bytes);
        *last_failure = checked.is_err().then_some((version, digest));
        drop(last_failure);
        let model = checked?;
        self.metrics
            .set_model(model.name(), version, model.sha256());
        self.current.store(Some(Arc::new(ServedModel::new(model))));
        Ok(Reloaded::Swapped { from, to: version })
    }

    /// Decodes and validates a version; refuses another model's artifact and, unless
    /// allowed, a change of features.
    fn check(&self, name: &str, version: u64, bytes: &[u8]) -> Result<Model, LoadError> {
        let model = Model::from_bytes(bytes, version, &self.limits)
            .map_err(|source| LoadError::Artifact { version, source })?;
        if model.name() != name {
            return Err(LoadError::NameMismatch {
                version,
                expected: name.to_owned(),
                found: model.name().to_owned(),
            });
        }
        if let Some(current) = self.current.load().as_ref()
            && !self.allow_schema_change
            && current.model.features() != model.features()
        {
            return Err(LoadError::SchemaChange {
                version,
                from: current.model.features().to_vec(),
                to: model.features().to_vec(),
            });
        }
        Ok(model)
    }
}

/// The reload task: waits for signals (watcher, poll, SIGHUP) and reloads on a blocking
/// thread, one reload at a time. Signals that arrive during a reload coalesce into one
/// more reload, which re-reads the alias: the last published state wins.
pub async fn follow(catalog: Arc<Catalog>, signal: Arc<tokio::sync::Notify>) {
    loop {
        signal.notified().await;
        let c = catalog.clone();
        match tokio::task::spawn_blocking(move || c.reload()).await {
            Ok(Ok(Reloaded::Swapped { from, to })) => {
                tracing::info!(from = ?from, to, "now serving a new version")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, reason = e.reason(), "reload failed; still serving the current version")
            }
            Err(e) => tracing::error!(error = %e, "reload task panicked"),
        }
    }
}

/// Predicts `rows` rows of `values` (row-major) into `classes`, and their probabilities
/// into `proba` when given (`rows × classes`), recording each row in the model's
/// statistics when `record`. The one prediction path of every protocol.
pub fn predict(
    served: &ServedModel,
    values: &[f64],
    classes: &mut Vec<usize>,
    mut proba: Option<&mut Vec<f64>>,
    record: bool,
) {
    let model = &served.model;
    let f = model.num_features();
    let k = model.num_classes();
    classes.clear();
    if let Some(p) = proba.as_deref_mut() {
        p.clear();
        p.resize(values.len() / f * k, 0.0);
    }
    for (i, row) in values.chunks_exact(f).enumerate() {
        let class = model.predict(row);
        if record {
            served.stats.record(row, class);
        }
        classes.push(class);
        if let Some(p) = proba.as_deref_mut() {
            model.predict_proba(row, &mut p[i * k..(i + 1) * k]);
        }
    }
}
