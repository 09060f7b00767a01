//! The manifest stored at the head of every artifact: what the model is, how it was trained,
//! how well it did, and the training data's statistics (the drift baseline).

use serde::{Deserialize, Serialize};

/// The learning algorithm of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// A single smartcore `DecisionTreeClassifier`.
    DecisionTree,
    /// A smartcore `RandomForestClassifier`.
    RandomForest,
}

impl Algorithm {
    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::DecisionTree => "decision_tree",
            Algorithm::RandomForest => "random_forest",
        }
    }
}

/// Hyper-parameters the model was trained with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HyperParameters {
    /// Split criterion: `gini`, `entropy` or `classification_error`.
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
    /// Fraction of test rows predicted correctly.
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
    /// Feature values, in feature order.
    pub features: Vec<f64>,
    /// Expected class index (from smartcore's own `predict`).
    pub class: u32,
    /// Expected class probabilities.
    pub probabilities: Vec<f64>,
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
    /// Hyper-parameters.
    pub hyper_parameters: HyperParameters,
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
}
