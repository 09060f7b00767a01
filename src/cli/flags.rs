//! Flag groups shared by several commands, flattened into their arguments with
//! `#[command(flatten)]`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::ValueEnum;

use super::{CommandError, io_err};
use crate::data::checks::CheckConfig;
use crate::lifecycle::GateConfig;
use crate::model::{Algorithm, Task};
use crate::registry::{Location, Registry, RegistryError};
use crate::train::{Criterion, TrainConfig};

/// Registry location, shared by the registry commands.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArg {
    /// Registry: a directory, s3://BUCKET[/PREFIX], az://CONTAINER[/PREFIX],
    /// gs://BUCKET[/PREFIX], mlflow+http(s)://HOST:PORT, or mlflow ($MLFLOW_TRACKING_URI).
    #[arg(long, env = "TREESERVE_REGISTRY", default_value = "models")]
    pub registry: Location,
}

impl RegistryArg {
    /// The registry at `--registry`.
    pub fn open(&self) -> Result<Arc<dyn Registry>, RegistryError> {
        crate::registry::open(&self.registry)
    }
}

/// The label and identifier columns of a training CSV, shared by `train`, `data add`,
/// `data check` and `retrain`.
#[derive(Debug, Clone, clap::Args)]
pub struct LabelColumns {
    /// Target (label) column (a registry dataset keeps its first version's columns).
    #[arg(long, default_value = "Species")]
    pub target: String,
    /// Identifier column, ignored for training when present; `""` for none.
    #[arg(long, default_value = "Id")]
    pub id_column: String,
}

impl LabelColumns {
    /// The identifier column; `None` for `--id-column ""`.
    pub fn id_column(&self) -> Option<&str> {
        (!self.id_column.is_empty()).then_some(self.id_column.as_str())
    }
}

/// Algorithms on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AlgorithmArg {
    /// One decision tree.
    DecisionTree,
    /// A random forest.
    RandomForest,
}
/// What a model learns, on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TaskArg {
    /// Class labels.
    Classification,
    /// A numeric target (RMSE, MAE, R²).
    Regression,
}

/// Learner settings, shared by `train` and `retrain`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainParams {
    /// What to learn: classes, or a numeric target (regression trains from --data CSV
    /// files only).
    #[arg(long, value_enum, default_value = "classification")]
    pub task: TaskArg,
    /// Learning algorithm.
    #[arg(long, value_enum, default_value = "decision-tree")]
    pub algorithm: AlgorithmArg,
    /// Split criterion of a classifier (a regressor minimises the squared error).
    #[arg(long, value_enum, default_value = "gini")]
    pub criterion: Criterion,
    /// Maximum tree depth (default: unlimited).
    #[arg(long)]
    pub max_depth: Option<u16>,
    /// Minimum samples at a leaf.
    #[arg(long, default_value_t = 1)]
    pub min_samples_leaf: usize,
    /// Minimum samples to split a node.
    #[arg(long, default_value_t = 2)]
    pub min_samples_split: usize,
    /// Trees in a random forest.
    #[arg(long, default_value_t = 100)]
    pub n_trees: u16,
    /// Features tried at each split of a forest (default: √features).
    #[arg(long)]
    pub max_features: Option<usize>,
    /// Fraction of rows held out for the test metrics (and the gate).
    #[arg(long, default_value_t = 0.4)]
    pub test_size: f64,
    /// Seed of the split and the learner.
    #[arg(long, default_value_t = 1984)]
    pub seed: u64,
    /// Most memory training may take (estimated before it starts; e.g. 512M, 8G).
    #[arg(long, default_value = "2G", value_parser = crate::train::parse_size)]
    pub max_memory: u64,
}

impl TrainParams {
    pub(super) fn config(&self) -> TrainConfig {
        TrainConfig {
            task: match self.task {
                TaskArg::Classification => Task::Classification,
                TaskArg::Regression => Task::Regression,
            },
            algorithm: match self.algorithm {
                AlgorithmArg::DecisionTree => Algorithm::DecisionTree,
                AlgorithmArg::RandomForest => Algorithm::RandomForest,
            },
            criterion: self.criterion,
            max_depth: self.max_depth,
            min_samples_leaf: self.min_samples_leaf,
            min_samples_split: self.min_samples_split,
            n_trees: self.n_trees,
            max_features: self.max_features,
            test_size: self.test_size,
            seed: self.seed,
            max_memory: self.max_memory,
            ..TrainConfig::default()
        }
    }
}

/// The validation gate's thresholds (flags override a `--gate` file).
#[derive(Debug, Clone, clap::Args)]
pub struct GateArgs {
    /// JSON file of thresholds: {"min_accuracy": 0.9, "min_recall": 0.8, "tolerance": 0.02}.
    #[arg(long, value_name = "FILE")]
    pub gate: Option<PathBuf>,
    /// Least test accuracy on the held-out rows (default 0; classifiers).
    #[arg(long)]
    pub min_accuracy: Option<f64>,
    /// Least recall of every class on the held-out rows (default 0; classifiers).
    #[arg(long)]
    pub min_recall: Option<f64>,
    /// How much worse than the champion the candidate may be (default 0.01): accuracy and
    /// macro F1 down by this much, a regressor's RMSE up by this fraction. A regressor
    /// must also beat predicting the mean (R² > 0).
    #[arg(long)]
    pub tolerance: Option<f64>,
    /// Share of the baseline's errors the candidate must remove (default 0.25; the
    /// baseline always answers the training rows' majority class, or their mean).
    #[arg(long)]
    pub baseline_margin: Option<f64>,
    /// Let the gate promote a candidate whose features or target differ from the
    /// champion's (refused otherwise: clients would break).
    #[arg(long)]
    pub allow_schema_change: bool,
}

impl GateArgs {
    pub(super) fn config(&self) -> Result<GateConfig, CommandError> {
        let mut c = match &self.gate {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(io_err(path))?;
                GateConfig::from_json(&bytes)
                    .map_err(|e| CommandError::Usage(format!("{}: {e}", path.display())))?
            }
            None => GateConfig::default(),
        };
        if let Some(v) = self.min_accuracy {
            c.min_accuracy = v;
        }
        if let Some(v) = self.min_recall {
            c.min_recall = v;
        }
        if let Some(v) = self.tolerance {
            c.tolerance = v;
        }
        if let Some(v) = self.baseline_margin {
            c.baseline_margin = v;
        }
        c.allow_schema_change |= self.allow_schema_change;
        c.validate().map_err(CommandError::Usage)?;
        Ok(c)
    }
}

/// Data-check thresholds.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// A value is far outside when more than this many range widths beyond the previous
    /// version's range.
    #[arg(long, default_value_t = CheckConfig::default().far_outside)]
    pub far_outside: f64,
    /// Largest fraction of rows with far-outside values before it is critical.
    #[arg(long, default_value_t = CheckConfig::default().max_far_fraction)]
    pub max_far_fraction: f64,
    /// Largest ratio of the biggest class to the smallest before a warning.
    #[arg(long, default_value_t = CheckConfig::default().max_imbalance)]
    pub max_imbalance: f64,
}

impl CheckArgs {
    pub(super) fn config(&self) -> CheckConfig {
        CheckConfig {
            far_outside: self.far_outside,
            max_far_fraction: self.max_far_fraction,
            max_imbalance: self.max_imbalance,
        }
    }
}
