//! The smartcore → Ensemble translation of regressors: treeserve's evaluator gives
//! smartcore's own `predict`, bit for bit, on many rows, including rows exactly at, just
//! above and just below every threshold.

use super::*;
use crate::model::flat::{FlatEnsemble, Scratch};

/// Deterministic pseudo-random values in [0, 1).
fn uniform(state: &mut u64) -> f64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

/// `rows × 3` features and a noisy non-linear target.
fn data(rows: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut s = seed;
    let mut x = Vec::new();
    let mut y = Vec::new();
    for _ in 0..rows {
        let a = uniform(&mut s) * 10.0 - 5.0;
        let b = (uniform(&mut s) * 8.0).round() / 2.0; // repeated values: ties at thresholds
        let c = uniform(&mut s);
        x.extend([a, b, c]);
        y.push(a.sin() * 3.0 + b * b / 4.0 - 2.0 * c + (uniform(&mut s) - 0.5) * 0.3);
    }
    (x, y)
}

/// Rows to compare on: fresh rows, plus each threshold exactly and one ulp either side.
fn probe_rows(e: &Ensemble, fresh: &[f64]) -> Vec<f64> {
    let mut rows = fresh.to_vec();
    let base = &fresh[..3];
    for tree in &e.trees {
        for node in &tree.nodes {
            if let Node::Split(s) = node {
                let Test::Le(t) = s.test else {
                    panic!("a regressor split is x <= t, got {:?}", s.test)
                };
                for v in [t, t.next_up(), t.next_down()] {
                    let mut row = base.to_vec();
                    row[s.feature as usize] = v;
                    rows.extend(row);
                }
            }
        }
    }
    rows
}

fn assert_same_as_smartcore(config: &TrainConfig) -> usize {
    let (x, y) = data(600, 7);
    let (fresh, _) = data(400, 99);
    // Fit once to learn the thresholds, then again (deterministic) predicting the probes.
    let (e, _) = fit(config, 3, (&x, &y), &fresh).unwrap();
    let probes = probe_rows(&e, &fresh);
    let (e2, expected) = fit(config, 3, (&x, &y), &probes).unwrap();
    assert_eq!(e, e2, "fitting is deterministic");
    let flat = FlatEnsemble::compile(&e).unwrap();
    let mut scratch = Scratch::default();
    let mut out = [0.0];
    let rows = probes.len() / 3;
    for r in 0..rows {
        flat.predict(&probes[r * 3..r * 3 + 3], &mut scratch, &mut out);
        assert_eq!(
            out[0].to_bits(),
            expected[r].to_bits(),
            "row {r} {:?}: treeserve {} smartcore {}",
            &probes[r * 3..r * 3 + 3],
            out[0],
            expected[r]
        );
    }
    rows
}

#[test]
fn a_regression_tree_predicts_exactly_what_smartcore_predicts() {
    for max_depth in [None, Some(3)] {
        let config = TrainConfig {
            algorithm: Algorithm::DecisionTree,
            max_depth,
            ..TrainConfig::default()
        };
        assert!(assert_same_as_smartcore(&config) > 400);
    }
}

#[test]
fn a_regression_forest_predicts_exactly_what_smartcore_predicts() {
    // 7 trees: the mean divides by a number that is not a power of two.
    for (n_trees, max_features) in [(7, None), (10, Some(3)), (1, Some(2))] {
        let config = TrainConfig {
            algorithm: Algorithm::RandomForest,
            n_trees,
            max_features,
            max_depth: Some(8),
            ..TrainConfig::default()
        };
        assert!(assert_same_as_smartcore(&config) > 400);
    }
}

#[test]
fn the_ensemble_is_smartcores_form() {
    let (x, y) = data(200, 3);
    let config = TrainConfig {
        algorithm: Algorithm::RandomForest,
        n_trees: 5,
        ..TrainConfig::default()
    };
    let (e, _) = fit(&config, 3, (&x, &y), &x[..3]).unwrap();
    assert_eq!(e.trees.len(), 5);
    assert_eq!(e.aggregation, Aggregation::Mean { divisor: 5.0 });
    assert_eq!(
        (e.precision, e.transform, e.output),
        (Precision::F64, Transform::Identity, OutputKind::Value)
    );
    e.validate(&Default::default()).unwrap();
}

#[test]
fn a_split_without_a_threshold_is_refused_not_panicked_on() {
    let node = |true_child, false_child, split_value| RegressionNode {
        output: 1.0,
        split_feature: 0,
        split_value,
        true_child,
        false_child,
    };
    let tree = RegressionTree {
        nodes: vec![
            node(Some(1), Some(2), None),
            node(None, None, None),
            node(None, None, None),
        ],
    };
    let e = to_ensemble(&[tree], 1, false).unwrap_err().to_string();
    assert!(e.contains("tree 0 node 0"), "{e}");
}
