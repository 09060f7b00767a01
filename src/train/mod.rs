//! Training: CSV → smartcore tree or forest → validated artifact with metrics, the training
//! data's fingerprint and feature statistics.

mod budget;
mod data;
mod metrics;
mod regress;
mod report;

use std::path::PathBuf;

use smartcore::ensemble::random_forest_classifier::{
    RandomForestClassifier, RandomForestClassifierParameters,
};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::tree::decision_tree_classifier::{
    DecisionTreeClassifier, DecisionTreeClassifierParameters, SplitCriterion,
};

pub use budget::{DEFAULT_MAX_MEMORY, estimate as memory_estimate, parse_size};
pub use data::{Dataset, load_csv, load_csv_for, parse_csv, parse_csv_for};
pub use metrics::{DRIFT_BINS, feature_stats, metrics, regression_metrics};
pub(crate) use report::number;
pub use report::render_report;

use crate::model::tree::{FlatForest, MirrorForest, MirrorTree, TreeLimits};
use crate::model::{
    Algorithm, DatasetLink, GoldenRow, HyperParameters, Manifest, Model, SplitMethod, Task,
    TrainingData, encode_artifact,
};

/// Why training failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The data file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The data is unusable; names the line (1-based, the header is line 1) and column.
    #[error("line {line}{}: {message}", column.as_ref().map(|c| format!(", column {c:?}")).unwrap_or_default())]
    Data {
        /// 1-based line number.
        line: u64,
        /// Column name, when one is at fault.
        column: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// A parameter is out of range.
    #[error("invalid parameter: {0}")]
    Parameter(String),
    /// smartcore refused to fit.
    #[error("training failed: {0}")]
    Fit(String),
    /// Training would take more memory than the budget (`--max-memory`).
    #[error("{0}")]
    Memory(String),
    /// The trained model did not pass its own validation (a bug).
    #[error("the trained model does not validate: {0}")]
    Artifact(#[from] crate::model::ArtifactError),
}

/// Split criterion choices (classification; a regressor always minimises the squared
/// error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Criterion {
    /// Gini impurity.
    Gini,
    /// Entropy.
    Entropy,
    /// Classification error.
    ClassificationError,
}

impl Criterion {
    fn smartcore(self) -> SplitCriterion {
        match self {
            Criterion::Gini => SplitCriterion::Gini,
            Criterion::Entropy => SplitCriterion::Entropy,
            Criterion::ClassificationError => SplitCriterion::ClassificationError,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Criterion::Gini => "gini",
            Criterion::Entropy => "entropy",
            Criterion::ClassificationError => "classification_error",
        }
    }
}

/// Everything `train` needs.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// CSV file.
    pub data: PathBuf,
    /// Model name; defaults to the CSV file stem.
    pub name: Option<String>,
    /// Target column.
    pub target: String,
    /// Identifier column to ignore, if present.
    pub id_column: Option<String>,
    /// What to learn: classes, or a number (regression).
    pub task: Task,
    /// Learning algorithm.
    pub algorithm: Algorithm,
    /// Split criterion (classification only).
    pub criterion: Criterion,
    /// Maximum depth.
    pub max_depth: Option<u16>,
    /// Minimum samples per leaf.
    pub min_samples_leaf: usize,
    /// Minimum samples to split.
    pub min_samples_split: usize,
    /// Trees in a forest.
    pub n_trees: u16,
    /// Features tried per split in a forest (default √features).
    pub max_features: Option<usize>,
    /// Fraction of rows held out for testing, in (0, 1).
    pub test_size: f64,
    /// Seed of the split and the learner.
    pub seed: u64,
    /// How rows are split into training and test rows.
    pub split: SplitMethod,
    /// The registry dataset version `data` is, recorded in the manifest.
    pub dataset: Option<DatasetLink>,
    /// The most memory training may take, in bytes (estimated before it starts; see
    /// docs/lifecycle.md).
    pub max_memory: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            data: PathBuf::new(),
            name: None,
            target: "Species".into(),
            id_column: Some("Id".into()),
            task: Task::Classification,
            algorithm: Algorithm::DecisionTree,
            criterion: Criterion::Gini,
            max_depth: None,
            min_samples_leaf: 1,
            min_samples_split: 2,
            n_trees: 100,
            max_features: None,
            test_size: 0.4,
            seed: 1984,
            split: SplitMethod::Shuffle,
            dataset: None,
            max_memory: DEFAULT_MAX_MEMORY,
        }
    }
}

