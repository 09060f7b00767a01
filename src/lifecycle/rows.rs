//! Which rows a model trained on and which it held out (record `rows`, stored with every
//! version `train --publish` publishes), so the gate never scores a model on rows it
//! trained on and can judge a candidate on the champion's own held-out rows.
//!
//! A row's identity is a hash of its feature values (not its label), taken in the order
//! of the feature names sorted, so the same measurements are the same row whatever the
//! column order or label. A model without the record (published before it existed, or by
//! hand) has its split reconstructed when its training data is at hand (the candidate's
//! data or a registry dataset with the SHA-256 its manifest records).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::{DATA_FILE, DatasetManifest, MANIFEST_FILE};
use crate::model::{Manifest, SplitMethod, Task};
use crate::registry::{Registry, RegistryError};
use crate::train::Dataset;

/// The record kind (`REGISTRY/NAME/records/VERSION.rows.json`).
pub const ROWS_RECORD: &str = "rows";

/// A model's training rows (by identity) and held-out rows (in full, with their labels).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowsRecord {
    /// Feature names, in the order of `held_out`'s values.
    pub features: Vec<String>,
    /// Identities ([`row_id`]) of the training rows, sorted, without repeats.
    pub train: Vec<u64>,
    /// The held-out rows' feature values.
    pub held_out: Vec<Vec<f64>>,
    /// Their class labels (a classifier).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Their targets (a regressor).
    #[serde(default)]
    pub values: Vec<f64>,
}

/// The identity of a row: the first 8 bytes of the SHA-256 of its feature values in
/// `order` (indices into `row`; see [`name_order`]).
pub fn row_id(row: &[f64], order: &[usize]) -> u64 {
    let mut h = Sha256::new();
    for &j in order {
        // -0.0 and 0.0 are the same value: hash them alike.
        h.update((row[j] + 0.0).to_bits().to_le_bytes());
    }
    u64::from_le_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
}

/// Column indices of `features` in the order of their names, sorted.
pub fn name_order(features: &[String]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..features.len()).collect();
    order.sort_by(|&a, &b| features[a].cmp(&features[b]));
    order
}

impl RowsRecord {
    /// The record of a model trained on `train` rows of `data` and tested on `test`.
    pub fn of(data: &Dataset, train: &[usize], test: &[usize]) -> RowsRecord {
        let order = name_order(&data.features);
        let mut ids: Vec<u64> = train.iter().map(|&i| row_id(data.row(i), &order)).collect();
        ids.sort_unstable();
        ids.dedup();
        let regression = data.task() == Task::Regression;
        RowsRecord {
            features: data.features.clone(),
            train: ids,
            held_out: test.iter().map(|&i| data.row(i).to_vec()).collect(),
            labels: if regression {
                Vec::new()
            } else {
                test.iter()
                    .map(|&i| data.classes[data.y[i] as usize].clone())
                    .collect()
            },
            values: if regression {
                test.iter().map(|&i| data.values[i]).collect()
            } else {
                Vec::new()
            },
        }
    }

    /// The record of a model tested on `test` rows of `data` and trained on the others.
    pub fn of_trained(data: &Dataset, test: &[usize]) -> RowsRecord {
        RowsRecord::of(data, &complement(data.rows(), test), test)
    }

    /// Whether the model trained on a row with this identity.
    pub fn trained_on(&self, id: u64) -> bool {
        self.train.binary_search(&id).is_ok()
    }

    /// Stores the record of `model` `version`.
    pub fn store(
        &self,
        reg: &dyn Registry,
        model: &str,
        version: u64,
    ) -> Result<(), RegistryError> {
        let json = serde_json::to_vec(self).expect("json");
        reg.put_record(model, version, ROWS_RECORD, &json)
    }

    /// The stored record of `model` `version`, if it has a readable one.
    pub fn load(reg: &dyn Registry, model: &str, version: u64) -> Option<RowsRecord> {
        let bytes = reg.get_record(model, version, ROWS_RECORD).ok()??;
        serde_json::from_slice(&bytes).ok()
    }
}

/// Rows `0..n` not in `test`.
pub fn complement(n: usize, test: &[usize]) -> Vec<usize> {
    let mut held = vec![false; n];
    test.iter().for_each(|&i| held[i] = true);
    (0..n).filter(|&i| !held[i]).collect()
}

/// The (train, test) rows of `data` a model with `manifest` was split into, if `data` is
/// exactly what it trained on (same SHA-256, rows and features).
pub fn split_of(manifest: &Manifest, data: &Dataset) -> Option<(Vec<usize>, Vec<usize>)> {
    let t = &manifest.training;
    if t.sha256 != data.sha256
        || t.rows != data.rows() as u64
        || manifest.features != data.features
        || manifest.task != data.task()
        || !(t.test_size > 0.0 && t.test_size < 1.0)
    {
        return None;
    }
    let (train, test) = match t.split {
        SplitMethod::Shuffle => crate::train::split(data.rows(), t.test_size, t.split_seed),
        SplitMethod::Content => crate::train::split_by_content(data, t.test_size, t.split_seed),
    };
    (train.len() as u64 == t.train_rows).then_some((train, test))
}

