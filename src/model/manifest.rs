//! The manifest stored at the head of every artifact: what the model is, how it was trained,
//! how well it did, and the training data's statistics (the drift baseline).

use serde::{Deserialize, Serialize};

/// The learning algorithm of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// A single smartcore decision tree (`DecisionTreeClassifier`, or
    /// `DecisionTreeRegressor` for a regressor).
    DecisionTree,
    /// A smartcore random forest (`RandomForestClassifier` or `RandomForestRegressor`).
    RandomForest,
    /// Imported from another framework's file (XGBoost, LightGBM, ONNX): the payload is a
    /// [`super::ensemble::Ensemble`] and the artifact format version is 2.
    Imported,
}

impl Algorithm {
    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::DecisionTree => "decision_tree",
            Algorithm::RandomForest => "random_forest",
            Algorithm::Imported => "imported",
        }
    }
}

/// Hyper-parameters the model was trained with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HyperParameters {
    /// Split criterion: `gini`, `entropy` or `classification_error`; `mse` for a regressor.
    pub criterion: String,
    /// Maximum tree depth, if limited.
    pub max_depth: Option<u16>,
    /// Minimum samples at a leaf.
    pub min_samples_leaf: usize,
    /// Minimum samples to split a node.
    pub min_samples_split: usize,
    /// Number of trees (forest only).
    pub n_trees: Option<u16>,
    /// Features tried per split (forest only; default √features).
    pub max_features: Option<usize>,
    /// Seed of the learner.
    pub seed: u64,
}

/// Where the training data came from and how it was split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingData {
    /// File name of the CSV.
    pub source: String,
    /// SHA-256 of the CSV bytes, hex.
    pub sha256: String,
    /// Data rows in the file.
    pub rows: u64,
    /// Rows used for training.
    pub train_rows: u64,
    /// Rows held out for the test metrics.
    pub test_rows: u64,
    /// Fraction held out.
    pub test_size: f64,
    /// Seed of the split.
    pub split_seed: u64,
    /// How rows were split.
    #[serde(default)]
    pub split: SplitMethod,
    /// The registry dataset version trained on, when it came from the registry.
    #[serde(default)]
    pub dataset: Option<DatasetLink>,
    /// Published through the gate (`train --publish`, `retrain`): a version with this
    /// and no gate decision is one whose publisher stopped before deciding, and the
    /// next run finishes its gate.
    #[serde(default)]
    pub gated: bool,
}

/// How the rows are split into training and held-out test rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitMethod {
    /// A seeded shuffle of row positions.
    #[default]
    Shuffle,
    /// By a seeded hash of each row's content: a row is on the same side in every
    /// version of a growing dataset (and duplicates are always together), so a model
    /// trained on an earlier version never trained on a later version's test rows.
    Content,
}

/// A dataset version in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetLink {
    /// Dataset name.
    pub name: String,
    /// Version.
    pub version: u64,
    /// SHA-256 of its rows, hex.
    pub sha256: String,
}

/// Per-class test metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Class label.
    pub label: String,
    /// Precision on the test split.
    pub precision: f64,
    /// Recall on the test split.
    pub recall: f64,
    /// F1 score on the test split.
    pub f1: f64,
    /// Test rows of this class.
    pub support: u64,
}

