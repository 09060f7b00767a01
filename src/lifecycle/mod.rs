//! The model lifecycle: data checks, training from registry datasets, the validation gate
//! against the champion, and continuous training from a drop folder ([`retrain`]).

mod baseline;
pub mod gate;
mod publish;
pub mod retrain;
pub mod rows;

use crate::data::checks::{self, CheckConfig, Report};
use crate::data::{DataError, DatasetManifest, DatasetRef, DatasetStore, Schema, Table};
use crate::model::{ArtifactError, DatasetLink, SplitMethod};
use crate::registry::{Registry, RegistryError};
use crate::train::{Dataset, TrainConfig, TrainError, Trained};

pub use gate::{Decision, GateConfig};
pub use publish::{finish_ungated, publish_gated};

/// The alias every gated candidate gets.
pub const STAGING_ALIAS: &str = "staging";

/// Why a lifecycle step failed.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// Reading or storing a dataset failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The data checks found critical problems.
    #[error("the data checks found {} critical problem(s)", .0.critical())]
    Rejected(Report),
    /// Training failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The gate cannot judge the candidate (e.g. its rows cannot be scored).
    #[error("the gate cannot judge the candidate: {0}")]
    Gate(String),
    /// A trained artifact did not load (a bug).
    #[error("the new artifact does not load: {0}")]
    Artifact(#[from] ArtifactError),
}

/// What storing a table as a dataset version comes to, once it passed the checks.
pub enum Plan {
    /// A version to store (the table, or the latest version's rows plus the table's).
    Store {
        /// The rows of the version.
        table: Table,
        /// Its schema.
        schema: Schema,
        /// The version it extends or replaces.
        previous: Option<DatasetManifest>,
    },
    /// Every row is already in this version: nothing to store.
    Existing(DatasetManifest),
}

/// Rows offered to a dataset (`data add`, `data check`, `retrain`).
#[derive(Debug, Clone, Copy)]
pub struct NewRows<'a> {
    /// The dataset.
    pub name: &'a str,
    /// The rows, as read.
    pub table: &'a Table,
    /// The label column.
    pub target: &'a str,
    /// A row-id column, if any (kept, not a feature).
    pub id_column: Option<&'a str>,
    /// Add to the latest version's rows instead of replacing them.
    pub append: bool,
}

/// Checks `table` against the latest version of dataset `name` and works out the version
/// it makes: the table itself, or with `append` the latest version's rows followed by the
/// table's (its columns reordered to the dataset's), checked as a whole too. Critical
/// findings: `Err(Rejected)`. Stores nothing (`data check` stops here).
pub fn plan_dataset(
    store: &DatasetStore,
    rows: &NewRows<'_>,
    config: &CheckConfig,
) -> Result<(Plan, Report), LifecycleError> {
    let NewRows {
        name,
        table,
        target,
        id_column,
        append,
    } = *rows;
    let previous = match store.versions(name)?.last() {
        Some(&v) => Some(store.manifest(name, v)?),
        None => None,
    };
    let schema = match &previous {
        Some(p) => p.schema.clone(),
        None => checks::schema_of(table, target, id_column),
    };
    let file_schema = Schema {
        features: checks::schema_of(table, &schema.target, schema.id_column.as_deref()).features,
        ..schema.clone()
    };
    let mut report = checks::check(table, &file_schema, previous.as_ref(), !append, config);
    if report.critical() > 0 {
        return Err(LifecycleError::Rejected(report));
    }
    let table = match (&previous, append) {
        (Some(p), true) => {
            let mut merged = store.table(p)?;
            let order: Vec<Option<usize>> =
                merged.columns.iter().map(|c| table.column(c)).collect();
            let rows: Vec<(u64, Vec<String>)> = table
                .rows
                .iter()
                .map(|(line, r)| {
                    let row = order
                        .iter()
                        .map(|j| j.and_then(|j| r.get(j).cloned()).unwrap_or_default())
                        .collect();
                    (*line, row)
                })
                .collect();
            // A file whose every row is already in the dataset (dropped twice) adds
            // nothing: the latest version stands.
            let known: std::collections::HashSet<&Vec<String>> =
                merged.rows.iter().map(|(_, r)| r).collect();
            if rows.iter().all(|(_, r)| known.contains(r)) {
                return Ok((Plan::Existing(p.clone()), report));
            }
            merged.rows.extend(rows);
            merged.source = table.source.clone();
            // The merged whole gets the whole-dataset checks too (balance, labels).
            let whole = checks::check(&merged, &schema, Some(p), true, config);
            for f in whole.findings {
                if f.check != "range" && !report.findings.contains(&f) {
                    report.findings.push(f);
                }
            }
            if report.critical() > 0 {
                return Err(LifecycleError::Rejected(report));
            }
            merged
        }
        _ => table.clone(),
    };
    Ok((
        Plan::Store {
            table,
            schema,
            previous,
        },
        report,
    ))
}

/// [`plan_dataset`], then stores the version. Returns the version (an existing one if
/// the content is already stored), whether it is new, and the checks' report.
pub fn add_dataset(
    store: &DatasetStore,
    rows: &NewRows<'_>,
    config: &CheckConfig,
) -> Result<(DatasetManifest, bool, Report), LifecycleError> {
    let name = rows.name;
    let (plan, report) = plan_dataset(store, rows, config)?;
    match plan {
        Plan::Existing(m) => Ok((m, false, report)),
        Plan::Store {
            table,
            schema,
            previous,
        } => {
            let (manifest, new) =
                store.add(name, &table, &schema, previous.as_ref(), report.warnings())?;
            Ok((manifest, new, report))
        }
    }
}

/// A dataset version loaded for training, with its registry link.
pub fn load_dataset(
    store: &DatasetStore,
    r: &DatasetRef,
) -> Result<(Dataset, DatasetManifest), LifecycleError> {
    let m = store.resolve(r)?;
    let bytes = store.data(&m.name, m.version)?;
    let data = crate::train::parse_csv(
        &bytes,
        &format!("{}:{}", m.name, m.version),
        &m.schema.target,
        m.schema.id_column.as_deref(),
    )?;
    Ok((data, m))
}

/// Trains on a registry dataset version: content split (so later versions' test rows
/// were never trained on by this model), manifest linked to the dataset.
pub fn train_on(
    data: &Dataset,
    m: &DatasetManifest,
    config: &TrainConfig,
) -> Result<Trained, LifecycleError> {
    let config = TrainConfig {
        name: config.name.clone().or_else(|| Some(m.name.clone())),
        target: m.schema.target.clone(),
        id_column: m.schema.id_column.clone(),
        split: SplitMethod::Content,
        dataset: Some(DatasetLink {
            name: m.name.clone(),
            version: m.version,
            sha256: m.sha256.clone(),
        }),
        ..config.clone()
    };
    Ok(crate::train::train_dataset(data, &config)?)
}

pub(crate) fn task_name(t: crate::model::Task) -> &'static str {
    match t {
        crate::model::Task::Classification => "classifier",
        crate::model::Task::Regression => "regressor",
    }
}

/// The stored gate decision of a version, if it went through the gate.
pub fn decision(reg: &dyn Registry, model: &str, version: u64) -> Option<Decision> {
    let bytes = reg.get_record(model, version, "gate").ok()??;
    serde_json::from_slice(&bytes).ok()
}
