//! The model registry: versioned, immutable artifacts and movable aliases.
//!
//! [`Registry`] is the small interface the server and CLI use; [`FsRegistry`] stores it
//! in a directory. Other stores (object storage, MLflow) implement the same trait.
//!
//! Besides models, a registry keeps datasets: named, numbered, immutable versions, each a
//! few small files (see [`crate::data`] for what the files hold). Everything that reads
//! or writes either goes through the trait, never through a backend's storage directly.

mod cache;
mod fs;
mod location;
#[cfg(feature = "remote")]
mod mlflow;
#[cfg(feature = "remote")]
mod object;
mod watch;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use cache::{Cached, OnContact};
pub use fs::{
    DATASETS_DIR, FsRegistry, MAX_ALIAS_BYTES, MAX_ARTIFACT_BYTES, MAX_RECORD_BYTES, STALE_AFTER,
    parse_version,
};
pub use location::{Cloud, Location, LocationError};
#[cfg(feature = "remote")]
pub use mlflow::MlflowRegistry;
#[cfg(feature = "remote")]
pub use object::ObjectRegistry;
pub use watch::{keep_watching, watch};

/// The registry at `location`: the one place a backend is chosen, by the location's
/// scheme. Nothing is contacted yet; a remote registry fails here only when its
/// configuration (e.g. credentials in the environment) cannot be used.
pub fn open(location: &Location) -> Result<std::sync::Arc<dyn Registry>, RegistryError> {
    Ok(match location {
        Location::Dir(dir) => std::sync::Arc::new(FsRegistry::new(dir)),
        #[cfg(feature = "remote")]
        Location::Object {
            cloud,
            bucket,
            prefix,
        } => std::sync::Arc::new(ObjectRegistry::new(*cloud, bucket, prefix)?),
        #[cfg(feature = "remote")]
        Location::Mlflow { url } => std::sync::Arc::new(MlflowRegistry::new(url)?),
        #[cfg(not(feature = "remote"))]
        Location::Object { .. } | Location::Mlflow { .. } => {
            return Err(location::refuse(
                &location.to_string(),
                "this treeserve was built without remote registries (cargo feature `remote`, \
                 on by default): build it with default features, or use a directory",
            )
            .into());
        }
    })
}

/// Installs ring as the process's rustls crypto provider, once; a no-op when the process
/// already has one. Every HTTPS client needs a provider: the remote registries call this
/// before building theirs, and so must other code building a reqwest client in the same
/// process (the tests do).
#[cfg(feature = "remote")]
pub fn tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// How much of an artifact [`version_manifest`] reads from a registry that reads ranges:
/// a manifest fits (IRIS's is 3 KiB; an import's, with its features, golden rows and
/// statistics, tens of KiB); a longer one is read whole.
pub const MANIFEST_HEAD_BYTES: u64 = 64 * 1024;

/// A version's manifest, and whether the artifact's checksums were verified: from its
/// first [`MANIFEST_HEAD_BYTES`] where the registry reads ranges (object stores: the trees
/// are not downloaded, nor checked), else, or with `verify`, from the whole artifact.
pub fn version_manifest(
    reg: &dyn Registry,
    model: &str,
    version: u64,
    verify: bool,
) -> Result<Result<(crate::model::Manifest, bool), crate::model::ArtifactError>, RegistryError> {
    if !verify {
        let head = reg.read_head(model, version, MANIFEST_HEAD_BYTES)?;
        if (head.len() as u64) < MANIFEST_HEAD_BYTES {
            // Shorter than asked: the whole object, checked whole (a truncated one says so).
            return Ok(crate::model::read_manifest(&head).map(|m| (m, true)));
        }
        match crate::model::read_manifest_head(&head) {
            Ok(Some(found)) => return Ok(Ok(found)),
            Ok(None) => {}
            Err(e) => return Ok(Err(e)),
        }
    }
    let bytes = reg.read(model, version)?;
    Ok(crate::model::read_manifest(&bytes).map(|m| (m, true)))
}

/// The alias the server follows by default.
pub const DEFAULT_ALIAS: &str = "production";

