//! One model's catalog: the version its alias points to, swapped atomically, and a small
//! cache of pinned versions.

mod fallback;

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;

use super::{LoadError, Reloaded, ServedModel};
use crate::metrics::Metrics;
use crate::model::Model;
use crate::model::tree::TreeLimits;
use crate::registry::{Registry, RegistryError};

/// How a catalog loads and keeps versions.
#[derive(Debug, Clone)]
pub struct CatalogOptions {
    /// The alias followed.
    pub alias: String,
    /// Structural limits for loaded trees.
    pub limits: TreeLimits,
    /// Whether a version with other feature names may replace the served one.
    pub allow_schema_change: bool,
    /// Most pinned versions kept loaded (least recently used is dropped first).
    pub pinned_versions: usize,
}

impl Default for CatalogOptions {
    fn default() -> Self {
        Self {
            alias: crate::registry::DEFAULT_ALIAS.to_owned(),
            limits: TreeLimits::default(),
            allow_schema_change: false,
            pinned_versions: 4,
        }
    }
}

#[derive(Debug)]
struct Pinned {
    served: Arc<ServedModel>,
    last_used: u64,
}

/// A model the server follows: a registry, a model name and an alias.
#[derive(Debug)]
pub struct Catalog {
    registry: Arc<dyn Registry>,
    name: String,
    opts: CatalogOptions,
    current: ArcSwapOption<ServedModel>,
    metrics: Arc<Metrics>,
    /// The last version that failed to load, and the SHA-256 of its bytes: not retried
    /// (nor counted again) until the alias or the bytes change.
    last_failure: Mutex<Option<(u64, String)>>,
    /// Pinned versions other than the alias's, with a use counter for eviction.
    pinned: Mutex<(u64, Vec<Pinned>)>,
    /// One pinned load at a time, so a burst of first requests reads the file once.
    pin_loading: Mutex<()>,
    /// Why an earlier version is served instead of the alias's, when it is.
    fallback: Mutex<fallback::State>,
}

impl Catalog {
    /// A catalog of model `name` with no version loaded yet.
    pub fn new(
        registry: Arc<dyn Registry>,
        name: String,
        opts: CatalogOptions,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            registry,
            name,
            opts,
            current: ArcSwapOption::empty(),
            metrics,
            last_failure: Mutex::new(None),
            pinned: Mutex::new((0, Vec::new())),
            pin_loading: Mutex::new(()),
            fallback: Mutex::default(),
        }
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The alias followed.
    pub fn alias(&self) -> &str {
        &self.opts.alias
    }

    /// The alias's version, if loaded, as an owned handle (for work that outlives a
    /// synchronous section, e.g. a blocking task).
    #[inline]
    pub fn current(&self) -> Option<Arc<ServedModel>> {
        self.current.load_full()
    }

    /// The alias's version, as a cheap guard that touches no shared reference count.
    /// Hold it only within synchronous code (not across `.await`).
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Option<Arc<ServedModel>>> {
        self.current.load()
    }

    /// Re-reads the alias; if it points to another version, loads and validates that
    /// version and only then swaps it in. On any failure the current version stays.
    /// Blocking (file I/O): call from a blocking thread.
    pub fn reload(&self) -> Result<Reloaded, LoadError> {
        let result = self.try_reload();
        match &result {
            Ok(Reloaded::Swapped { .. } | Reloaded::Fallback { .. }) => {
                self.metrics.model_load("success");
                self.metrics.swapped();
            }
            Ok(Reloaded::Unchanged(_) | Reloaded::KnownBad(_)) => {}
            Err(e) => self.metrics.model_load(e.reason()),
        }
        result
    }

