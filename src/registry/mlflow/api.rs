//! The MLflow registry's calls: registered models, versions, runs and the experiment,
//! artifact locations, alias writes, paged searches, and reading a flavor model.

use serde::Deserialize;
use serde_json::json;

/// Most times a writer that won the alias writes its history tag again over a racing
/// writer's.
const MAX_TAG_MENDS: usize = 3;

use super::super::fs::ARTIFACT_FILE;
use super::super::{AliasRecord, MAX_ARTIFACT_BYTES, RegistryError, parse_version};
use super::{
    EXPERIMENT, MAX_PAGES, MAX_SIDE_FILE_BYTES, MlflowRegistry, ModelVersion, NOT_FOUND, PAGE,
    RECORDS_DIR, RegisteredModel, check, client, flavor, history,
};

impl MlflowRegistry {
    pub(super) fn registered_model(&self, model: &str) -> Result<RegisteredModel, RegistryError> {
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

    pub(super) fn model_version(
        &self,
        model: &str,
        version: u64,
    ) -> Result<ModelVersion, RegistryError> {
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

    pub(super) fn version_not_found(&self, model: &str, version: u64) -> RegistryError {
        RegistryError::VersionNotFound {
            model: model.into(),
            version,
        }
    }

    /// The alias records of a registered model, by alias name.
    pub(super) fn records(
        &self,
        rm: &RegisteredModel,
    ) -> Vec<(String, Result<AliasRecord, String>)> {
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
    pub(super) fn proxy_path(&self, what: &str, uri: &str) -> Result<String, RegistryError> {
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
    pub(super) fn run_root(&self, run_id: &str) -> Result<String, RegistryError> {
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
    pub(super) fn experiment_id(&self) -> Result<String, RegistryError> {
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
    pub(super) fn version_dir(&self, model: &str, version: u64) -> Result<String, RegistryError> {
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
    pub(super) fn record_path(
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

    /// Points the alias at `rec.version` in MLflow (its history tag is written after: an
    /// alias moved without its tag reads as moved in MLflow, which keeps the right history).
    fn point_alias(
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
            Ok(_) => Ok(()),
            Err(e) if e.code == NOT_FOUND => Err(self.version_not_found(model, rec.version)),
            Err(e) => Err(e.into()),
        }
    }

    /// Records `rec` as the alias's history (the tag only). Tried twice: MLflow writes a
    /// tag by looking it up, then inserting or updating it, so of two writers creating it
    /// at once one is refused by its database's unique constraint (the tag exists then,
    /// and the second try updates it); the write is the same whichever lands.
    fn write_tag(&self, model: &str, alias: &str, rec: &AliasRecord) -> Result<(), RegistryError> {
        let body = json!({ "name": model, "key": history::tag_key(alias), "value": history::tag_value(rec) });
        let post = || {
            let (op, endpoint) = ("write", "registered-models/set-tag");
            self.client
                .post::<serde_json::Value>(op, endpoint, body.clone())
        };
        post().or_else(|_| post())?;
        Ok(())
    }

    /// Writes `rec` (the alias, then its history tag) over the alias last read as `old`,
    /// then reads it back: MLflow has no conditional writes, so an update another writer
    /// overtook is told, never lost silently. A write MLflow refuses because another
    /// writer created the alias at the same moment (its database's unique constraint) is
    /// told the same way. A tag write refused so (two writers creating the tag at once: seen
    /// in CI as `HTTP 400: (sqlite3.IntegrityError) UNIQUE constraint failed`) is not the
    /// end: the read-back writes the tag again while the alias is ours, and tells an
    /// error that persists.
    ///
    /// The alias and its history tag are two writes, so racing writers can leave the
    /// winner's alias with a loser's tag. Both sides mend that: the winner writes its tag
    /// again while the read-back shows another one, and an overtaken writer that finds a
    /// tag out of step with the alias records the winner's move from `old` (the state both
    /// usually started from). The history then follows the alias's last move, never an
    /// overtaken writer's.
    pub(super) fn write_checked(
        &self,
        model: &str,
        alias: &str,
        old: Option<AliasRecord>,
        rec: AliasRecord,
    ) -> Result<AliasRecord, RegistryError> {
        let before = old.as_ref().map(|r| r.version);
        let read_back = || super::super::Registry::alias(self, model, alias);
        let overtaken = |now: AliasRecord| {
            if now.updated.is_empty() && Some(now.version) != before {
                // The tag is not the winner's: record the winner's move from `old`.
                let mended = history::moved(old.clone(), now.version, super::super::now());
                if let Err(e) = self.write_tag(model, alias, &mended) {
                    tracing::warn!(error = %e, "could not mend the alias history after losing a race");
                }
            }
            RegistryError::Overtaken {
                model: model.into(),
                alias: alias.into(),
                ours: rec.version,
                theirs: now.version,
            }
        };
        if let Err(e) = self.point_alias(model, alias, &rec) {
            return Err(match read_back() {
                Ok(now) if Some(now.version) != before && now.version != rec.version => {
                    overtaken(now)
                }
                _ => e,
            });
        }
        // A refused tag write is mended below (or told, if the alias cannot be read back).
        let mut tag_error = self.write_tag(model, alias, &rec).err();
        for _ in 0..MAX_TAG_MENDS {
            let now = match read_back() {
                Ok(now) => now,
                Err(e) => return Err(tag_error.take().unwrap_or(e)),
            };
            if now.version != rec.version {
                return Err(overtaken(now));
            }
            if now == rec {
                break;
            }
            // Ours is the alias, another writer's the tag (or none): ours again.
            self.write_tag(model, alias, &rec)?;
            tag_error = None;
        }
        Ok(rec)
    }

    /// Every page of a search; `field` is the list's key in each answer.
    pub(super) fn search<T: for<'de> Deserialize<'de>>(
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
    pub(super) fn read_flavor(
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
        let created = flavor::created(&String::from_utf8_lossy(&mlmodel));
        flavor::build(model, format, &file, &bytes, example, created).map_err(|e| {
            refuse(format!(
                "its {} model {file} cannot be served: {e}",
                format.as_str()
            ))
        })
    }

    /// A version's artifact: its `model.tsm`, or one built from its `MLmodel` flavor.
    pub(super) fn read_version(&self, model: &str, version: u64) -> Result<Vec<u8>, RegistryError> {
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
}