/// The file every dataset version has: a version is listed by
/// [`Registry::dataset_versions`] only once this file is in it.
pub const DATASET_MANIFEST: &str = "dataset.json";

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A file system operation failed.
    #[error("{op} {path}: {source}{}", io_hint(source))]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// No such model.
    #[error("model {0:?} is not in the registry")]
    ModelNotFound(String),
    /// No such version.
    #[error("model {model:?} has no version {version}")]
    VersionNotFound {
        /// Model name.
        model: String,
        /// Version asked for.
        version: u64,
    },
    /// No such alias.
    #[error("model {model:?} has no alias {alias:?}")]
    AliasNotFound {
        /// Model name.
        model: String,
        /// Alias asked for.
        alias: String,
    },
    /// Rollback asked of an alias with no earlier version.
    #[error("alias {alias:?} of model {model:?} has no earlier version to roll back to")]
    NoHistory {
        /// Model name.
        model: String,
        /// Alias.
        alias: String,
    },
    /// A model, alias, dataset or dataset file name that is not allowed.
    #[error(
        "invalid name {0:?}: use letters, digits, '-', '_' or '.', starting with a letter or digit"
    )]
    InvalidName(String),
    /// A registry file that is not read: not a regular file, over its size limit, or
    /// too slow to read.
    #[error("refusing registry file {path}: {detail}")]
    Refused {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
    /// The next version number would overflow.
    #[error(
        "cannot number the next version: {path} holds version 18446744073709551615, the largest possible; remove that stray directory if it is not a real version"
    )]
    VersionsExhausted {
        /// The versions directory.
        path: String,
    },
    /// A call to a remote registry (object store, MLflow) failed: unreachable, refused,
    /// or timed out.
    #[error("{op} {url}: {detail}")]
    Remote {
        /// What was being done.
        op: &'static str,
        /// The object or endpoint.
        url: String,
        /// What went wrong, and what to do.
        detail: String,
    },
    /// A conditional write kept losing to other writers.
    #[error(
        "{what} kept changing under this update ({tries} tries): another writer is moving it; run it again"
    )]
    Contended {
        /// What was being updated.
        what: String,
        /// Tries made.
        tries: usize,
    },
    /// Another writer moved an alias while this update wrote it (a registry without
    /// conditional writes, MLflow: the change is read back after it is written).
    #[error(
        "{model}@{alias} was moved to version {theirs} by another writer during this update (which set version {ours}); see `treeserve models {model}` and run it again if need be"
    )]
    Overtaken {
        /// The model.
        model: String,
        /// The alias.
        alias: String,
        /// The version this update set.
        ours: u64,
        /// The version it points to now.
        theirs: u64,
    },
    /// `--registry` was refused.
    #[error(transparent)]
    Location(#[from] LocationError),
    /// A registry file is unreadable.
    #[error("corrupt registry file {path}: {detail}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

/// What an alias points to, and where it pointed before (most recent last).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasRecord {
    /// The version the alias points to.
    pub version: u64,
    /// Earlier versions, oldest first; `rollback` pops the last.
    #[serde(default)]
    pub history: Vec<u64>,
    /// When the alias last moved, RFC 3339.
    #[serde(default)]
    pub updated: String,
}

/// Most earlier versions an alias remembers.
pub(crate) const HISTORY_LIMIT: usize = 100;

impl AliasRecord {
    /// The record after pointing an alias whose record is `old` (if it exists) at
    /// `version` at time `updated`: the old version joins the history (at most
    /// [`HISTORY_LIMIT`] kept) unless it is the same.
    pub fn moved_at(old: Option<AliasRecord>, version: u64, updated: String) -> Self {
        let mut history = Vec::new();
        if let Some(old) = old {
            history = old.history;
            if old.version != version {
                history.push(old.version);
            }
        }
        if history.len() > HISTORY_LIMIT {
            history.drain(..history.len() - HISTORY_LIMIT);
        }
        AliasRecord {
            version,
            history,
            updated,
        }
    }

    /// [`AliasRecord::moved_at`] now.
    pub fn moved(old: Option<AliasRecord>, version: u64) -> Self {
        Self::moved_at(old, version, now())
    }

    /// The record after `rollback` of `alias` of `model` (its record `old`, if it
    /// exists): the last earlier version, now.
    pub fn rolled_back(
        old: Option<AliasRecord>,
        model: &str,
        alias: &str,
    ) -> Result<Self, RegistryError> {
        let mut record = old.ok_or_else(|| RegistryError::AliasNotFound {
            model: model.into(),
            alias: alias.into(),
        })?;
        record.version = record
            .history
            .pop()
            .ok_or_else(|| RegistryError::NoHistory {
                model: model.into(),
                alias: alias.into(),
            })?;
        record.updated = now();
        Ok(record)
    }
}

/// `name` if it is a valid model, alias, dataset or file name, else
/// [`RegistryError::InvalidName`].
pub(crate) fn check_name(name: &str) -> Result<(), RegistryError> {
    if crate::name::valid_name(name) {
        Ok(())
    } else {
        Err(RegistryError::InvalidName(name.into()))
    }
}

/// Now, RFC 3339 in seconds (when an alias moved).
pub(crate) fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// A model's aliases, each read on its own: one unreadable alias file does not hide the
/// others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AliasListing {
    /// The readable aliases.
    pub aliases: BTreeMap<String, AliasRecord>,
    /// Aliases whose file cannot be used, with why.
    pub broken: BTreeMap<String, String>,
}