/// A trained model: the artifact bytes and its manifest.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The artifact file contents.
    pub artifact: Vec<u8>,
    /// Its manifest.
    pub manifest: Manifest,
    /// The held-out test rows (indices into the data set).
    pub test_rows: Vec<usize>,
}

/// Loads the CSV and trains.
pub fn train(config: &TrainConfig) -> Result<Trained, TrainError> {
    let data = load_csv_for(
        &config.data,
        &config.target,
        config.id_column.as_deref(),
        config.task,
    )?;
    train_dataset(&data, config)
}

/// Trains on a loaded data set.
pub fn train_dataset(data: &Dataset, config: &TrainConfig) -> Result<Trained, TrainError> {
    if data.task() != config.task {
        return Err(TrainError::Parameter(format!(
            "the data was read for {:?} but training is for {:?}: read it with the same task",
            data.task(),
            config.task
        )));
    }
    if !(config.test_size > 0.0 && config.test_size < 1.0) {
        return Err(TrainError::Parameter(format!(
            "--test-size must be between 0 and 1 (exclusive), got {}",
            config.test_size
        )));
    }
    if config.min_samples_leaf == 0 || config.min_samples_split < 2 {
        return Err(TrainError::Parameter(
            "--min-samples-leaf must be ≥ 1 and --min-samples-split ≥ 2".into(),
        ));
    }
    if config.algorithm == Algorithm::RandomForest && config.n_trees == 0 {
        return Err(TrainError::Parameter("--n-trees must be ≥ 1".into()));
    }
    let name = model_name(data, config);
    if !crate::name::valid_name(&name) {
        return Err(TrainError::Parameter(format!(
            "model name {name:?}: use letters, digits, '-', '_' or '.', starting with a letter or digit"
        )));
    }
    let (train_idx, test_idx) = match config.split {
        SplitMethod::Shuffle => split(data.rows(), config.test_size, config.seed),
        SplitMethod::Content => split_by_content(data, config.test_size, config.seed),
    };
    if test_idx.is_empty() || train_idx.is_empty() {
        return Err(TrainError::Parameter(format!(
            "{} rows cannot be split with --test-size {}",
            data.rows(),
            config.test_size
        )));
    }
    budget::check(
        train_idx.len(),
        test_idx.len(),
        data.features.len(),
        data.classes.len().max(1),
        config,
    )?;
    if config.task == Task::Regression {
        return regress::train(data, config, name, train_idx, test_idx);
    }
    let f = data.features.len();
    let k = data.classes.len();
    let gather = |idx: &[usize]| {
        let x: Vec<f64> = idx
            .iter()
            .flat_map(|&i| data.row(i).iter().copied())
            .collect();
        let y: Vec<u32> = idx.iter().map(|&i| data.y[i]).collect();
        (x, y)
    };
    let (x_train, y_train) = gather(&train_idx);
    let (x_test, y_test) = gather(&test_idx);
    let mut seen = vec![false; k];
    y_train.iter().for_each(|&c| seen[c as usize] = true);
    if seen.iter().filter(|&&s| s).count() < 2 {
        return Err(TrainError::Data {
            line: 2,
            column: Some(data.target.clone()),
            message: "the training split holds only one class".into(),
        });
    }
    let fit_err = |e: smartcore::error::Failed| TrainError::Fit(e.to_string());
    let matrix = |x: Vec<f64>, rows: usize| DenseMatrix::new(rows, f, x, false).map_err(fit_err);
    let xm_train = matrix(x_train.clone(), y_train.len())?;
    let xm_test = matrix(x_test.clone(), y_test.len())?;

    let (payload, trees, predicted_test) = match config.algorithm {
        Algorithm::DecisionTree => {
            let params = DecisionTreeClassifierParameters {
                criterion: config.criterion.smartcore(),
                max_depth: config.max_depth,
                min_samples_leaf: config.min_samples_leaf,
                min_samples_split: config.min_samples_split,
                seed: Some(config.seed),
            };
            let model =
                DecisionTreeClassifier::fit(&xm_train, &y_train, params).map_err(fit_err)?;
            let predicted = model.predict(&xm_test).map_err(fit_err)?;
            let (payload, mirror) = serialize::<_, MirrorTree>(&model)?;
            (payload, vec![mirror], predicted)
        }
        Algorithm::RandomForest => {
            let params = RandomForestClassifierParameters {
                criterion: config.criterion.smartcore(),
                max_depth: config.max_depth,
                min_samples_leaf: config.min_samples_leaf,
                min_samples_split: config.min_samples_split,
                n_trees: config.n_trees,
                m: config.max_features,
                keep_samples: false,
                seed: config.seed,
            };
            let model =
                RandomForestClassifier::fit(&xm_train, &y_train, params).map_err(fit_err)?;
            let predicted = model.predict(&xm_test).map_err(fit_err)?;
            let (payload, mirror) = serialize::<_, MirrorForest>(&model)?;
            (payload, mirror.trees.unwrap_or_default(), predicted)
        }
        Algorithm::Imported => {
            return Err(TrainError::Fit(
                "an imported model cannot be trained: train a decision_tree or random_forest"
                    .into(),
            ));
        }
    };

    // Leaf class counts from the training rows.
    let leaf_counts: Vec<Vec<Vec<u32>>> = trees
        .iter()
        .map(|tree| {
            let mut counts: Vec<Vec<u32>> = tree
                .nodes
                .iter()
                .map(|n| {
                    if n.true_child.is_none() {
                        vec![0; k]
                    } else {
                        Vec::new()
                    }
                })
                .collect();
            for (i, &c) in y_train.iter().enumerate() {
                counts[tree.leaf_for(&x_train[i * f..(i + 1) * f])][c as usize] += 1;
            }
            counts
        })
        .collect();

    let metrics = metrics(&data.classes, &y_test, &predicted_test);
    let feature_stats = data
        .features
        .iter()
        .enumerate()
        .map(|(j, name)| feature_stats(name, x_train.iter().skip(j).step_by(f).copied()))
        .collect();

    let mut manifest = Manifest {
        name,
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        treeserve_version: env!("CARGO_PKG_VERSION").into(),
        algorithm: config.algorithm,
        hyper_parameters: Some(hyper_parameters(config, config.criterion.as_str())),
        features: data.features.clone(),
        target: data.target.clone(),
        classes: data.classes.clone(),
        training: training_data(data, config, train_idx.len(), test_idx.len()),
        metrics,
        feature_stats,
        golden: Vec::new(),
        leaf_counts,
        payload_sha256: String::new(),
        task: Task::Classification,
        missing_aware: false,
        import: None,
        regression_metrics: None,
    };
    // Golden rows: the first test row of each class, then more test rows, up to 8; expected
    // classes from smartcore's own predictions, probabilities from the compiled model.
    let mut picks: Vec<usize> = Vec::new();
    for c in 0..k as u32 {
        if let Some(i) = y_test.iter().position(|&y| y == c) {
            picks.push(i);
        }
    }
    let extra: Vec<usize> = (0..y_test.len())
        .filter(|i| !picks.contains(i))
        .take(8usize.saturating_sub(picks.len()))
        .collect();
    picks.extend(extra);
    let draft = FlatForest::compile(&trees, &manifest.leaf_counts, f, k)?;
    let mut proba = vec![0.0; k];
    manifest.golden = picks
        .iter()
        .map(|&i| {
            let row = &x_test[i * f..(i + 1) * f];
            draft.predict_proba(row, &mut proba);
            GoldenRow {
                features: row.to_vec(),
                class: predicted_test[i],
                probabilities: proba.clone(),
            }
        })
        .collect();
    let artifact = encode_artifact(&manifest, &payload);
    let model = Model::from_bytes(&artifact, 0, &TreeLimits::default())?;
    Ok(Trained {
        artifact,
        manifest: model.manifest().clone(),
        test_rows: test_idx,
    })
}

