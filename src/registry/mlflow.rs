//! The MLflow Model Registry backend, over MLflow's REST API 2.0.
//!
//! A registered model is a treeserve model, a model version a version, an MLflow alias an
//! alias (its history, for `rollback`, in a registered-model tag: see [`history`]).
//! `publish` creates a run in the experiment `treeserve` (its params, metrics and tags from
//! the model's manifest: see [`logged`]), uploads `model.tsm` through the
//! tracking server's artifact proxy (`mlflow server --serve-artifacts`), and registers a
//! version whose source is that run's `treeserve` directory: the version exists only once
//! its artifact does. `read` serves either such a `model.tsm`, or a model logged with one
//! of MLflow's tree flavors (`xgboost`, `lightgbm`, `onnx`), read from its `MLmodel` file
//! and built by the importers into a validated artifact (see [`flavor`]); pickles are
//! refused. Records (`put_record`) are artifacts of the version's run. Datasets have no
//! MLflow counterpart here: every dataset method refuses, naming the registries that keep
//! them.
//!
//! Following costs one GET per poll (`registered-models/get`: aliases and tags together);
//! the artifacts are read only when the alias moved.

mod api;
mod client;
mod flavor;
mod history;
mod logged;

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Deserialize;
use serde_json::json;

use super::fs::{ARTIFACT_FILE, MAX_RECORD_BYTES};
use super::{AliasListing, AliasRecord, Registry, RegistryError, parse_version};
use crate::name::valid_name;
use client::Client;

/// The experiment `treeserve publish` logs its runs in.
pub const EXPERIMENT: &str = "treeserve";
/// The directory of a run's artifacts that holds a published `model.tsm`.
const MODEL_DIR: &str = "treeserve";
/// The directory of a run's artifacts that holds records about its versions.
const RECORDS_DIR: &str = "treeserve-records";
/// Pages read of one listing before it is refused (each up to [`PAGE`] entries).
const MAX_PAGES: usize = 1000;
const PAGE: &str = "1000";
/// Largest `MLmodel` file or input example read.
const MAX_SIDE_FILE_BYTES: u64 = 16 << 20;
const NOT_FOUND: &str = "RESOURCE_DOES_NOT_EXIST";

/// A registry in an MLflow tracking server.
pub struct MlflowRegistry {
    client: Client,
    /// The experiment id publishes log to, once known.
    experiment: Mutex<Option<String>>,
    /// Artifact directory of each run seen (immutable).
    runs: Mutex<HashMap<String, String>>,
    /// Versions refused by `read` (path, why): artifacts are immutable, so a follower
    /// whose alias points to one pays one call per poll, not a download.
    refused: Mutex<HashMap<(String, u64), (String, String)>>,
}

/// Refusals remembered, at most.
const MAX_REFUSED: usize = 256;

impl std::fmt::Debug for MlflowRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlflowRegistry")
            .field("url", &self.client.shown(""))
            .finish()
    }
}