/// The rows record of a model: stored, or reconstructed from `data` or a registry dataset
/// version with the SHA-256 its manifest records. Also says which.
pub fn rows_of(
    reg: &dyn Registry,
    manifest: &Manifest,
    version: u64,
    data: &Dataset,
) -> Option<(RowsRecord, String)> {
    if let Some(r) = RowsRecord::load(reg, &manifest.name, version) {
        return Some((r, "recorded at publish".into()));
    }
    if let Some((train, test)) = split_of(manifest, data) {
        return Some((
            RowsRecord::of(data, &train, &test),
            format!(
                "reconstructed: it has no rows record; its split of {} redone",
                manifest.training.source
            ),
        ));
    }
    let sha = &manifest.training.sha256;
    for name in reg.datasets().unwrap_or_default() {
        for v in reg.dataset_versions(&name).unwrap_or_default() {
            let Some(m) = reg
                .read_dataset_file(&name, v, MANIFEST_FILE)
                .ok()
                .flatten()
                .and_then(|b| serde_json::from_slice::<DatasetManifest>(&b).ok())
            else {
                continue;
            };
            if &m.sha256 != sha {
                continue;
            }
            let Some(bytes) = reg.read_dataset_file(&name, v, DATA_FILE).ok().flatten() else {
                continue;
            };
            let Ok(d) = crate::train::parse_csv_for(
                &bytes,
                &manifest.training.source,
                &m.schema.target,
                m.schema.id_column.as_deref(),
                manifest.task,
            ) else {
                continue;
            };
            if let Some((train, test)) = split_of(manifest, &d) {
                return Some((
                    RowsRecord::of(&d, &train, &test),
                    format!(
                        "reconstructed: it has no rows record; its split of dataset {name}:{v} redone"
                    ),
                ));
            }
        }
    }
    None
}

/// Rows to score models on: feature values by name, and labels or targets.
pub struct EvalRows {
    /// Feature names.
    pub features: Vec<String>,
    /// Target name.
    pub target: String,
    /// Rows.
    pub x: Vec<Vec<f64>>,
    /// Labels (a classifier).
    pub labels: Vec<String>,
    /// Targets (a regressor).
    pub values: Vec<f64>,
}

impl EvalRows {
    /// No rows, with these columns.
    pub fn empty(features: &[String], target: &str) -> EvalRows {
        EvalRows {
            features: features.to_vec(),
            target: target.to_owned(),
            x: Vec::new(),
            labels: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.x.len()
    }

    /// No rows?
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }

    /// Adds `other`'s rows, reordering their values to this one's feature order; false
    /// (nothing added) if the feature names differ.
    pub fn extend(&mut self, other: &EvalRows) -> bool {
        let cols: Option<Vec<usize>> = self
            .features
            .iter()
            .map(|f| other.features.iter().position(|g| g == f))
            .collect();
        match cols {
            Some(cols) if other.features.len() == self.features.len() => {
                for x in &other.x {
                    self.x.push(cols.iter().map(|&j| x[j]).collect());
                }
                self.labels.extend(other.labels.iter().cloned());
                self.values.extend(other.values.iter().copied());
                true
            }
            _ => false,
        }
    }

    /// As a [`Dataset`] (classes: the labels present, sorted).
    pub fn dataset(&self) -> Dataset {
        let mut classes = self.labels.clone();
        classes.sort();
        classes.dedup();
        let y = self
            .labels
            .iter()
            .map(|l| classes.binary_search(l).expect("present") as u32)
            .collect();
        Dataset {
            features: self.features.clone(),
            target: self.target.clone(),
            classes,
            x: self.x.concat(),
            y,
            values: self.values.clone(),
            sha256: String::new(),
            source: "gate".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iris() -> Dataset {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/data/iris.csv");
        crate::train::load_csv(&path, "Species", Some("Id")).unwrap()
    }

    #[test]
    fn a_row_is_its_feature_values_whatever_their_column_order() {
        let a = ["x".to_string(), "y".to_string()];
        let b = ["y".to_string(), "x".to_string()];
        assert_eq!(
            row_id(&[1.0, 2.0], &name_order(&a)),
            row_id(&[2.0, 1.0], &name_order(&b))
        );
        assert_eq!(row_id(&[0.0, 2.0], &[0, 1]), row_id(&[-0.0, 2.0], &[0, 1]));
        assert_ne!(row_id(&[1.0, 2.0], &[0, 1]), row_id(&[2.0, 1.0], &[0, 1]));
    }

    #[test]
    fn a_models_split_is_redone_only_on_the_data_it_trained_on() {
        let data = iris();
        let config = crate::train::TrainConfig::default();
        let trained = crate::train::train_dataset(&data, &config).unwrap();
        let (train, test) = split_of(&trained.manifest, &data).unwrap();
        assert_eq!(test, trained.test_rows);
        let record = RowsRecord::of(&data, &train, &test);
        assert_eq!(record, RowsRecord::of_trained(&data, &trained.test_rows));
        assert_eq!(record.held_out.len(), test.len());
        let order = name_order(&data.features);
        assert!(
            train
                .iter()
                .all(|&i| record.trained_on(row_id(data.row(i), &order)))
        );
        // Other bytes: not its data.
        let mut other = data.clone();
        other.sha256 = "0".repeat(64);
        assert!(split_of(&trained.manifest, &other).is_none());
    }
}