/// The hyper-parameters of `config` as the manifest records them.
fn hyper_parameters(config: &TrainConfig, criterion: &str) -> HyperParameters {
    HyperParameters {
        criterion: criterion.into(),
        max_depth: config.max_depth,
        min_samples_leaf: config.min_samples_leaf,
        min_samples_split: config.min_samples_split,
        n_trees: (config.algorithm == Algorithm::RandomForest).then_some(config.n_trees),
        max_features: config.max_features,
        seed: config.seed,
    }
}

/// Where the rows came from and how they were split, as the manifest records it.
fn training_data(
    data: &Dataset,
    config: &TrainConfig,
    train_rows: usize,
    test_rows: usize,
) -> TrainingData {
    TrainingData {
        source: data.source.clone(),
        sha256: data.sha256.clone(),
        rows: data.rows() as u64,
        train_rows: train_rows as u64,
        test_rows: test_rows as u64,
        test_size: config.test_size,
        split_seed: config.seed,
        split: config.split,
        dataset: config.dataset.clone(),
        gated: false,
    }
}

/// The name a model gets: `config.name`, else the data file's stem, lower case.
fn model_name(data: &Dataset, config: &TrainConfig) -> String {
    match &config.name {
        Some(n) => n.clone(),
        None => std::path::Path::new(&data.source)
            .file_stem()
            .map(|s| s.to_string_lossy().to_lowercase())
            .unwrap_or_else(|| "model".into()),
    }
}

