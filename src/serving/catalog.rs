//! One model's catalog: the version its alias points to, swapped atomically, and a small
//! cache of pinned versions, bounded by count and by artifact bytes, loaded one at a
//! time (concurrent misses for a version share its load), with failed and missing
//! versions remembered for a few seconds so that misses cannot become a load storm.

mod fallback;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

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
    /// Most artifact bytes of pinned versions kept loaded.
    pub pinned_bytes: u64,
    /// The shadow's alias (`--shadow`).
    pub shadow: Option<String>,
    /// The canary's alias and share (`--canary`).
    pub canary: Option<super::side::CanarySplit>,
}

/// How long a pinned version that failed to load (or does not exist) is answered from
/// memory before the registry is read again.
pub const PINNED_FAILURE_TTL: Duration = Duration::from_secs(5);

/// Most failed or missing versions remembered per model.
const MAX_REMEMBERED_FAILURES: usize = 64;

impl Default for CatalogOptions {
    fn default() -> Self {
        Self {
            alias: crate::registry::DEFAULT_ALIAS.to_owned(),
            limits: TreeLimits::default(),
            allow_schema_change: false,
            pinned_versions: 16,
            pinned_bytes: 256 << 20,
            shadow: None,
            canary: None,
        }
    }
}

#[derive(Debug)]
struct Pinned {
    served: Arc<ServedModel>,
    /// Its artifact's size, what the byte bound counts.
    bytes: u64,
    last_used: u64,
}

/// A pinned version that could not be loaded, remembered for [`PINNED_FAILURE_TTL`].
#[derive(Debug)]
struct Failed {
    at: Instant,
    /// Not in the registry (a 404), or refused (the error's text).
    missing: bool,
    error: String,
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
    /// Pinned versions that failed to load recently.
    pin_failed: Mutex<HashMap<u64, Failed>>,
    /// Why an earlier version is served instead of the alias's, when it is.
    fallback: Mutex<fallback::State>,
    /// The shadow and canary versions.
    sides: super::side::Sides,
}