    fn try_reload(&self) -> Result<Reloaded, LoadError> {
        let version = self.registry.resolve(&self.name, &self.opts.alias)?;
        let from = self.current.load().as_ref().map(|m| m.model.version());
        if from == Some(version) {
            return Ok(Reloaded::Unchanged(version));
        }
        let bytes = match self.registry.read(&self.name, version) {
            Ok(b) => b,
            Err(e) => return self.unservable(version, e.into()),
        };
        let digest = crate::model::sha256_hex(&bytes);
        let mut last_failure = self.last_failure.lock().expect("lock");
        if last_failure.as_ref() == Some(&(version, digest.clone())) {
            return Ok(Reloaded::KnownBad(version));
        }
        let checked = self.check(version, &bytes, true);
        *last_failure = checked.is_err().then_some((version, digest));
        drop(last_failure);
        let model = match checked {
            Ok(m) => m,
            Err(e) => return self.unservable(version, e),
        };
        self.fallback.lock().expect("lock").serving = None;
        // A pinned copy of this version is now the alias's: serve one copy.
        self.pinned
            .lock()
            .expect("lock")
            .1
            .retain(|p| p.served.model.version() != version);
        self.current.store(Some(Arc::new(ServedModel::new(model))));
        Ok(Reloaded::Swapped { from, to: version })
    }

    /// Decodes and validates a version; refuses another model's artifact and, for the
    /// alias's version unless allowed, a change of features.
    fn check(&self, version: u64, bytes: &[u8], follows_alias: bool) -> Result<Model, LoadError> {
        let model = Model::from_bytes(bytes, version, &self.opts.limits)
            .map_err(|source| LoadError::Artifact { version, source })?;
        if model.name() != self.name {
            return Err(LoadError::NameMismatch {
                version,
                expected: self.name.clone(),
                found: model.name().to_owned(),
            });
        }
        if follows_alias
            && let Some(current) = self.current.load().as_ref()
            && !self.opts.allow_schema_change
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

    /// Version `version` if it is loaded: the alias's, or a cached pinned one. Cheap; no
    /// I/O.
    pub fn cached(&self, version: u64) -> Option<Arc<ServedModel>> {
        if let Some(c) = self.current.load().as_ref()
            && c.model.version() == version
        {
            return Some(c.clone());
        }
        let mut pinned = self.pinned.lock().expect("lock");
        pinned.0 += 1;
        let tick = pinned.0;
        let entry = pinned
            .1
            .iter_mut()
            .find(|p| p.served.model.version() == version)?;
        entry.last_used = tick;
        Some(entry.served.clone())
    }

    /// Version `version`, loading and validating it if it is not loaded, and keeping it
    /// in the pinned cache. Blocking (file I/O) when not cached: call from a blocking
    /// thread.
    pub fn pinned(&self, version: u64) -> Result<Arc<ServedModel>, LoadError> {
        if let Some(s) = self.cached(version) {
            return Ok(s);
        }
        let _one_at_a_time = self.pin_loading.lock().expect("lock");
        if let Some(s) = self.cached(version) {
            return Ok(s);
        }
        let bytes = self.registry.read(&self.name, version)?;
        let result = self.check(version, &bytes, false);
        self.metrics.model_load(match &result {
            Ok(_) => "success",
            Err(e) => e.reason(),
        });
        let served = Arc::new(ServedModel::new(result?));
        let mut pinned = self.pinned.lock().expect("lock");
        pinned.0 += 1;
        let tick = pinned.0;
        let entries = &mut pinned.1;
        if entries.len() >= self.opts.pinned_versions.max(1)
            && let Some(oldest) = entries
                .iter()
                .enumerate()
                .min_by_key(|(_, p)| p.last_used)
                .map(|(i, _)| i)
        {
            entries.swap_remove(oldest);
        }
        entries.push(Pinned {
            served: served.clone(),
            last_used: tick,
        });
        Ok(served)
    }

    /// The pinned versions loaded now (not the alias's), for statistics.
    pub fn pinned_loaded(&self) -> Vec<Arc<ServedModel>> {
        let pinned = self.pinned.lock().expect("lock");
        pinned.1.iter().map(|p| p.served.clone()).collect()
    }

    /// Published versions of the model. Blocking.
    pub fn versions(&self) -> Result<Vec<u64>, RegistryError> {
        self.registry.versions(&self.name)
    }
}
