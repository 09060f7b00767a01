//! [`DatasetStore`]: dataset versions kept in a registry, through the [`Registry`] trait
//! only, so any backend that implements it holds datasets too.

use std::sync::Arc;

use super::{
    DATA_FILE, DataError, DatasetManifest, DatasetRef, MANIFEST_FILE, Schema, Table, checks,
};
use crate::registry::{Registry, RegistryError};

/// The datasets of a registry.
#[derive(Debug, Clone)]
pub struct DatasetStore {
    registry: Arc<dyn Registry>,
}

impl DatasetStore {
    /// The datasets of `registry`.
    pub fn new(registry: Arc<dyn Registry>) -> Self {
        Self { registry }
    }

    /// The registry the datasets are in.
    pub fn registry(&self) -> &Arc<dyn Registry> {
        &self.registry
    }

    /// Dataset names, sorted.
    pub fn names(&self) -> Result<Vec<String>, DataError> {
        Ok(self.registry.datasets()?)
    }

    /// Versions of a dataset, ascending (empty if it has none).
    pub fn versions(&self, name: &str) -> Result<Vec<u64>, DataError> {
        Ok(self.registry.dataset_versions(name)?)
    }

    /// A version's manifest.
    pub fn manifest(&self, name: &str, version: u64) -> Result<DatasetManifest, DataError> {
        let bytes = self
            .registry
            .read_dataset_file(name, version, MANIFEST_FILE)?
            .ok_or_else(|| DataError::NotFound(format!("{name}:{version}")))?;
        let mut m: DatasetManifest = serde_json::from_slice(&bytes).map_err(|e| {
            DataError::from(RegistryError::Corrupt {
                path: format!("{MANIFEST_FILE} of dataset {name}:{version}"),
                detail: e.to_string(),
            })
        })?;
        m.version = version;
        Ok(m)
    }

    /// Every version's manifest, oldest first.
    pub fn manifests(&self, name: &str) -> Result<Vec<DatasetManifest>, DataError> {
        self.versions(name)?
            .into_iter()
            .map(|v| self.manifest(name, v))
            .collect()
    }

    /// A version's rows, as stored (canonical CSV).
    pub fn data(&self, name: &str, version: u64) -> Result<Vec<u8>, DataError> {
        self.registry
            .read_dataset_file(name, version, DATA_FILE)?
            .ok_or_else(|| DataError::Unreadable {
                source_name: format!("{name}:{version}"),
                message: format!("its {DATA_FILE} is missing"),
            })
    }

    /// The version a reference names.
    pub fn resolve(&self, r: &DatasetRef) -> Result<DatasetManifest, DataError> {
        let name = r.name();
        let versions = self.versions(name)?;
        let missing = || DataError::NotFound(format!("{r:?}"));
        match r {
            DatasetRef::Latest(_) => {
                let v = *versions
                    .last()
                    .ok_or_else(|| DataError::NotFound(name.into()))?;
                self.manifest(name, v)
            }
            DatasetRef::Version(_, v) => {
                if versions.contains(v) {
                    self.manifest(name, *v)
                } else {
                    Err(DataError::NotFound(format!("{name}:{v}")))
                }
            }
            DatasetRef::Sha(_, prefix) => {
                let mut found = None;
                for m in self.manifests(name)? {
                    if m.sha256.starts_with(prefix.as_str()) {
                        found = Some(m);
                    }
                }
                found.ok_or_else(missing)
            }
        }
    }

    /// Stores `table` as a new version of dataset `name` (or returns the existing version
    /// with the same content). `findings` are the checks' (non-critical) findings.
    pub fn add(
        &self,
        name: &str,
        table: &Table,
        schema: &Schema,
        parent: Option<&DatasetManifest>,
        findings: Vec<checks::Finding>,
    ) -> Result<(DatasetManifest, bool), DataError> {
        let csv = table.to_csv();
        let sha256 = crate::model::sha256_hex(&csv);
        if let Some(existing) = self
            .manifests(name)?
            .into_iter()
            .find(|m| m.sha256 == sha256)
        {
            return Ok((existing, false));
        }
        let profile = checks::profile(table, schema);
        let mut sources: Vec<String> = parent.map(|p| p.sources.clone()).unwrap_or_default();
        sources.push(table.source.clone());
        let mut manifest = DatasetManifest {
            name: name.to_owned(),
            version: 0,
            sha256,
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            parent: parent.map(|p| p.version),
            sources,
            schema: schema.clone(),
            rows: table.rows.len() as u64,
            columns: profile.columns,
            classes: profile.classes,
            duplicate_rows: profile.duplicate_rows,
            findings,
        };
        // The stored manifest says version 0: the number is the registry's, known only
        // once the publish wins it, and filled in when a manifest is read.
        let mut json = serde_json::to_vec_pretty(&manifest).expect("json");
        json.push(b'\n');
        manifest.version = self
            .registry
            .publish_dataset(name, &[(DATA_FILE, &csv), (MANIFEST_FILE, &json)])?;
        Ok((manifest, true))
    }

    /// A version's rows, as a table whose source is `NAME:VERSION`.
    pub fn table(&self, m: &DatasetManifest) -> Result<Table, DataError> {
        let bytes = self.data(&m.name, m.version)?;
        Table::parse(&bytes, &format!("{}:{}", m.name, m.version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::FsRegistry;

    #[test]
    fn a_shared_registry_sees_what_a_cloned_one_stored() {
        let dir = tempfile::tempdir().unwrap();
        let table = Table::parse(b"a,b,y\n1,2,x\n3,4,z\n", "t.csv").unwrap();
        let schema = checks::schema_of(&table, "y", None);
        let (m, new) = DatasetStore::new(Arc::new(FsRegistry::new(dir.path())))
            .add("d", &table, &schema, None, Vec::new())
            .unwrap();
        assert!(new && m.version == 1);

        // As the server builds it: from the registry it already shares.
        let shared: Arc<dyn Registry> = Arc::new(FsRegistry::new(dir.path()));
        let store = DatasetStore::new(Arc::clone(&shared));
        assert_eq!(store.names().unwrap(), ["d"]);
        assert_eq!(store.resolve(&DatasetRef::Latest("d".into())).unwrap(), m);
        let read = store.table(&m).unwrap();
        assert_eq!((&read.columns, &read.rows), (&table.columns, &table.rows));
        assert_eq!(read.source, "d:1");
        assert!(matches!(
            store.manifest("d", 2),
            Err(DataError::NotFound(s)) if s == "d:2"
        ));
        assert!(matches!(
            store.versions("../d"),
            Err(DataError::Registry(RegistryError::InvalidName(_)))
        ));
        // The second add of the same rows is the same version.
        let (again, new) = store.add("d", &table, &schema, None, Vec::new()).unwrap();
        assert!(!new && again == m);
    }
}