impl Catalog {
    /// A catalog of model `name` with no version loaded yet.
    pub fn new(
        registry: Arc<dyn Registry>,
        name: String,
        opts: CatalogOptions,
        metrics: Arc<Metrics>,
    ) -> Self {
        let sides = super::side::Sides::new(opts.shadow.clone(), opts.canary.clone());
        Self {
            sides,
            registry,
            name,
            opts,
            current: ArcSwapOption::empty(),
            metrics,
            last_failure: Mutex::new(None),
            pinned: Mutex::new((0, Vec::new())),
            pin_loading: Mutex::new(()),
            pin_failed: Mutex::new(HashMap::new()),
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

    pub(super) fn sides(&self) -> &super::side::Sides {
        &self.sides
    }

    pub(super) fn registry(&self) -> &Arc<dyn Registry> {
        &self.registry
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
        self.reload_resolved(None)
    }

    /// [`Catalog::reload`] with the alias already resolved (`Some`: by the fleet's
    /// discovery, in the same poll), so it is not read twice.
    pub(super) fn reload_resolved(
        &self,
        resolved: Option<Result<u64, RegistryError>>,
    ) -> Result<Reloaded, LoadError> {
        let result = self.try_reload(resolved);
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

    fn try_reload(
        &self,
        resolved: Option<Result<u64, RegistryError>>,
    ) -> Result<Reloaded, LoadError> {
        let version = match resolved {
            Some(r) => r?,
            None => self.registry.resolve(&self.name, &self.opts.alias)?,
        };
        let from = self.current.load().as_ref().map(|m| m.model.version());
        if from == Some(version) {
            return Ok(Reloaded::Unchanged(version));
        }
        let bytes = match self.registry.read(&self.name, version) {
            Ok(b) => b,
            Err(e) => return self.unservable(version, e.into()),
        };
        // Hashed only to compare with, or to remember, a failure: a good load's model
        // hashes the artifact itself.
        let digest = || crate::model::sha256_hex(&bytes);
        let mut last_failure = self.last_failure.lock().expect("lock");
        if let Some((v, d)) = last_failure.as_ref()
            && *v == version
            && *d == digest()
        {
            return Ok(Reloaded::KnownBad(version));
        }
        let checked = self.check(version, &bytes, true);
        *last_failure = checked.is_err().then(|| (version, digest()));
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
        let model = check(&self.name, version, bytes, &self.opts.limits)?;
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
    /// thread. Loads run one at a time per model: concurrent misses for one version wait
    /// for the first one's load and share it. A version that failed to load (or does not
    /// exist) is answered from memory for [`PINNED_FAILURE_TTL`].
    pub fn pinned(&self, version: u64) -> Result<Arc<ServedModel>, LoadError> {
        if let Some(s) = self.cached(version) {
            return Ok(s);
        }
        self.recent_failure(version)?;
        let _one_at_a_time = self.pin_loading.lock().expect("lock");
        if let Some(s) = self.cached(version) {
            return Ok(s);
        }
        self.recent_failure(version)?;
        let (registry, name, limits) = (self.registry.clone(), self.name.clone(), self.opts.limits);
        let (result, len) = on_loader_thread(move || match registry.read(&name, version) {
            Ok(bytes) => (check(&name, version, &bytes, &limits), bytes.len() as u64),
            Err(e) => (Err(LoadError::Registry(e)), 0),
        });
        self.metrics.model_load(match &result {
            Ok(_) => "success",
            Err(e) => e.reason(),
        });
        let model = match result {
            Ok(m) => m,
            Err(e) => {
                self.remember_failure(version, &e);
                return Err(e);
            }
        };
        let served = Arc::new(ServedModel::new(model));
        let mut pinned = self.pinned.lock().expect("lock");
        pinned.0 += 1;
        let tick = pinned.0;
        let entries = &mut pinned.1;
        // Least recently used first, until the new one fits both bounds (a version larger
        // than the byte bound alone is served but not kept).
        let fits = |entries: &Vec<Pinned>| {
            entries.len() < self.opts.pinned_versions.max(1)
                && entries.iter().map(|p| p.bytes).sum::<u64>() + len <= self.opts.pinned_bytes
        };
        while !entries.is_empty() && !fits(entries) {
            let oldest = entries
                .iter()
                .enumerate()
                .min_by_key(|(_, p)| p.last_used)
                .map(|(i, _)| i)
                .expect("not empty");
            entries.swap_remove(oldest);
        }
        if fits(entries) {
            entries.push(Pinned {
                served: served.clone(),
                bytes: len,
                last_used: tick,
            });
        }
        Ok(served)
    }

    /// The remembered failure of `version`, if it is recent.
    fn recent_failure(&self, version: u64) -> Result<(), LoadError> {
        let failed = self.pin_failed.lock().expect("lock");
        match failed.get(&version) {
            Some(f) if f.at.elapsed() < PINNED_FAILURE_TTL => Err(if f.missing {
                LoadError::Registry(RegistryError::VersionNotFound {
                    model: self.name.clone(),
                    version,
                })
            } else {
                LoadError::Unavailable(format!(
                    "{} (failed moments ago; retried after a few seconds)",
                    f.error
                ))
            }),
            _ => Ok(()),
        }
    }

    fn remember_failure(&self, version: u64, e: &LoadError) {
        let missing = matches!(
            e,
            LoadError::Registry(
                RegistryError::VersionNotFound { .. } | RegistryError::ModelNotFound(_)
            )
        );
        let mut failed = self.pin_failed.lock().expect("lock");
        failed.retain(|_, f| f.at.elapsed() < PINNED_FAILURE_TTL);
        if failed.len() >= MAX_REMEMBERED_FAILURES
            && let Some(oldest) = failed.iter().min_by_key(|(_, f)| f.at).map(|(v, _)| *v)
        {
            failed.remove(&oldest);
        }
        failed.insert(
            version,
            Failed {
                at: Instant::now(),
                missing,
                error: e.to_string(),
            },
        );
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

/// Decodes and validates version `version` of model `name`; refuses another model's
/// artifact.
fn check(name: &str, version: u64, bytes: &[u8], limits: &TreeLimits) -> Result<Model, LoadError> {
    let model = Model::from_bytes(bytes, version, limits)
        .map_err(|source| LoadError::Artifact { version, source })?;
    if model.name() != name {
        return Err(LoadError::NameMismatch {
            version,
            expected: name.to_owned(),
            found: model.name().to_owned(),
        });
    }
    Ok(model)
}

type Job = Box<dyn FnOnce() + Send>;

/// Runs a pinned load on the one loader thread of the process and waits for it. One
/// thread for every model's pinned loads: they never take more than one core, and their
/// transient memory (the artifact and its decoding, several times the loaded model) is
/// reused by the next load from the same allocator arena instead of staying behind in
/// the arena of whichever blocking thread ran it.
fn on_loader_thread<T: Send + 'static>(
    load: impl FnOnce() -> (Result<T, LoadError>, u64) + Send + 'static,
) -> (Result<T, LoadError>, u64) {
    static LOADER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let loader = LOADER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("pinned-loader".into())
            .spawn(move || {
                for job in rx {
                    // A panicking load drops its reply: the waiter sees it below.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the pinned-version loader thread");
        }
        Mutex::new(tx)
    });
    let (reply, answer) = mpsc::sync_channel(1);
    let job: Job = Box::new(move || {
        let _ = reply.send(load());
    });
    let sent = loader.lock().expect("lock").send(job);
    match sent.ok().and_then(|()| answer.recv().ok()) {
        Some(result) => result,
        None => (
            Err(LoadError::Unavailable(
                "the load did not finish (a bug: see the server's log)".into(),
            )),
            0,
        ),
    }
}