#[derive(Debug, Default, Deserialize)]
struct RegisteredModel {
    #[serde(default)]
    aliases: Vec<AliasEntry>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

#[derive(Debug, Deserialize)]
struct AliasEntry {
    alias: String,
    version: String,
}

#[derive(Debug, Deserialize)]
struct KeyValue {
    key: String,
    #[serde(default)]
    value: String,
}

#[derive(Debug, Default, Deserialize)]
struct ModelVersion {
    #[serde(default)]
    version: String,
    #[serde(default)]
    run_id: String,
    #[serde(default)]
    status: String,
}

use super::{check_name as check, now};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Why dataset methods refuse.
fn no_datasets() -> RegistryError {
    RegistryError::Refused {
        path: "datasets".into(),
        detail: "an MLflow registry keeps models, not treeserve datasets: keep datasets in a \
                 directory or object-store registry (--registry DIR or s3://, az://, gs://)"
            .into(),
    }
}

impl MlflowRegistry {
    /// The registry of the tracking server at `url` (`http(s)://host:port[/path]`), with
    /// credentials from the environment (`MLFLOW_TRACKING_TOKEN`, or
    /// `MLFLOW_TRACKING_USERNAME` and `MLFLOW_TRACKING_PASSWORD`). Nothing is contacted
    /// until the first call.
    pub fn new(url: &str) -> Result<Self, RegistryError> {
        super::tls_provider();
        Ok(Self {
            client: Client::new(url.trim_end_matches('/'))?,
            experiment: Mutex::default(),
            runs: Mutex::default(),
            refused: Mutex::default(),
        })
    }
}

impl Registry for MlflowRegistry {
    fn models(&self) -> Result<Vec<String>, RegistryError> {
        #[derive(Deserialize)]
        struct Named {
            name: String,
        }
        let all: Vec<Named> = self.search("registered-models/search", "registered_models", None)?;
        let mut names: Vec<String> = all
            .into_iter()
            .map(|n| n.name)
            .filter(|n| valid_name(n))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn versions(&self, model: &str) -> Result<Vec<u64>, RegistryError> {
        check(model)?;
        let filter = format!("name='{model}'");
        let all: Vec<ModelVersion> =
            self.search("model-versions/search", "model_versions", Some(&filter))?;
        let mut v: Vec<u64> = all
            .iter()
            .filter(|m| m.status.is_empty() || m.status == "READY")
            .filter_map(|m| parse_version(&m.version))
            .collect();
        v.sort_unstable();
        v.dedup();
        if v.is_empty() {
            return Err(RegistryError::ModelNotFound(model.into()));
        }
        Ok(v)
    }

    fn alias_listing(&self, model: &str) -> Result<AliasListing, RegistryError> {
        let rm = self.registered_model(model)?;
        let mut out = AliasListing::default();
        for (name, rec) in self.records(&rm) {
            match rec {
                Ok(r) => {
                    out.aliases.insert(name, r);
                }
                Err(e) => {
                    out.broken.insert(name, e);
                }
            }
        }
        Ok(out)
    }

    fn alias(&self, model: &str, alias: &str) -> Result<AliasRecord, RegistryError> {
        check(alias)?;
        let rm = self.registered_model(model)?;
        match self.records(&rm).into_iter().find(|(n, _)| n == alias) {
            Some((_, Ok(rec))) => Ok(rec),
            Some((_, Err(detail))) => Err(RegistryError::Corrupt {
                path: format!("models:/{model}@{alias}"),
                detail,
            }),
            None => Err(RegistryError::AliasNotFound {
                model: model.into(),
                alias: alias.into(),
            }),
        }
    }

    fn read(&self, model: &str, version: u64) -> Result<Vec<u8>, RegistryError> {
        let slot = (model.to_owned(), version);
        if let Some((path, detail)) = self.refused.lock().expect("lock").get(&slot).cloned() {
            return Err(RegistryError::Refused { path, detail });
        }
        let result = self.read_version(model, version);
        if let Err(RegistryError::Refused { path, detail }) = &result {
            let mut refused = self.refused.lock().expect("lock");
            if refused.len() >= MAX_REFUSED {
                refused.clear();
            }
            refused.insert(slot, (path.clone(), detail.clone()));
        }
        result
    }

    fn publish(&self, model: &str, artifact: &[u8]) -> Result<u64, RegistryError> {
        check(model)?;
        #[derive(Deserialize)]
        struct Created {
            run: CreatedRun,
        }
        #[derive(Deserialize)]
        struct CreatedRun {
            info: CreatedInfo,
        }
        #[derive(Deserialize)]
        struct CreatedInfo {
            run_id: String,
            artifact_uri: String,
        }
        let experiment = self.experiment_id()?;
        let created: Created = self.client.post(
            "create",
            "runs/create",
            json!({
                "experiment_id": experiment,
                "run_name": format!("publish {model}"),
                "start_time": now_ms(),
                "tags": [{ "key": "treeserve.model", "value": model }],
            }),
        )?;
        let run_id = created.run.info.run_id;
        let root = self.proxy_path(&format!("run {run_id}"), &created.run.info.artifact_uri)?;
        self.client.upload(
            &format!("{root}/{MODEL_DIR}/{ARTIFACT_FILE}"),
            artifact.to_vec(),
        )?;
        // The run shows the model's parameters and test metrics (an artifact that is not a
        // model would be refused by `read`; publishing callers have validated it).
        if let Ok(manifest) = crate::model::read_manifest(artifact) {
            self.client.post::<serde_json::Value>(
                "write",
                "runs/log-batch",
                logged::log_batch(&run_id, &manifest, now_ms()),
            )?;
        }
        self.client.post::<serde_json::Value>(
            "write",
            "runs/update",
            json!({ "run_id": run_id, "status": "FINISHED", "end_time": now_ms() }),
        )?;
        match self.client.post::<serde_json::Value>(
            "create",
            "registered-models/create",
            json!({ "name": model }),
        ) {
            Err(e) if e.code != "RESOURCE_ALREADY_EXISTS" => return Err(e.into()),
            _ => {}
        }
        #[derive(Deserialize)]
        struct Version {
            model_version: ModelVersion,
        }
        let source = format!(
            "{}/{MODEL_DIR}",
            created.run.info.artifact_uri.trim_end_matches('/')
        );
        let made: Version = self.client.post(
            "create",
            "model-versions/create",
            json!({ "name": model, "source": source, "run_id": run_id }),
        )?;
        parse_version(&made.model_version.version).ok_or_else(|| RegistryError::Remote {
            op: "create",
            url: self.client.shown("/api/2.0/mlflow/model-versions/create"),
            detail: format!(
                "MLflow answered version {:?}, not a version number",
                made.model_version.version
            ),
        })
    }

    fn set_alias(
        &self,
        model: &str,
        alias: &str,
        version: u64,
    ) -> Result<AliasRecord, RegistryError> {
        check(alias)?;
        self.model_version(model, version)?;
        let old = match self.alias(model, alias) {
            Ok(r) => Some(r),
            Err(RegistryError::AliasNotFound { .. } | RegistryError::Corrupt { .. }) => None,
            Err(e) => return Err(e),
        };
        let rec = history::moved(old.clone(), version, now());
        self.write_checked(model, alias, old, rec)
    }

    fn rollback(&self, model: &str, alias: &str) -> Result<AliasRecord, RegistryError> {
        let old = self.alias(model, alias)?;
        let mut rec = old.clone();
        rec.version = rec.history.pop().ok_or_else(|| RegistryError::NoHistory {
            model: model.into(),
            alias: alias.into(),
        })?;
        rec.updated = now();
        self.write_checked(model, alias, Some(old), rec)
    }

    fn put_record(
        &self,
        model: &str,
        version: u64,
        kind: &str,
        json: &[u8],
    ) -> Result<(), RegistryError> {
        let path =
            self.record_path(model, version, kind)?
                .ok_or_else(|| RegistryError::Refused {
                    path: format!("models:/{model}/{version}"),
                    detail: "the version has no MLflow run to keep treeserve's records in".into(),
                })?;
        self.client.upload(&path, json.to_vec())
    }

    fn get_record(
        &self,
        model: &str,
        version: u64,
        kind: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        match self.record_path(model, version, kind) {
            Ok(Some(path)) => self.client.download(&path, MAX_RECORD_BYTES),
            Ok(None) | Err(RegistryError::VersionNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn datasets(&self) -> Result<Vec<String>, RegistryError> {
        Err(no_datasets())
    }

    fn dataset_versions(&self, _name: &str) -> Result<Vec<u64>, RegistryError> {
        Err(no_datasets())
    }

    fn read_dataset_file(
        &self,
        _name: &str,
        _version: u64,
        _file: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        Err(no_datasets())
    }

    fn publish_dataset(&self, _name: &str, _files: &[(&str, &[u8])]) -> Result<u64, RegistryError> {
        Err(no_datasets())
    }
}

#[cfg(test)]
mod tests;
