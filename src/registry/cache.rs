//! The server's view of a registry: every call's outcome reported (is the registry up?),
//! and, with `--cache-dir`, a local cache of what was verified, so a replica that starts
//! while the registry is unreachable serves what it last served, and one that restarts
//! does not download an artifact it already has.
//!
//! ```text
//! CACHE/
//!   artifacts/SHA256          artifact bytes, named by their SHA-256 (checked on every read)
//!   models/NAME/ALIAS.alias   the alias's last record seen (JSON)
//!   models/NAME/V.version     the SHA-256 of version V's artifact
//!   models.json               the registry's model names, last listed
//! ```
//!
//! Only artifacts whose header checksum holds are kept (a truncated or corrupt download is
//! never cached), and a cached file is used only when its SHA-256 matches its name: a
//! damaged cache falls back to the registry. Versions are immutable, so a cached version
//! is served from the cache without asking the registry; aliases always ask, and fall
//! back to the cache only when the registry cannot be reached.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::fs::write_atomic;
use super::{AliasListing, AliasRecord, Registry, RegistryError};

/// Told after each registry call whether the registry answered (`true`) or could not be
/// reached (`false`).
pub type OnContact = Arc<dyn Fn(bool) + Send + Sync>;

/// A registry seen through the server's cache (see the module docs).
pub struct Cached {
    inner: Arc<dyn Registry>,
    dir: Option<PathBuf>,
    on_contact: OnContact,
}

impl std::fmt::Debug for Cached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached")
            .field("inner", &self.inner)
            .field("dir", &self.dir)
            .finish()
    }
}

/// Whether an error means the registry could not be reached (as opposed to an answer,
/// such as "no such alias").
fn unreachable(e: &RegistryError) -> bool {
    matches!(e, RegistryError::Remote { .. } | RegistryError::Io { .. })
}

impl Cached {
    /// `inner` seen through the cache in `dir` (`None`: no cache, only the contact
    /// reports). Cache files are created as needed.
    pub fn new(inner: Arc<dyn Registry>, dir: Option<&Path>, on_contact: OnContact) -> Self {
        Self {
            inner,
            dir: dir.map(Path::to_path_buf),
            on_contact,
        }
    }

    /// Calls the registry and reports whether it answered.
    fn call<T>(
        &self,
        f: impl FnOnce(&dyn Registry) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let r = f(&*self.inner);
        (self.on_contact)(!matches!(&r, Err(e) if unreachable(e)));
        r
    }

    /// A path in the cache; `None` without a cache or when a part is not a plain name
    /// (model and alias names reach here before the registry checks them).
    fn path(&self, parts: &[&str]) -> Option<PathBuf> {
        if !parts.iter().all(|p| crate::name::valid_name(p)) {
            return None;
        }
        let mut p = self.dir.clone()?;
        for part in parts {
            p.push(part);
        }
        Some(p)
    }

    /// Writes a cache file; a cache that cannot be written is logged, never an error.
    fn store(&self, parts: &[&str], bytes: &[u8]) {
        let Some(path) = self.path(parts) else { return };
        let result = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .map_err(|e| e.to_string())
            .and_then(|_| write_atomic(&path, bytes).map_err(|e| e.to_string()));
        if let Err(e) = result {
            tracing::warn!(error = %e, path = %path.display(), "cannot write the registry cache");
        }
    }

    fn load(&self, parts: &[&str]) -> Option<Vec<u8>> {
        std::fs::read(self.path(parts)?).ok()
    }

    /// A cached artifact by SHA-256, only if its bytes still hash to it.
    fn artifact(&self, sha: &str) -> Option<Vec<u8>> {
        let bytes = self.load(&["artifacts", sha])?;
        (crate::model::sha256_hex(&bytes) == sha).then_some(bytes)
    }

    fn cached_alias(&self, model: &str, alias: &str) -> Option<AliasRecord> {
        serde_json::from_slice(&self.load(&["models", model, &format!("{alias}.alias")])?).ok()
    }

    fn cached_version(&self, model: &str, version: u64) -> Option<Vec<u8>> {
        let sha = self.load(&["models", model, &format!("{version}.version")])?;
        self.artifact(std::str::from_utf8(&sha).ok()?.trim())
    }

    fn served_from_cache(&self, what: &str, e: &RegistryError) {
        tracing::debug!(error = %e, "the registry is unreachable: using the cached {what}");
    }
}

