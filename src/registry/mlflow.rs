//! The MLflow Model Registry backend, over MLflow's REST API 2.0.
//!
//! A registered model is a treeserve model, a model version a version, an MLflow alias an
//! alias (its history, for `rollback`, in a registered-model tag: see [`history`]).
//! `publish` creates a run in the experiment `treeserve`, uploads `model.tsm` through the
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

mod client;
mod flavor;
mod history;

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Deserialize;
use serde_json::json;

use super::fs::{ARTIFACT_FILE, MAX_RECORD_BYTES};
use super::{
    AliasListing, AliasRecord, MAX_ARTIFACT_BYTES, Registry, RegistryError, parse_version,
};
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
}

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

fn check(name: &str) -> Result<(), RegistryError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(RegistryError::InvalidName(name.into()))
    }
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

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
        Ok(Self {
            client: Client::new(url.trim_end_matches('/'))?,
            experiment: Mutex::default(),
            runs: Mutex::default(),
        })
    }

    fn registered_model(&self, model: &str) -> Result<RegisteredModel, RegistryError> {
        check(model)?;
        #[derive(Deserialize)]
        struct Got {
            #[serde(default)]
            registered_model: RegisteredModel,
        }
        match self
            .client
            .get::<Got>("read", "registered-models/get", &[("name", model)])
        {
            Ok(g) => Ok(g.registered_model),
            Err(e) if e.code == NOT_FOUND => Err(RegistryError::ModelNotFound(model.into())),
            Err(e) => Err(e.into()),
        }
    }

    fn model_version(&self, model: &str, version: u64) -> Result<ModelVersion, RegistryError> {
        check(model)?;
        #[derive(Deserialize)]
        struct Got {
            #[serde(default)]
            model_version: ModelVersion,
        }
        let v = version.to_string();
        match self.client.get::<Got>(
            "read",
            "model-versions/get",
            &[("name", model), ("version", &v)],
        ) {
            Ok(g) if g.model_version.status.is_empty() || g.model_version.status == "READY" => {
                Ok(g.model_version)
            }
            Ok(_) => Err(self.version_not_found(model, version)),
            Err(e) if e.code == NOT_FOUND => Err(self.version_not_found(model, version)),
            Err(e) => Err(e.into()),
        }
    }

    fn version_not_found(&self, model: &str, version: u64) -> RegistryError {
        RegistryError::VersionNotFound {
            model: model.into(),
            version,
        }
    }

    /// The alias records of a registered model, by alias name.
    fn records(&self, rm: &RegisteredModel) -> Vec<(String, Result<AliasRecord, String>)> {
        rm.aliases
            .iter()
            .map(|a| {
                let rec = match parse_version(&a.version) {
                    Some(v) => {
                        let key = history::tag_key(&a.alias);
                        let tag = rm.tags.iter().find(|t| t.key == key);
                        Ok(history::record(v, tag.map(|t| t.value.as_str())))
                    }
                    None => Err(format!(
                        "MLflow answered version {:?}, not a version number",
                        a.version
                    )),
                };
                (a.alias.clone(), rec)
            })
            .collect()
    }

    /// The artifact-proxy path of an artifact URI (`mlflow-artifacts:/P`,
    /// `mlflow-artifacts://host:port/P`, or `runs:/RUN/P`).
    fn proxy_path(&self, what: &str, uri: &str) -> Result<String, RegistryError> {
        if let Some(rest) = uri.strip_prefix("mlflow-artifacts:") {
            let path = match rest.strip_prefix("//") {
                Some(authority_and_path) => authority_and_path
                    .split_once('/')
                    .map_or("", |(_, p)| p)
                    .to_owned(),
                None => rest.trim_start_matches('/').to_owned(),
            };
            return Ok(path.trim_end_matches('/').to_owned());
        }
        if let Some(rest) = uri.strip_prefix("runs:/") {
            let (run, sub) = rest
                .trim_start_matches('/')
                .split_once('/')
                .unwrap_or((rest, ""));
            let root = self.run_root(run)?;
            return Ok(format!("{root}/{sub}").trim_end_matches('/').to_owned());
        }
        Err(RegistryError::Refused {
            path: what.into(),
            detail: format!(
                "its artifacts are at {uri:?}, which the tracking server does not proxy: start \
                 `mlflow server` with --serve-artifacts (artifacts then go through it) and log \
                 the model again"
            ),
        })
    }

    /// A run's artifact directory, as an artifact-proxy path.
    fn run_root(&self, run_id: &str) -> Result<String, RegistryError> {
        if let Some(p) = self.runs.lock().expect("lock").get(run_id) {
            return Ok(p.clone());
        }
        #[derive(Deserialize)]
        struct Got {
            run: Run,
        }
        #[derive(Deserialize)]
        struct Run {
            info: Info,
        }
        #[derive(Deserialize)]
        struct Info {
            artifact_uri: String,
        }
        let got: Got = self.client.get("read", "runs/get", &[("run_id", run_id)])?;
        let path = self.proxy_path(&format!("run {run_id}"), &got.run.info.artifact_uri)?;
        self.runs
            .lock()
            .expect("lock")
            .insert(run_id.to_owned(), path.clone());
        Ok(path)
    }

    /// The id of the experiment publishes log to, created if missing.
    fn experiment_id(&self) -> Result<String, RegistryError> {
        if let Some(id) = self.experiment.lock().expect("lock").clone() {
            return Ok(id);
        }
        #[derive(Deserialize)]
        struct ByName {
            experiment: Experiment,
        }
        #[derive(Deserialize)]
        struct Experiment {
            experiment_id: String,
        }
        #[derive(Deserialize)]
        struct Created {
            experiment_id: String,
        }
        let by_name = || {
            self.client.get::<ByName>(
                "read",
                "experiments/get-by-name",
                &[("experiment_name", EXPERIMENT)],
            )
        };
        let id = match by_name() {
            Ok(b) => b.experiment.experiment_id,
            Err(e) if e.code == NOT_FOUND => {
                match self.client.post::<Created>(
                    "create",
                    "experiments/create",
                    json!({ "name": EXPERIMENT }),
                ) {
                    Ok(c) => c.experiment_id,
                    // Another publisher created it in between.
                    Err(e) if e.code == "RESOURCE_ALREADY_EXISTS" => {
                        by_name()?.experiment.experiment_id
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        *self.experiment.lock().expect("lock") = Some(id.clone());
        Ok(id)
    }

    /// The artifact-proxy path of a version's model directory.
    fn version_dir(&self, model: &str, version: u64) -> Result<String, RegistryError> {
        check(model)?;
        #[derive(Deserialize)]
        struct Got {
            artifact_uri: String,
        }
        let v = version.to_string();
        let got: Got = match self.client.get(
            "read",
            "model-versions/get-download-uri",
            &[("name", model), ("version", &v)],
        ) {
            Ok(g) => g,
            Err(e) if e.code == NOT_FOUND => return Err(self.version_not_found(model, version)),
            Err(e) => return Err(e.into()),
        };
        self.proxy_path(&format!("models:/{model}/{version}"), &got.artifact_uri)
    }

    /// Where records about a version are kept: its run's artifacts.
    fn record_path(
        &self,
        model: &str,
        version: u64,
        kind: &str,
    ) -> Result<Option<String>, RegistryError> {
        check(kind)?;
        let mv = self.model_version(model, version)?;
        if mv.run_id.is_empty() {
            return Ok(None);
        }
        let root = self.run_root(&mv.run_id)?;
        Ok(Some(format!(
            "{root}/{RECORDS_DIR}/{model}/{version}.{kind}.json"
        )))
    }

    /// Points the alias at `rec.version` in MLflow, then records its history in the tag
    /// (in this order: an alias moved without its tag reads as moved in MLflow, which
    /// keeps the right history).
    fn write_alias(
        &self,
        model: &str,
        alias: &str,
        rec: &AliasRecord,
    ) -> Result<(), RegistryError> {
        let v = rec.version.to_string();
        match self.client.post::<serde_json::Value>(
            "write",
            "registered-models/alias",
            json!({ "name": model, "alias": alias, "version": v }),
        ) {
            Ok(_) => {}
            Err(e) if e.code == NOT_FOUND => return Err(self.version_not_found(model, rec.version)),
            Err(e) => return Err(e.into()),
        }
        self.client.post::<serde_json::Value>(
            "write",
            "registered-models/set-tag",
            json!({ "name": model, "key": history::tag_key(alias), "value": history::tag_value(rec) }),
        )?;
        Ok(())
    }

    /// Every page of a search; `field` is the list's key in each answer.
    fn search<T: for<'de> Deserialize<'de>>(
        &self,
        endpoint: &str,
        field: &str,
        filter: Option<&str>,
    ) -> Result<Vec<T>, RegistryError> {
        let mut out = Vec::new();
        let mut token = String::new();
        for _ in 0..MAX_PAGES {
            let mut query = vec![("max_results", PAGE)];
            if let Some(f) = filter {
                query.push(("filter", f));
            }
            if !token.is_empty() {
                query.push(("page_token", &token));
            }
            let mut page: serde_json::Map<String, serde_json::Value> =
                self.client.get("list", endpoint, &query)?;
            if let Some(items) = page.remove(field) {
                let items: Vec<T> =
                    serde_json::from_value(items).map_err(|e| RegistryError::Remote {
                        op: "list",
                        url: self.client.shown(&format!("/api/2.0/mlflow/{endpoint}")),
                        detail: format!("an answer that is not MLflow's JSON ({e})"),
                    })?;
                out.extend(items);
            }
            token = match page.get("next_page_token").and_then(|t| t.as_str()) {
                Some(t) if !t.is_empty() => t.to_owned(),
                _ => return Ok(out),
            };
        }
        Err(RegistryError::Remote {
            op: "list",
            url: self.client.shown(&format!("/api/2.0/mlflow/{endpoint}")),
            detail: format!("more than {MAX_PAGES} pages of {PAGE}: refusing to read further"),
        })
    }

    /// A flavor model's artifact, built from the version directory's `MLmodel` file.
    fn read_flavor(
        &self,
        model: &str,
        version: u64,
        dir: &str,
        files: &[client::ArtifactFile],
    ) -> Result<Vec<u8>, RegistryError> {
        let what = format!("models:/{model}/{version}");
        let refuse = |detail: String| RegistryError::Refused {
            path: what.clone(),
            detail,
        };
        let mlmodel = self
            .client
            .download(&format!("{dir}/MLmodel"), MAX_SIDE_FILE_BYTES)?
            .ok_or_else(|| self.version_not_found(model, version))?;
        let flavors = flavor::parse_flavors(&String::from_utf8_lossy(&mlmodel));
        let (format, file) = flavor::choose(&flavors).map_err(refuse)?;
        let size = files
            .iter()
            .find(|f| f.path == file)
            .and_then(|f| f.file_size);
        if let Some(n) = size.filter(|n| *n > MAX_ARTIFACT_BYTES) {
            return Err(refuse(format!(
                "its {file} is {n} bytes, over the {MAX_ARTIFACT_BYTES}-byte limit"
            )));
        }
        let bytes = self
            .client
            .download(&format!("{dir}/{file}"), MAX_ARTIFACT_BYTES)?
            .ok_or_else(|| refuse(format!("its MLmodel names {file}, which is not there")))?;
        let example = match files.iter().any(|f| f.path == "input_example.json") {
            true => self
                .client
                .download(&format!("{dir}/input_example.json"), MAX_SIDE_FILE_BYTES)?
                .and_then(|b| flavor::input_example(&b)),
            false => None,
        };
        flavor::build(model, format, &file, &bytes, example).map_err(|e| {
            refuse(format!(
                "its {} model {file} cannot be served: {e}",
                format.as_str()
            ))
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
        let dir = self.version_dir(model, version)?;
        let files = self.client.list(&dir)?;
        if files.iter().any(|f| f.path == ARTIFACT_FILE && !f.is_dir) {
            return self
                .client
                .download(&format!("{dir}/{ARTIFACT_FILE}"), MAX_ARTIFACT_BYTES)?
                .ok_or_else(|| self.version_not_found(model, version));
        }
        if files.iter().any(|f| f.path == "MLmodel" && !f.is_dir) {
            return self.read_flavor(model, version, &dir, &files);
        }
        Err(RegistryError::Refused {
            path: format!("models:/{model}/{version}"),
            detail: format!(
                "its artifacts ({dir}) hold neither a treeserve {ARTIFACT_FILE} nor an MLmodel \
                 file: publish with `treeserve publish` or log the model with mlflow.xgboost, \
                 mlflow.lightgbm or mlflow.onnx"
            ),
        })
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
        let rec = history::moved(old, version, now());
        self.write_alias(model, alias, &rec)?;
        Ok(rec)
    }

    fn rollback(&self, model: &str, alias: &str) -> Result<AliasRecord, RegistryError> {
        let mut rec = self.alias(model, alias)?;
        rec.version = rec.history.pop().ok_or_else(|| RegistryError::NoHistory {
            model: model.into(),
            alias: alias.into(),
        })?;
        rec.updated = now();
        self.write_alias(model, alias, &rec)?;
        Ok(rec)
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
