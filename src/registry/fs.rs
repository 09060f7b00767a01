//! The file-system registry.
//!
//! ```text
//! ROOT/
//!   NAME/
//!     versions/
//!       1/model.tsm        immutable once published
//!       2/model.tsm
//!     aliases/
//!       production         JSON AliasRecord, replaced by rename
//!     records/
//!       2.gate.json        JSON records about a version (its gate decision), replaced by rename
//!     .staging/            publishes in progress
//!     .lock                serializes alias updates and cleaning
//!   _datasets/             datasets (not a valid model name, so never listed as a model)
//!     NAME/
//!       versions/
//!         1/data.csv       immutable once published, like a model's versions
//!         1/dataset.json   the version is listed only once this is present
//!       .staging/
//! ```
//!
//! A version is published by writing its directory under `.staging/`, fsyncing, and renaming
//! it to `versions/N`. Renaming a directory onto a non-empty one fails, so two publishers
//! racing for `N` cannot both win: the loser retries with `N + 1`. Version directories
//! are named in canonical decimal (`7`, never `07` or `+7`); other names are not versions.
//!
//! Every file is read bounded (see `read`): regular files only (a symlink's target must be
//! one), under a size cap, within a time limit. Leftovers of killed writers (staging
//! directories, `.NAME.tmp-*` files) are removed under the lock once stale (see `write`).

mod read;
mod write;

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::{AliasListing, AliasRecord, DATASET_MANIFEST, Registry, RegistryError};
use crate::name::valid_name;

pub use read::{MAX_ALIAS_BYTES, MAX_ARTIFACT_BYTES, MAX_RECORD_BYTES};
pub(crate) use write::write_atomic;
pub use write::{STALE_AFTER, parse_version};
use write::{locked, publish_dir};

/// File name of the artifact inside a version directory.
pub const ARTIFACT_FILE: &str = "model.tsm";
/// Directory under the root that holds datasets.
pub const DATASETS_DIR: &str = "_datasets";

/// A registry stored under one directory.
#[derive(Debug, Clone)]
pub struct FsRegistry {
    root: PathBuf,
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RegistryError + 'a {
    move |source| RegistryError::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

use super::check_name as check;

/// The numbered subdirectories of `dir` that hold a file `marker`, ascending.
fn numbered(dir: &Path, marker: &str) -> std::io::Result<Vec<u64>> {
    let mut out: Vec<u64> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(parse_version))
        .filter(|v: &u64| dir.join(v.to_string()).join(marker).is_file())
        .collect();
    out.sort_unstable();
    Ok(out)
}

impl FsRegistry {
    /// A registry rooted at `root` (created on first publish).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn model_dir(&self, model: &str) -> Result<PathBuf, RegistryError> {
        check(model)?;
        Ok(self.root.join(model))
    }

    /// Path of a version's artifact.
    pub fn artifact_path(&self, model: &str, version: u64) -> Result<PathBuf, RegistryError> {
        Ok(self
            .model_dir(model)?
            .join("versions")
            .join(version.to_string())
            .join(ARTIFACT_FILE))
    }

    fn dataset_dir(&self, name: &str) -> Result<PathBuf, RegistryError> {
        check(name)?;
        Ok(self.root.join(DATASETS_DIR).join(name))
    }

    fn alias_path(&self, model: &str, alias: &str) -> Result<PathBuf, RegistryError> {
        check(alias)?;
        Ok(self.model_dir(model)?.join("aliases").join(alias))
    }

    fn require_model(&self, model: &str) -> Result<PathBuf, RegistryError> {
        let dir = self.model_dir(model)?;
        if dir.join("versions").is_dir() {
            Ok(dir)
        } else {
            Err(RegistryError::ModelNotFound(model.into()))
        }
    }

    fn read_alias(&self, model: &str, alias: &str) -> Result<Option<AliasRecord>, RegistryError> {
        let path = self.alias_path(model, alias)?;
        let Some(bytes) = read::read_capped(&path, read::ALIAS)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RegistryError::Corrupt {
                path: path.display().to_string(),
                detail: e.to_string(),
            })
    }

    fn write_alias(
        &self,
        model: &str,
        alias: &str,
        record: &AliasRecord,
    ) -> Result<(), RegistryError> {
        let path = self.alias_path(model, alias)?;
        let dir = path.parent().expect("alias has a parent");
        fs::create_dir_all(dir).map_err(io("create", dir))?;
        let mut json = serde_json::to_vec_pretty(record).expect("alias serializes");
        json.push(b'\n');
        write_atomic(&path, &json)
    }

    /// Runs `f` holding the model's lock file (alias read-modify-write), after removing
    /// stale leftovers of killed writers.
    fn locked<T>(
        &self,
        model: &str,
        f: impl FnOnce() -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let dir = self.require_model(model)?;
        locked(&dir, || {
            write::clean_stale(&dir);
            f()
        })
    }
}