/// The payload (the smartcore model, named MessagePack) and its treeserve mirror.
fn serialize<M: serde::Serialize, T: serde::de::DeserializeOwned>(
    model: &M,
) -> Result<(Vec<u8>, T), TrainError> {
    let err = |e: String| TrainError::Fit(format!("serializing the model: {e}"));
    let payload = rmp_serde::to_vec_named(model).map_err(|e| err(e.to_string()))?;
    let mirror = rmp_serde::from_slice(&payload).map_err(|e| err(e.to_string()))?;
    Ok((payload, mirror))
}

/// Seeded shuffle split: returns (train, test) row indices.
pub fn split(rows: usize, test_size: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut idx: Vec<usize> = (0..rows).collect();
    let mut state = seed;
    for i in (1..rows).rev() {
        let j = (splitmix64(&mut state) % (i as u64 + 1)) as usize;
        idx.swap(i, j);
    }
    let n_test = ((rows as f64) * test_size).round() as usize;
    let test = idx.split_off(rows - n_test.min(rows));
    (idx, test)
}

/// Split by a seeded hash of each row's content (features and label): returns (train,
/// test) row indices, both in row order.
pub fn split_by_content(data: &Dataset, test_size: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    use sha2::{Digest, Sha256};
    let threshold = (test_size * u64::MAX as f64) as u64;
    (0..data.rows()).partition(|&i| {
        let mut h = Sha256::new();
        h.update(seed.to_le_bytes());
        for v in data.row(i) {
            // -0.0 and 0.0 are the same value: hash them alike.
            h.update((v + 0.0).to_bits().to_le_bytes());
        }
        match data.task() {
            Task::Classification => h.update(data.classes[data.y[i] as usize].as_bytes()),
            Task::Regression => h.update((data.values[i] + 0.0).to_bits().to_le_bytes()),
        }
        let d = h.finalize();
        u64::from_le_bytes(d[..8].try_into().expect("8 bytes")) >= threshold
    })
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
