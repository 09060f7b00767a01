//! [`Registry`] for [`ObjectRegistry`]: the directory layout's operations as object
//! reads, listings and conditional writes.

use bytes::Bytes;
use object_store::PutMode;

use super::{CLAIM, Got, ObjectRegistry, check};
use crate::name::valid_name;
use crate::registry::fs::{ARTIFACT_FILE, MAX_RECORD_BYTES};
use crate::registry::{
    AliasListing, AliasRecord, DATASET_MANIFEST, DATASETS_DIR, MAX_ARTIFACT_BYTES, Registry,
    RegistryError, parse_version,
};

impl Registry for ObjectRegistry {
    fn models(&self) -> Result<Vec<String>, RegistryError> {
        let (mut dirs, _) = self.list(&[])?;
        dirs.retain(|d| valid_name(d) && d != DATASETS_DIR);
        dirs.sort();
        Ok(dirs)
    }

    fn versions(&self, model: &str) -> Result<Vec<u64>, RegistryError> {
        check(model)?;
        let v = self.versions_under(&[model, "versions"])?;
        if v.is_empty() {
            return Err(RegistryError::ModelNotFound(model.into()));
        }
        Ok(v)
    }

    fn alias_listing(&self, model: &str) -> Result<AliasListing, RegistryError> {
        self.require_model(model)?;
        let (_, names) = self.list(&[model, "aliases"])?;
        Ok(AliasListing::read_each(names, |name| {
            Ok(self.read_alias(model, name, true)?.map(|(rec, _)| rec))
        }))
    }

    fn alias(&self, model: &str, alias: &str) -> Result<AliasRecord, RegistryError> {
        match self.read_alias(model, alias, true)? {
            Some((rec, _)) => Ok(rec),
            None => {
                self.require_model(model)?;
                Err(RegistryError::AliasNotFound {
                    model: model.into(),
                    alias: alias.into(),
                })
            }
        }
    }

    fn read(&self, model: &str, version: u64) -> Result<Vec<u8>, RegistryError> {
        check(model)?;
        let key = self.key(&[model, "versions", &version.to_string(), ARTIFACT_FILE]);
        match self.get(&key, MAX_ARTIFACT_BYTES, None)? {
            Got::Found(b, _) => Ok(b.to_vec()),
            _ => Err(RegistryError::VersionNotFound {
                model: model.into(),
                version,
            }),
        }
    }

    fn read_head(&self, model: &str, version: u64, len: u64) -> Result<Vec<u8>, RegistryError> {
        check(model)?;
        let key = self.key(&[model, "versions", &version.to_string(), ARTIFACT_FILE]);
        match self.get_head(&key, len.min(MAX_ARTIFACT_BYTES))? {
            Some(b) => Ok(b.to_vec()),
            None => Err(RegistryError::VersionNotFound {
                model: model.into(),
                version,
            }),
        }
    }

    fn publish(&self, model: &str, artifact: &[u8]) -> Result<u64, RegistryError> {
        check(model)?;
        self.claim_next(&[model, "versions"], ARTIFACT_FILE, artifact)
    }

    fn set_alias(
        &self,
        model: &str,
        alias: &str,
        version: u64,
    ) -> Result<AliasRecord, RegistryError> {
        check(alias)?;
        if !self.versions(model)?.contains(&version) {
            return Err(RegistryError::VersionNotFound {
                model: model.into(),
                version,
            });
        }
        self.update_alias(model, alias, |old| Ok(AliasRecord::moved(old, version)))
    }

    fn rollback(&self, model: &str, alias: &str) -> Result<AliasRecord, RegistryError> {
        check(alias)?;
        self.require_model(model)?;
        self.update_alias(model, alias, |old| {
            AliasRecord::rolled_back(old, model, alias)
        })
    }

    fn put_record(
        &self,
        model: &str,
        version: u64,
        kind: &str,
        json: &[u8],
    ) -> Result<(), RegistryError> {
        check(kind)?;
        self.require_model(model)?;
        let key = self.key(&[model, "records", &format!("{version}.{kind}.json")]);
        self.put(&key, Bytes::copy_from_slice(json), PutMode::Overwrite)
            .map(|_| ())
    }

    fn get_record(
        &self,
        model: &str,
        version: u64,
        kind: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        check(model)?;
        check(kind)?;
        let key = self.key(&[model, "records", &format!("{version}.{kind}.json")]);
        match self.get(&key, MAX_RECORD_BYTES, None)? {
            Got::Found(b, _) => Ok(Some(b.to_vec())),
            _ => Ok(None),
        }
    }

    fn datasets(&self) -> Result<Vec<String>, RegistryError> {
        let (mut dirs, _) = self.list(&[DATASETS_DIR])?;
        dirs.retain(|d| valid_name(d));
        dirs.sort();
        Ok(dirs)
    }

    fn dataset_versions(&self, name: &str) -> Result<Vec<u64>, RegistryError> {
        check(name)?;
        let mut v: Vec<u64> = self
            .list_all(&[DATASETS_DIR, name, "versions"])?
            .iter()
            .filter_map(|k| k.split_once('/'))
            .filter(|(_, file)| *file == DATASET_MANIFEST)
            .filter_map(|(n, _)| parse_version(n))
            .collect();
        v.sort_unstable();
        v.dedup();
        Ok(v)
    }

    fn read_dataset_file(
        &self,
        name: &str,
        version: u64,
        file: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        check(name)?;
        check(file)?;
        let key = self.key(&[DATASETS_DIR, name, "versions", &version.to_string(), file]);
        match self.get(&key, MAX_ARTIFACT_BYTES, None)? {
            Got::Found(b, _) => Ok(Some(b.to_vec())),
            _ => Ok(None),
        }
    }

    fn publish_dataset(&self, name: &str, files: &[(&str, &[u8])]) -> Result<u64, RegistryError> {
        check(name)?;
        for (file, _) in files {
            check(file)?;
        }
        let version = self.claim_next(&[DATASETS_DIR, name, "versions"], CLAIM, b"")?;
        let n = version.to_string();
        // The manifest last: the version is listed only once every file is there.
        let mut ordered: Vec<&(&str, &[u8])> = files.iter().collect();
        ordered.sort_by_key(|(f, _)| *f == DATASET_MANIFEST);
        for (file, bytes) in ordered {
            let key = self.key(&[DATASETS_DIR, name, "versions", &n, file]);
            self.put(&key, Bytes::copy_from_slice(bytes), PutMode::Overwrite)?;
        }
        Ok(version)
    }
}