impl Registry for Cached {
    fn models(&self) -> Result<Vec<String>, RegistryError> {
        match self.call(|r| r.models()) {
            Ok(names) => {
                if self.dir.is_some() {
                    let json = serde_json::to_vec(&names).expect("names serialize");
                    if self.load(&["models.json"]).as_deref() != Some(&json[..]) {
                        self.store(&["models.json"], &json);
                    }
                }
                Ok(names)
            }
            Err(e) if unreachable(&e) => {
                match self
                    .load(&["models.json"])
                    .and_then(|b| serde_json::from_slice::<Vec<String>>(&b).ok())
                {
                    Some(names) => {
                        self.served_from_cache("model list", &e);
                        Ok(names
                            .into_iter()
                            .filter(|n| crate::name::valid_name(n))
                            .collect())
                    }
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    fn versions(&self, model: &str) -> Result<Vec<u64>, RegistryError> {
        self.call(|r| r.versions(model))
    }

    fn alias_listing(&self, model: &str) -> Result<AliasListing, RegistryError> {
        self.call(|r| r.alias_listing(model))
    }

    fn aliases(&self, model: &str) -> Result<BTreeMap<String, AliasRecord>, RegistryError> {
        self.call(|r| r.aliases(model))
    }

    fn alias(&self, model: &str, alias: &str) -> Result<AliasRecord, RegistryError> {
        match self.call(|r| r.alias(model, alias)) {
            Ok(rec) => {
                if self.dir.is_some() && self.cached_alias(model, alias).as_ref() != Some(&rec) {
                    let json = serde_json::to_vec(&rec).expect("alias serializes");
                    self.store(&["models", model, &format!("{alias}.alias")], &json);
                }
                Ok(rec)
            }
            Err(e) if unreachable(&e) => match self.cached_alias(model, alias) {
                Some(rec) if self.cached_version(model, rec.version).is_some() => {
                    self.served_from_cache(&format!("alias {model}@{alias}"), &e);
                    Ok(rec)
                }
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    fn read_head(&self, model: &str, version: u64, len: u64) -> Result<Vec<u8>, RegistryError> {
        match self.cached_version(model, version) {
            Some(bytes) => Ok(bytes),
            None => self.call(|r| r.read_head(model, version, len)),
        }
    }

    fn read(&self, model: &str, version: u64) -> Result<Vec<u8>, RegistryError> {
        if let Some(bytes) = self.cached_version(model, version) {
            return Ok(bytes);
        }
        let bytes = self.call(|r| r.read(model, version))?;
        // Only an artifact whose checksum holds is worth keeping.
        if self.dir.is_some() && crate::model::unseal(&bytes).is_ok() {
            let sha = crate::model::sha256_hex(&bytes);
            self.store(&["artifacts", &sha], &bytes);
            self.store(
                &["models", model, &format!("{version}.version")],
                sha.as_bytes(),
            );
        }
        Ok(bytes)
    }

    fn publish(&self, model: &str, artifact: &[u8]) -> Result<u64, RegistryError> {
        self.call(|r| r.publish(model, artifact))
    }

    fn set_alias(
        &self,
        model: &str,
        alias: &str,
        version: u64,
    ) -> Result<AliasRecord, RegistryError> {
        self.call(|r| r.set_alias(model, alias, version))
    }

    fn rollback(&self, model: &str, alias: &str) -> Result<AliasRecord, RegistryError> {
        self.call(|r| r.rollback(model, alias))
    }

    fn put_record(
        &self,
        model: &str,
        version: u64,
        kind: &str,
        json: &[u8],
    ) -> Result<(), RegistryError> {
        self.call(|r| r.put_record(model, version, kind, json))
    }

    fn get_record(
        &self,
        model: &str,
        version: u64,
        kind: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        self.call(|r| r.get_record(model, version, kind))
    }

    fn local_dir(&self) -> Option<&Path> {
        self.inner.local_dir()
    }

    fn datasets(&self) -> Result<Vec<String>, RegistryError> {
        self.call(|r| r.datasets())
    }

    fn dataset_versions(&self, name: &str) -> Result<Vec<u64>, RegistryError> {
        self.call(|r| r.dataset_versions(name))
    }

    fn read_dataset_file(
        &self,
        name: &str,
        version: u64,
        file: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        self.call(|r| r.read_dataset_file(name, version, file))
    }

    fn publish_dataset(&self, name: &str, files: &[(&str, &[u8])]) -> Result<u64, RegistryError> {
        self.call(|r| r.publish_dataset(name, files))
    }
}
