//! The server's view of a registry: every call's outcome reported (is the registry up?),
//! and, with `--cache-dir`, a local cache of what was verified, so a replica that starts
//! while the registry is unreachable serves what it last served, and one that restarts
//! does not download an artifact it already has.
//!
//! ```text
//! CACHE/
//!   artifacts/SHA256          artifact bytes, named by their SHA-256 (checked on every read)
//!   models/NAME/ALIAS.alias   the alias's last record seen whose version is cached (JSON)
//!   models/NAME/V.version     the SHA-256 of version V's artifact
//!   models.json               the registry's model names, last listed
//! ```
//!
//! Only artifacts whose header checksum holds are kept (a truncated or corrupt download is
//! never cached), and a cached file is used only when its SHA-256 matches its name: a
//! damaged cache falls back to the registry. Versions are immutable, so a cached version
//! is served from the cache without asking the registry; aliases always ask, and fall
//! back to the cache only when the registry cannot be reached.
//!
//! An alias's record is written once its version is cached (read and checksummed): an
//! alias moved to a version that cannot be read (damaged, refused) leaves the cached record
//! on the last good one, so a replica restarted while the registry is away starts from the
//! version it served, not from nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
    /// Alias records seen whose version is not cached yet, by (model, alias): written
    /// when that version is.
    pending: Mutex<BTreeMap<(String, String), AliasRecord>>,
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
            pending: Mutex::default(),
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

    /// Whether version `version` of `model` has its files in the cache (their bytes are
    /// checked when read).
    fn has_version(&self, model: &str, version: u64) -> bool {
        let sha = self.load(&["models", model, &format!("{version}.version")]);
        sha.as_deref()
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| self.path(&["artifacts", s.trim()]))
            .is_some_and(|p| p.is_file())
    }

    fn store_alias(&self, model: &str, alias: &str, rec: &AliasRecord) {
        let json = serde_json::to_vec(rec).expect("alias serializes");
        self.store(&["models", model, &format!("{alias}.alias")], &json);
    }

    /// Remembers alias record `rec`: written now if its version is cached, else when it is.
    fn saw_alias(&self, model: &str, alias: &str, rec: &AliasRecord) {
        let key = (model.to_owned(), alias.to_owned());
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if self.cached_alias(model, alias).as_ref() == Some(rec) {
            pending.remove(&key);
        } else if self.has_version(model, rec.version) {
            pending.remove(&key);
            self.store_alias(model, alias, rec);
        } else {
            pending.insert(key, rec.clone());
        }
    }

    /// Writes the pending alias records of `model` that name `version`, just cached.
    fn cached_now(&self, model: &str, version: u64) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|(m, alias), rec| {
            let now = m == model && rec.version == version;
            if now {
                self.store_alias(model, alias, rec);
            }
            !now
        });
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
                if self.dir.is_some() {
                    self.saw_alias(model, alias, &rec);
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
            self.cached_now(model, version);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::FsRegistry;

    /// A registry in a temporary directory, and a cache directory.
    fn registry() -> (tempfile::TempDir, tempfile::TempDir, Arc<FsRegistry>) {
        let root = tempfile::tempdir().unwrap();
        let reg = Arc::new(FsRegistry::new(root.path().join("reg")));
        (root, tempfile::tempdir().unwrap(), reg)
    }

    fn cached(reg: &Arc<FsRegistry>, dir: &Path) -> Cached {
        Cached::new(reg.clone(), Some(dir), Arc::new(|_| {}))
    }

    #[test]
    fn an_alias_moved_to_a_damaged_version_leaves_the_cache_on_the_version_served() {
        let (root, cache, reg) = registry();
        let good = crate::model::seal(b"version one");
        let mut damaged = crate::model::seal(b"version two");
        *damaged.last_mut().unwrap() ^= 1;
        assert_eq!(reg.publish("m", &good).unwrap(), 1);
        assert_eq!(reg.publish("m", &damaged).unwrap(), 2);

        let first = cached(&reg, cache.path());
        reg.set_alias("m", "production", 1).unwrap();
        assert_eq!(first.alias("m", "production").unwrap().version, 1);
        assert_eq!(first.read("m", 1).unwrap(), good);
        reg.set_alias("m", "production", 2).unwrap();
        assert_eq!(first.alias("m", "production").unwrap().version, 2);
        assert_eq!(first.read("m", 2).unwrap(), damaged);
        assert!(
            first.cached_version("m", 2).is_none(),
            "damaged bytes are not kept"
        );

        // The registry goes away: its aliases can no longer be read.
        let aliases = root.path().join("reg/m/aliases");
        std::fs::remove_dir_all(&aliases).unwrap();
        std::fs::write(&aliases, b"not a directory").unwrap();
        let restarted = cached(&reg, cache.path());
        assert!(reg.alias("m", "production").is_err());
        let rec = restarted.alias("m", "production").unwrap();
        assert_eq!(rec.version, 1, "the last version whose bytes were kept");
        assert_eq!(restarted.read("m", rec.version).unwrap(), good);
    }

    #[test]
    fn an_alias_is_cached_once_its_version_is() {
        let (_root, cache, reg) = registry();
        let good = crate::model::seal(b"version one");
        reg.publish("m", &good).unwrap();
        reg.set_alias("m", "production", 1).unwrap();
        let c = cached(&reg, cache.path());
        c.alias("m", "production").unwrap();
        assert_eq!(c.cached_alias("m", "production"), None);
        c.read("m", 1).unwrap();
        assert_eq!(c.cached_alias("m", "production").unwrap().version, 1);
        assert!(c.pending.lock().unwrap().is_empty());
    }
}