/// A file's bytes, or `None` when it does not exist.
fn read_if_present(path: &Path, kind: read::Kind) -> Result<Option<Vec<u8>>, RegistryError> {
    read::read_capped(path, kind)
}

impl Registry for FsRegistry {
    fn local_dir(&self) -> Option<&Path> {
        Some(&self.root)
    }

    fn models(&self) -> Result<Vec<String>, RegistryError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", &self.root)(e)),
        };
        let mut out: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| valid_name(n) && self.root.join(n).join("versions").is_dir())
            .collect();
        out.sort();
        Ok(out)
    }

    fn versions(&self, model: &str) -> Result<Vec<u64>, RegistryError> {
        let dir = self.require_model(model)?.join("versions");
        numbered(&dir, ARTIFACT_FILE).map_err(io("list", &dir))
    }

    fn alias_listing(&self, model: &str) -> Result<AliasListing, RegistryError> {
        let dir = self.require_model(model)?.join("aliases");
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(AliasListing::default()),
            Err(e) => return Err(io("list", &dir)(e)),
        };
        // Names that are not alias names (temporary files start with '.') are not aliases;
        // each alias is read on its own, so one unreadable file spoils only itself.
        let names = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok());
        Ok(AliasListing::read_each(names, |name| {
            self.read_alias(model, name)
        }))
    }

    fn alias(&self, model: &str, alias: &str) -> Result<AliasRecord, RegistryError> {
        self.require_model(model)?;
        self.read_alias(model, alias)?
            .ok_or_else(|| RegistryError::AliasNotFound {
                model: model.into(),
                alias: alias.into(),
            })
    }

    fn read(&self, model: &str, version: u64) -> Result<Vec<u8>, RegistryError> {
        let path = self.artifact_path(model, version)?;
        read::read_capped(&path, read::ARTIFACT)?.ok_or_else(|| RegistryError::VersionNotFound {
            model: model.into(),
            version,
        })
    }

    fn publish(&self, model: &str, artifact: &[u8]) -> Result<u64, RegistryError> {
        publish_dir(&self.model_dir(model)?, &[(ARTIFACT_FILE, artifact)])
    }

    fn put_record(
        &self,
        model: &str,
        version: u64,
        kind: &str,
        json: &[u8],
    ) -> Result<(), RegistryError> {
        check(kind)?;
        let dir = self.require_model(model)?.join("records");
        fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        write_atomic(&dir.join(format!("{version}.{kind}.json")), json)
    }

    fn get_record(
        &self,
        model: &str,
        version: u64,
        kind: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        check(kind)?;
        let path = self
            .model_dir(model)?
            .join("records")
            .join(format!("{version}.{kind}.json"));
        read_if_present(&path, read::RECORD)
    }

    fn set_alias(
        &self,
        model: &str,
        alias: &str,
        version: u64,
    ) -> Result<AliasRecord, RegistryError> {
        check(alias)?;
        self.locked(model, || {
            if !self.artifact_path(model, version)?.is_file() {
                return Err(RegistryError::VersionNotFound {
                    model: model.into(),
                    version,
                });
            }
            let record = AliasRecord::moved(self.read_alias(model, alias)?, version);
            self.write_alias(model, alias, &record)?;
            Ok(record)
        })
    }

    fn rollback(&self, model: &str, alias: &str) -> Result<AliasRecord, RegistryError> {
        check(alias)?;
        self.locked(model, || {
            let record = AliasRecord::rolled_back(self.read_alias(model, alias)?, model, alias)?;
            self.write_alias(model, alias, &record)?;
            Ok(record)
        })
    }

    fn datasets(&self) -> Result<Vec<String>, RegistryError> {
        let dir = self.root.join(DATASETS_DIR);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", &dir)(e)),
        };
        let mut out: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| valid_name(n))
            .collect();
        out.sort();
        Ok(out)
    }

    fn dataset_versions(&self, name: &str) -> Result<Vec<u64>, RegistryError> {
        let dir = self.dataset_dir(name)?.join("versions");
        match numbered(&dir, DATASET_MANIFEST) {
            Ok(v) => Ok(v),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io("list", &dir)(e)),
        }
    }

    fn read_dataset_file(
        &self,
        name: &str,
        version: u64,
        file: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        check(file)?;
        let path = self
            .dataset_dir(name)?
            .join("versions")
            .join(version.to_string())
            .join(file);
        read_if_present(&path, read::DATASET_FILE)
    }

    fn publish_dataset(&self, name: &str, files: &[(&str, &[u8])]) -> Result<u64, RegistryError> {
        let dir = self.dataset_dir(name)?;
        for (file, _) in files {
            check(file)?;
        }
        publish_dir(&dir, files)
    }
}

#[cfg(test)]
mod tests;
