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

impl Models {
    /// The model `/score` answers with: the first `--model`, or the only model served.
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
        };
        if !fleet.named.is_empty() {
            fleet.set_models(fleet.named.clone());
        }
        fleet
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
        let default_name = self.named.first().cloned();
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
        let default = match &default_name {
            Some(d) => list.iter().position(|c| c.name() == d),
            None if list.len() == 1 => Some(0),
            None => None,
        };
        self.models.store(Arc::new(Models { list, default }));
    }

    /// Finds the models to serve (unless named on the command line) and reloads each.
    /// Blocking (file I/O): call from a blocking thread.
    pub fn reload(&self) -> FleetReport {
        let mut report = FleetReport::default();
        if self.named.is_empty() {
            match self.discover() {
                Ok(mut names) => {
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
            report.models.push((c.name().to_owned(), c.reload()));
        }
        self.metrics.set_ready(self.ready());
        report
    }

    /// The registry's models that have the alias.
    fn discover(&self) -> Result<Vec<String>, RegistryError> {
        let mut names = Vec::new();
        for name in self.registry.models()? {
            match self.registry.aliases(&name) {
                Ok(aliases) if aliases.contains_key(&self.opts.alias) => names.push(name),
                Ok(_) => {}
                // A model being created or removed right now: look again next time.
                Err(RegistryError::ModelNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(names)
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

    /// Ready to take traffic: not draining, the default model (if any) and every model
    /// named on the command line are loaded, and at least one model is.
    pub fn ready(&self) -> bool {
        if self.draining() {
            return false;
        }
        let models = self.models.load();
        let loaded = |c: &Catalog| c.load().is_some();
        models.default_model().is_none_or(|c| loaded(c))
            && self
                .named
                .iter()
                .all(|n| models.get(n).is_some_and(|c| loaded(c)))
            && models.iter().any(|c| loaded(c))
    }
}
