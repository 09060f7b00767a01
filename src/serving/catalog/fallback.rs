//! A server that starts with nothing loaded and an alias pointing at a version that
//! cannot be served falls back to the newest earlier version of that alias that loads,
//! and says so; a running server keeps what it serves.

use std::sync::Arc;

use super::{Catalog, LoadError, Reloaded, ServedModel};

/// Earlier versions of the alias tried, newest first.
const MAX_TRIED: usize = 5;

/// What the fallback did.
#[derive(Debug, Default)]
pub(super) struct State {
    /// Why an earlier version is served, when it is.
    pub(super) serving: Option<String>,
    /// The alias's version and history for which no earlier version loaded, and why: not
    /// tried again (artifacts are immutable) until the alias changes.
    failed: Option<((u64, Vec<u64>), String)>,
}

impl Catalog {
    /// The alias's `version` failed with `error`: keeps the served version if there is
    /// one; else serves the newest earlier version of the alias (its history) that loads,
    /// or says why none does.
    pub(super) fn unservable(&self, version: u64, error: LoadError) -> Result<Reloaded, LoadError> {
        if self.current.load().is_some() {
            return Err(error);
        }
        let history = self
            .registry
            .alias(&self.name, &self.opts.alias)
            .map(|r| r.history)
            .unwrap_or_default();
        let key = (version, history.clone());
        if let Some((k, tried)) = &self.fallback.lock().expect("lock").failed
            && *k == key
        {
            return Err(LoadError::NoFallback {
                version,
                error: Box::new(error),
                tried: tried.clone(),
            });
        }
        let mut earlier: Vec<u64> = Vec::new();
        for &v in history.iter().rev() {
            if v != version && !earlier.contains(&v) {
                earlier.push(v);
            }
        }
        let mut tried = Vec::new();
        for v in earlier.into_iter().take(MAX_TRIED) {
            let loaded = self
                .registry
                .read(&self.name, v)
                .map_err(LoadError::from)
                .and_then(|bytes| self.check(v, &bytes, true));
            match loaded {
                Ok(model) => {
                    let why = format!(
                        "alias {:?} points at version {version}, which cannot be served ({error}); serving version {v}, the newest earlier version of the alias that loads",
                        self.opts.alias
                    );
                    tracing::error!(model = %self.name, served = v, alias_version = version, "{why}");
                    let mut state = self.fallback.lock().expect("lock");
                    state.serving = Some(why);
                    state.failed = None;
                    drop(state);
                    self.current.store(Some(Arc::new(ServedModel::new(model))));
                    return Ok(Reloaded::Fallback {
                        to: v,
                        alias_version: version,
                    });
                }
                Err(e) => tried.push(format!("version {v}: {e}")),
            }
        }
        let tried = if tried.is_empty() {
            "the alias has no earlier version".to_owned()
        } else {
            tried.join("; ")
        };
        self.fallback.lock().expect("lock").failed = Some((key, tried.clone()));
        Err(LoadError::NoFallback {
            version,
            error: Box::new(error),
            tried,
        })
    }

    /// Why an earlier version is served instead of the alias's, when it is.
    pub fn fallback(&self) -> Option<String> {
        self.fallback.lock().expect("lock").serving.clone()
    }
}