/// Metrics measured on the held-out test split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Fraction of test rows predicted correctly (NaN when unknown: a regressor, an import
    /// without labelled rows; JSON writes it as `null`).
    #[serde(deserialize_with = "nan_if_null")]
    pub accuracy: f64,
    /// Precision, recall and F1 by class, in class order.
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[actual][predicted]` counts, in class order.
    pub confusion: Vec<Vec<u64>>,
}

/// Statistics of one feature over the training rows: the drift baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureStats {
    /// Feature name.
    pub name: String,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    /// Interior bin edges (deciles of the training values); bin `i` holds values
    /// `edges[i-1] < x <= edges[i]`.
    pub bin_edges: Vec<f64>,
    /// Fraction of training values in each bin (`bin_edges.len() + 1` bins).
    pub bin_fractions: Vec<f64>,
}

/// A row with the output the model must give for it, checked at every load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoldenRow {
    /// Feature values, in feature order (NaN = missing, for a model that routes missing
    /// values).
    pub features: Vec<f64>,
    /// Expected class index (from smartcore's own `predict`; 0 for a regressor).
    pub class: u32,
    /// Expected class probabilities; for a regressor, the one predicted value.
    pub probabilities: Vec<f64>,
}

/// What a model predicts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// A class (and class probabilities).
    #[default]
    Classification,
    /// A number.
    Regression,
}

/// Where an imported model came from, and how its parity with the framework was checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportInfo {
    /// `xgboost`, `lightgbm` or `onnx`.
    pub format: String,
    /// The file's flavour, e.g. `XGBoost 3.4.1 JSON`.
    pub source: String,
    /// Objective or operator, e.g. `binary:logistic`.
    pub objective: String,
    /// File name imported.
    pub file: String,
    /// SHA-256 of the imported file, hex.
    pub sha256: String,
    /// Rows of the framework's own outputs compared at import (`None`: parity not checked).
    pub parity: Option<Parity>,
    /// Warnings printed at import.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// The comparison of treeserve's outputs with the framework's at import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parity {
    /// Rows compared.
    pub rows: u64,
    /// Largest absolute difference of any output.
    pub max_abs: f64,
    /// Largest relative difference of any output (`|a - b| / max(|b|, 1e-3)`).
    pub max_rel: f64,
}

/// Reads a number that JSON may hold as `null` (serde_json writes NaN as `null`).
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Test metrics of a regressor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressionMetrics {
    /// Root mean squared error.
    pub rmse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Coefficient of determination (NaN when the target does not vary; JSON `null`).
    #[serde(deserialize_with = "nan_if_null")]
    pub r2: f64,
    /// Rows measured.
    pub rows: u64,
}

impl Manifest {
    /// Whether the payload is an [`super::ensemble::Ensemble`] (artifact format 2): imported
    /// models and regressors. Format 1 holds smartcore's classifiers.
    pub fn ensemble_payload(&self) -> bool {
        self.algorithm == Algorithm::Imported || self.task == Task::Regression
    }
}

/// Everything known about a model except its trees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Model name (the registry key).
    pub name: String,
    /// Creation time, RFC 3339 UTC.
    pub created: String,
    /// treeserve version that built the artifact.
    pub treeserve_version: String,
    /// Learning algorithm.
    pub algorithm: Algorithm,
    /// Hyper-parameters (`None` for an imported model).
    pub hyper_parameters: Option<HyperParameters>,
    /// Feature names, in the order the model reads them.
    pub features: Vec<String>,
    /// Name of the target column (the response key is `predicted_<target lower case>`).
    pub target: String,
    /// Class labels; class index `i` is `classes[i]`.
    pub classes: Vec<String>,
    /// Training data fingerprint and split.
    pub training: TrainingData,
    /// Test metrics.
    pub metrics: Metrics,
    /// Per-feature statistics of the training rows.
    pub feature_stats: Vec<FeatureStats>,
    /// Rows with known outputs, checked at load.
    pub golden: Vec<GoldenRow>,
    /// `leaf_counts[tree][node]`: training class counts at each leaf (empty for internal
    /// nodes). Gives class probabilities; smartcore keeps no counts.
    pub leaf_counts: Vec<Vec<Vec<u32>>>,
    /// SHA-256 of the payload (the serialized smartcore model), hex.
    pub payload_sha256: String,
    /// What the model predicts (absent in older artifacts: classification).
    #[serde(default)]
    pub task: Task,
    /// Whether the model routes missing values: then a request's `null` (or an empty CSV
    /// cell) means missing.
    #[serde(default)]
    pub missing_aware: bool,
    /// Provenance of an imported model.
    #[serde(default)]
    pub import: Option<ImportInfo>,
    /// Metrics of a regressor (on the reference rows of an import).
    #[serde(default)]
    pub regression_metrics: Option<RegressionMetrics>,
}
