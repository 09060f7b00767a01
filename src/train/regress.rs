//! Regression training: smartcore's `DecisionTreeRegressor` or `RandomForestRegressor`,
//! translated into treeserve's own [`Ensemble`] (artifact format 2).
//!
//! smartcore keeps its regression trees private too, but serializes them with named
//! fields: a node has `output` (the mean target of its training rows), `split_feature`,
//! `split_value` and `true_child` / `false_child`; a row goes to the true child when
//! `x[split_feature] <= split_value`. A forest predicts the sum of its trees' leaf values,
//! in tree order from 0.0, divided by the number of trees. The [`Ensemble`] says exactly
//! that (f64, `Test::Le`, `Aggregation::Mean`), so treeserve's answers are smartcore's,
//! bit for bit.

use serde::Deserialize;
use smartcore::ensemble::random_forest_regressor::{
    RandomForestRegressor, RandomForestRegressorParameters,
};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::tree::decision_tree_regressor::{
    DecisionTreeRegressor, DecisionTreeRegressorParameters,
};

use super::{Dataset, TrainConfig, TrainError, Trained, feature_stats, regression_metrics};
use crate::model::ensemble::{
    Aggregation, BasePlacement, Branch, Ensemble, Leaf, Node, OutputKind, Precision, Split, Test,
    Transform, Tree,
};
use crate::model::tree::TreeLimits;
use crate::model::{Algorithm, GoldenRow, Manifest, Metrics, Model, Task, encode_artifact};

/// Golden rows kept from the test rows.
const GOLDEN_ROWS: usize = 16;

/// One node of a smartcore regression tree, as smartcore serializes it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RegressionNode {
    /// Mean target of the training rows at this node (the prediction of a leaf).
    pub output: f64,
    /// Feature compared at this node (internal nodes only).
    pub split_feature: usize,
    /// Threshold: `x[split_feature] <= split_value` goes to `true_child`.
    pub split_value: Option<f64>,
    /// Child when the comparison holds; `None` for a leaf.
    pub true_child: Option<usize>,
    /// Child otherwise.
    pub false_child: Option<usize>,
}

/// smartcore's `BaseTree` of a regressor, as serialized (the fields treeserve needs).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RegressionTree {
    /// Nodes; index 0 is the root.
    pub nodes: Vec<RegressionNode>,
}

/// A `DecisionTreeRegressor` as serialized.
#[derive(Debug, Deserialize)]
struct TreeRegressorMirror {
    tree_regressor: Option<RegressionTree>,
}

/// A `RandomForestRegressor` as serialized.
#[derive(Debug, Deserialize)]
struct ForestRegressorMirror {
    forest_regressor: Option<ForestMirror>,
}

#[derive(Debug, Deserialize)]
struct ForestMirror {
    trees: Option<Vec<RegressionTree>>,
}

/// A fitted smartcore regressor's trees, read from its own serialization.
fn mirror<M: serde::Serialize, T: serde::de::DeserializeOwned>(model: &M) -> Result<T, TrainError> {
    let err = |e: String| TrainError::Fit(format!("reading the fitted trees: {e}"));
    let bytes = rmp_serde::to_vec_named(model).map_err(|e| err(e.to_string()))?;
    rmp_serde::from_slice(&bytes).map_err(|e| err(e.to_string()))
}

/// Translates smartcore regression trees over `num_features` features into an
/// [`Ensemble`]: one tree is its leaf value; a forest (`mean`) the mean of its trees.
pub(crate) fn to_ensemble(
    trees: &[RegressionTree],
    num_features: usize,
    mean: bool,
) -> Result<Ensemble, TrainError> {
    let bad = |t: usize, i: usize, what: &str| {
        Err(TrainError::Fit(format!(
            "smartcore's tree {t} node {i} {what}"
        )))
    };
    let mut out = Vec::with_capacity(trees.len());
    for (t, tree) in trees.iter().enumerate() {
        let mut nodes = Vec::with_capacity(tree.nodes.len());
        for (i, n) in tree.nodes.iter().enumerate() {
            nodes.push(match (n.true_child, n.false_child, n.split_value) {
                (None, _, _) => Node::Leaf(Leaf::Scalar(n.output)),
                (Some(yes), Some(no), Some(v)) => {
                    let index = |c: usize| u32::try_from(c).ok();
                    let (Some(yes), Some(no), Some(feature)) =
                        (index(yes), index(no), index(n.split_feature))
                    else {
                        return bad(t, i, "has an index out of range");
                    };
                    Node::Split(Split {
                        feature,
                        test: Test::Le(v),
                        yes,
                        no,
                        // smartcore: `NaN <= v` is false. Regressors it trains take no
                        // missing values, but the route is the same.
                        missing: Branch::No,
                        zero_is_missing: false,
                    })
                }
                _ => return bad(t, i, "is a split without a threshold or second child"),
            });
        }
        out.push(Tree { nodes, group: 0 });
    }
    Ok(Ensemble {
        num_features: u32::try_from(num_features)
            .map_err(|_| TrainError::Parameter(format!("{num_features} features")))?,
        outputs: 1,
        base: Vec::new(),
        base_placement: BasePlacement::Initial,
        aggregation: if mean {
            Aggregation::Mean {
                divisor: trees.len() as f64,
            }
        } else {
            Aggregation::Sum
        },
        trees: out,
        precision: Precision::F64,
        zero_snap: false,
        transform: Transform::Identity,
        output_cast_f32: false,
        output: OutputKind::Value,
    })
}

