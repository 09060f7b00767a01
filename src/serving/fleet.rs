//! Every model a server serves: one [`Catalog`] per model, each following its own alias.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::catalog::{Catalog, CatalogOptions};
use super::{LoadError, Reloaded};
use crate::metrics::Metrics;
use crate::registry::{Registry, RegistryError};

/// The models served at one moment, sorted by name.
#[derive(Debug, Default)]
pub struct Models {
    list: Vec<Arc<Catalog>>,
    default: Option<usize>,
}

/// Which model `/score` answers with, decided once (see [`Fleet::score_model`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreModel {
    /// The model, or `None` when `/score` has none (several models at start).
    pub name: Option<String>,
    /// Why, for people.
    pub why: String,
}

impl Models {
    /// The model `/score` answers with: the first `--model`, or the only model loaded when
    /// the server started (never changed by models that appear later).
    #[inline]
    pub fn default_model(&self) -> Option<&Arc<Catalog>> {
        self.default.map(|i| &self.list[i])
    }

    /// The model called `name`.
    #[inline]
    pub fn get(&self, name: &str) -> Option<&Arc<Catalog>> {
        self.list
            .binary_search_by(|c| c.name().cmp(name))
            .ok()
            .map(|i| &self.list[i])
    }

    /// Every model, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Catalog>> {
        self.list.iter()
    }

    /// Names of every model.
    pub fn names(&self) -> Vec<&str> {
        self.list.iter().map(|c| c.name()).collect()
    }
}

/// What one reconciliation with the registry did, per model.
#[derive(Debug, Default)]
pub struct FleetReport {
    /// Listing the registry's models failed (the served set was kept).
    pub discovery: Option<RegistryError>,
    /// Each model's reload.
    pub models: Vec<(String, Result<Reloaded, LoadError>)>,
}

/// A model discovery found, and what its alias resolved to.
type Discovered = (String, Result<u64, RegistryError>);

/// Every model the server serves.
#[derive(Debug)]
pub struct Fleet {
    registry: Arc<dyn Registry>,
    /// Models named on the command line (the first is the default); empty: every model
    /// in the registry that has the alias.
    named: Vec<String>,
    opts: CatalogOptions,
    metrics: Arc<Metrics>,
    models: ArcSwap<Models>,
    /// Set on shutdown: never ready again.
    draining: std::sync::atomic::AtomicBool,
    /// `/score`'s model, once decided.
    score_model: std::sync::OnceLock<ScoreModel>,
}

impl Fleet {
    /// A fleet with nothing loaded yet; [`Fleet::reload`] loads it.
    pub fn new(
        registry: Arc<dyn Registry>,
        named: Vec<String>,
        opts: CatalogOptions,
        metrics: Arc<Metrics>,
    ) -> Self {
        let fleet = Self {
            registry,
            named,
            opts,
            metrics,
            models: ArcSwap::from_pointee(Models::default()),
            draining: std::sync::atomic::AtomicBool::new(false),
            score_model: std::sync::OnceLock::new(),
        };
        if let Some(first) = fleet.named.first() {
            let _ = fleet.score_model.set(ScoreModel {
                name: Some(first.clone()),
                why: "the first --model".into(),
            });
            fleet.set_models(fleet.named.clone());
        }
        fleet
    }

    /// The model `/score` answers with and why, once decided: the first `--model`; else,
    /// at the first reconciliation that loads any model, the only model loaded then (or
    /// none, when several are). Models that appear later never change it. `None` while
    /// nothing has been loaded yet.
    pub fn score_model(&self) -> Option<&ScoreModel> {
        self.score_model.get()
    }

    /// The registry the fleet follows.
    pub fn registry(&self) -> &Arc<dyn Registry> {
        &self.registry
    }

    /// The models served now, as a cheap guard (hold it within synchronous code).
    #[inline]
    pub fn models(&self) -> arc_swap::Guard<Arc<Models>> {
        self.models.load()
    }

    /// The models served now, as an owned handle.
    pub fn models_full(&self) -> Arc<Models> {
        self.models.load_full()
    }

    /// Replaces the served set with `names` (sorted, deduplicated), keeping the catalogs
    /// of names already served.
    fn set_models(&self, mut names: Vec<String>) {
        let old = self.models.load_full();
        names.sort();
        names.dedup();
        if names == old.names() {
            return;
        }
        let list: Vec<Arc<Catalog>> = names
            .into_iter()
            .map(|n| {
                old.get(&n).cloned().unwrap_or_else(|| {
                    Arc::new(Catalog::new(
                        self.registry.clone(),
                        n,
                        self.opts.clone(),
                        self.metrics.clone(),
                    ))
                })
            })
            .collect();
        self.store(list);
    }