impl AliasListing {
    /// Reads each of `names` that is an alias name with `read` (`None`: gone meanwhile);
    /// an alias that cannot be read is listed as broken, with why.
    pub(crate) fn read_each(
        names: impl IntoIterator<Item = String>,
        mut read: impl FnMut(&str) -> Result<Option<AliasRecord>, RegistryError>,
    ) -> Self {
        let mut out = AliasListing::default();
        for name in names.into_iter().filter(|n| crate::name::valid_name(n)) {
            match read(&name) {
                Ok(Some(rec)) => {
                    out.aliases.insert(name, rec);
                }
                Ok(None) => {}
                Err(e) => {
                    out.broken.insert(name, e.to_string());
                }
            }
        }
        out
    }
}

/// A registry of versioned model artifacts.
pub trait Registry: Send + Sync + std::fmt::Debug {
    /// Model names, sorted.
    fn models(&self) -> Result<Vec<String>, RegistryError>;
    /// Published versions of a model, ascending.
    fn versions(&self, model: &str) -> Result<Vec<u64>, RegistryError>;
    /// Aliases of a model, each read on its own (names that are not alias names are
    /// ignored; an unreadable alias is listed as broken).
    fn alias_listing(&self, model: &str) -> Result<AliasListing, RegistryError>;
    /// The readable aliases of a model (see [`Registry::alias_listing`]).
    fn aliases(&self, model: &str) -> Result<BTreeMap<String, AliasRecord>, RegistryError> {
        Ok(self.alias_listing(model)?.aliases)
    }
    /// One alias's record.
    fn alias(&self, model: &str, alias: &str) -> Result<AliasRecord, RegistryError>;
    /// The version an alias points to.
    fn resolve(&self, model: &str, alias: &str) -> Result<u64, RegistryError> {
        Ok(self.alias(model, alias)?.version)
    }
    /// The artifact bytes of a version.
    fn read(&self, model: &str, version: u64) -> Result<Vec<u8>, RegistryError>;
    /// The first `len` bytes of a version's artifact (all of it when shorter), for
    /// reading its manifest without the trees. A registry where a whole read is cheap (a
    /// directory) or that cannot read a range (MLflow) returns the whole artifact.
    fn read_head(&self, model: &str, version: u64, len: u64) -> Result<Vec<u8>, RegistryError> {
        let _ = len;
        self.read(model, version)
    }
    /// Publishes an artifact as the next version of `model`; returns the version. Atomic:
    /// readers see all of it or nothing, concurrent publishers get distinct versions.
    fn publish(&self, model: &str, artifact: &[u8]) -> Result<u64, RegistryError>;
    /// Points `alias` at `version`, remembering where it pointed before.
    fn set_alias(
        &self,
        model: &str,
        alias: &str,
        version: u64,
    ) -> Result<AliasRecord, RegistryError>;
    /// Moves `alias` back to the version it pointed to before.
    fn rollback(&self, model: &str, alias: &str) -> Result<AliasRecord, RegistryError>;
    /// Stores a JSON record of kind `kind` (e.g. `gate`) about a published version,
    /// replacing an earlier one atomically.
    fn put_record(
        &self,
        model: &str,
        version: u64,
        kind: &str,
        json: &[u8],
    ) -> Result<(), RegistryError>;
    /// The record of kind `kind` about a version, if any.
    fn get_record(
        &self,
        model: &str,
        version: u64,
        kind: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError>;
    /// The local directory holding the registry, when it is one: the server watches it
    /// for file events. `None` (remote registries) leaves following to the poll.
    fn local_dir(&self) -> Option<&std::path::Path> {
        None
    }

    /// Dataset names, sorted. Dataset and file names follow [`crate::name::valid_name`]; a name that
    /// does not is refused with [`RegistryError::InvalidName`] by every dataset method.
    fn datasets(&self) -> Result<Vec<String>, RegistryError>;
    /// Complete versions of a dataset (those with a [`DATASET_MANIFEST`] file), ascending;
    /// empty if the dataset has none or does not exist.
    fn dataset_versions(&self, name: &str) -> Result<Vec<u64>, RegistryError>;
    /// The bytes of one file of a dataset version; `None` if the dataset, the version or
    /// the file does not exist.
    fn read_dataset_file(
        &self,
        name: &str,
        version: u64,
        file: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError>;
    /// Publishes `files` (name, bytes) as the next version of dataset `name`; returns the
    /// version. Atomic like [`Registry::publish`]: readers see all the files or none,
    /// concurrent publishers get distinct versions. Include a [`DATASET_MANIFEST`] file,
    /// or the version is never listed.
    fn publish_dataset(&self, name: &str, files: &[(&str, &[u8])]) -> Result<u64, RegistryError>;
}

/// What to do about the file-system errors an operator can fix.
fn io_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::ReadOnlyFilesystem => {
            " (the registry is read-only here: run this where it is mounted writable)"
        }
        std::io::ErrorKind::StorageFull => " (the disk is full: free space and run it again)",
        std::io::ErrorKind::PermissionDenied => {
            " (run as a user allowed to use these files, or fix their permissions)"
        }
        _ => "",
    }
}