/// Fits smartcore's regressor of `config.algorithm` on `x` (`rows × f`, row-major) and
/// `y`; returns its trees as an [`Ensemble`] and smartcore's own predictions of `x_eval`.
pub(crate) fn fit(
    config: &TrainConfig,
    f: usize,
    (x, y): (&[f64], &[f64]),
    x_eval: &[f64],
) -> Result<(Ensemble, Vec<f64>), TrainError> {
    let fit_err = |e: smartcore::error::Failed| TrainError::Fit(e.to_string());
    let matrix =
        |x: &[f64]| DenseMatrix::new(x.len() / f.max(1), f, x.to_vec(), false).map_err(fit_err);
    let (xm, xm_eval, y) = (matrix(x)?, matrix(x_eval)?, y.to_vec());
    match config.algorithm {
        Algorithm::DecisionTree => {
            let params = DecisionTreeRegressorParameters {
                max_depth: config.max_depth,
                min_samples_leaf: config.min_samples_leaf,
                min_samples_split: config.min_samples_split,
                seed: Some(config.seed),
            };
            let model = DecisionTreeRegressor::fit(&xm, &y, params).map_err(fit_err)?;
            let predicted: Vec<f64> = model.predict(&xm_eval).map_err(fit_err)?;
            let m: TreeRegressorMirror = mirror(&model)?;
            let tree = m
                .tree_regressor
                .ok_or_else(|| TrainError::Fit("smartcore fitted no tree".into()))?;
            Ok((to_ensemble(&[tree], f, false)?, predicted))
        }
        Algorithm::RandomForest => {
            let params = RandomForestRegressorParameters {
                max_depth: config.max_depth,
                min_samples_leaf: config.min_samples_leaf,
                min_samples_split: config.min_samples_split,
                n_trees: usize::from(config.n_trees),
                m: config.max_features,
                keep_samples: false,
                seed: config.seed,
            };
            let model = RandomForestRegressor::fit(&xm, &y, params).map_err(fit_err)?;
            let predicted: Vec<f64> = model.predict(&xm_eval).map_err(fit_err)?;
            let m: ForestRegressorMirror = mirror(&model)?;
            let trees = m
                .forest_regressor
                .and_then(|f| f.trees)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| TrainError::Fit("smartcore fitted no trees".into()))?;
            Ok((to_ensemble(&trees, f, true)?, predicted))
        }
        Algorithm::Imported => Err(TrainError::Fit(
            "an imported model cannot be trained: train a decision_tree or random_forest".into(),
        )),
    }
}

/// Trains a regressor on `data` (a numeric target) split into `train_idx` and `test_idx`:
/// metrics on the test rows, golden rows from smartcore's own predictions.
pub(super) fn train(
    data: &Dataset,
    config: &TrainConfig,
    name: String,
    train_idx: Vec<usize>,
    test_idx: Vec<usize>,
) -> Result<Trained, TrainError> {
    let f = data.features.len();
    let gather = |idx: &[usize]| {
        let x: Vec<f64> = idx.iter().flat_map(|&i| data.row(i).to_vec()).collect();
        let y: Vec<f64> = idx.iter().map(|&i| data.values[i]).collect();
        (x, y)
    };
    let (x_train, y_train) = gather(&train_idx);
    let (x_test, y_test) = gather(&test_idx);
    let (ensemble, predicted) = fit(config, f, (&x_train, &y_train), &x_test)?;
    let step = (test_idx.len() / GOLDEN_ROWS).max(1);
    let golden = (0..test_idx.len())
        .step_by(step)
        .take(GOLDEN_ROWS)
        .map(|i| GoldenRow {
            features: x_test[i * f..(i + 1) * f].to_vec(),
            class: 0,
            probabilities: vec![predicted[i]],
        })
        .collect();
    let manifest = Manifest {
        name,
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        treeserve_version: env!("CARGO_PKG_VERSION").into(),
        algorithm: config.algorithm,
        hyper_parameters: Some(super::hyper_parameters(config, "mse")),
        features: data.features.clone(),
        target: data.target.clone(),
        classes: Vec::new(),
        training: super::training_data(data, config, train_idx.len(), test_idx.len()),
        metrics: Metrics {
            accuracy: f64::NAN,
            per_class: Vec::new(),
            confusion: Vec::new(),
        },
        feature_stats: data
            .features
            .iter()
            .enumerate()
            .map(|(j, name)| feature_stats(name, x_train.iter().skip(j).step_by(f).copied()))
            .collect(),
        golden,
        leaf_counts: Vec::new(),
        payload_sha256: String::new(),
        task: Task::Regression,
        missing_aware: false,
        import: None,
        regression_metrics: Some(regression_metrics(&y_test, &predicted)),
    };
    let payload = rmp_serde::to_vec(&ensemble)
        .map_err(|e| TrainError::Fit(format!("serializing the trees: {e}")))?;
    let artifact = encode_artifact(&manifest, &payload);
    let model = Model::from_bytes(&artifact, 0, &TreeLimits::default())?;
    Ok(Trained {
        artifact,
        manifest: model.manifest().clone(),
        test_rows: test_idx,
    })
}

#[cfg(test)]
#[path = "regress_tests.rs"]
mod tests;