    /// Stores `list` as the served set, with `/score`'s model as decided.
    fn store(&self, list: Vec<Arc<Catalog>>) {
        let default = self
            .score_model
            .get()
            .and_then(|d| d.name.as_deref())
            .and_then(|d| list.iter().position(|c| c.name() == d));
        self.models.store(Arc::new(Models { list, default }));
    }

    /// Decides `/score`'s model at the first reconciliation that loaded any model.
    fn decide_score_model(&self) {
        if self.score_model.get().is_some() {
            return;
        }
        let models = self.models.load_full();
        let loaded: Vec<&str> = models
            .iter()
            .filter(|c| c.load().is_some())
            .map(|c| c.name())
            .collect();
        let decided = match loaded.as_slice() {
            [] => return,
            [only] => ScoreModel {
                name: Some((*only).to_owned()),
                why: "the only model loaded at start; models published later do not change it"
                    .into(),
            },
            several => ScoreModel {
                name: None,
                why: format!(
                    "{} models at start ({}) and no --model: /score has no model; use /models/{{model}}/score or name one with --model",
                    several.len(),
                    several.join(", ")
                ),
            },
        };
        match &decided.name {
            Some(name) => {
                tracing::info!(model = %name, why = %decided.why, "/score answers with this model")
            }
            None => tracing::warn!(why = %decided.why, "/score answers 404 no_default_model"),
        }
        if self.score_model.set(decided).is_ok() {
            self.store(models.list.clone());
        }
    }

    /// The metric handles.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Finds the models to serve (unless named on the command line) and reloads each.
    /// Blocking (file I/O): call from a blocking thread.
    pub fn reload(&self) -> FleetReport {
        let mut report = FleetReport::default();
        // The aliases discovery read, handed to each model's reload: one read a poll.
        let mut resolved = std::collections::HashMap::new();
        if self.named.is_empty() {
            match self.discover() {
                Ok(found) => {
                    let mut names = Vec::with_capacity(found.len());
                    for (name, version) in found {
                        names.push(name.clone());
                        resolved.insert(name, version);
                    }
                    // A model that vanished from the listing (a registry being moved or
                    // rebuilt) keeps serving its loaded version: nothing served is lost.
                    let served = self.models.load();
                    names.extend(
                        served
                            .iter()
                            .filter(|c| c.load().is_some())
                            .map(|c| c.name().to_owned()),
                    );
                    drop(served);
                    self.set_models(names);
                }
                Err(e) => report.discovery = Some(e),
            }
        }
        let models = self.models.load_full();
        for c in models.iter() {
            let reloaded = c.reload_resolved(resolved.remove(c.name()));
            report.models.push((c.name().to_owned(), reloaded));
            c.reload_sides();
        }
        self.decide_score_model();
        self.metrics.set_ready(self.ready());
        report
    }

    /// The registry's models that have the alias, each with what its alias resolved to.
    /// Only the followed alias is read, and a model whose alias cannot be used is still
    /// listed: its own reload reports why, and nothing else is affected.
    fn discover(&self) -> Result<Vec<Discovered>, RegistryError> {
        let mut found = Vec::new();
        for name in self.registry.models()? {
            match self.registry.resolve(&name, &self.opts.alias) {
                // No such alias, or a model being created or removed right now.
                Err(RegistryError::AliasNotFound { .. } | RegistryError::ModelNotFound(_)) => {}
                version => found.push((name, version)),
            }
        }
        Ok(found)
    }

    /// Marks the server as shutting down: from now on it is not ready (load balancers
    /// drain it), while it still serves.
    pub fn drain(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.metrics.set_ready(false);
    }

    /// Whether [`Fleet::drain`] was called.
    pub fn draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Ready to take traffic: not draining, `/score`'s model (if it has one) and every
    /// model named on the command line are loaded, and at least one model is.
    pub fn ready(&self) -> bool {
        if self.draining() {
            return false;
        }
        let models = self.models.load();
        let loaded = |c: &Catalog| c.load().is_some();
        let score = self.score_model().and_then(|d| d.name.as_deref());
        score.is_none_or(|d| models.get(d).is_some_and(|c| loaded(c)))
            && self
                .named
                .iter()
                .all(|n| models.get(n).is_some_and(|c| loaded(c)))
            && models.iter().any(|c| loaded(c))
    }
}
