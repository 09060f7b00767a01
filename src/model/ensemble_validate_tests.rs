//! Validation in index order (the one pass taken by trees whose children follow their
//! parent) against the search from the root: both answer alike on trees of any shape,
//! and name each faulty node (values, feature, test, depth: the checks both share) alike.
//! And compile's zero-as-missing rule, found in its one pass over the nodes.

use super::tests::{arb_tree, regression, split};
use super::*;
use crate::model::flat::FlatEnsemble;
use proptest::prelude::*;

/// A tree of `n` nodes with arbitrary children (often in order, often not: cycles,
/// shared nodes, orphans, out of range), values and features.
fn arb_wild_tree() -> impl Strategy<Value = Tree> {
    let node = (
        any::<bool>(),
        0u32..4,
        prop_oneof![Just(0.5), Just(0.1), Just(f64::NAN), -2.0..2.0f64],
        any::<u8>(),
        any::<u8>(),
    );
    (proptest::collection::vec(node, 1..24), any::<bool>()).prop_map(|(spec, ordered)| {
        let n = spec.len() as u32;
        let nodes = spec
            .into_iter()
            .enumerate()
            .map(|(i, (leaf, feature, v, a, b))| {
                if leaf {
                    return Node::Leaf(Leaf::Scalar(v));
                }
                // Ordered: children after the node (sometimes past the end); else anywhere.
                let child = |x: u8| {
                    if ordered {
                        i as u32 + 1 + u32::from(x) % n
                    } else {
                        u32::from(x) % (n + 1)
                    }
                };
                split(feature, Test::Le(v), child(a), child(b), Branch::No)
            })
            .collect();
        Tree { nodes, group: 0 }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]
    #[test]
    fn validation_in_order_answers_as_the_search(
        wild in proptest::collection::vec(arb_wild_tree(), 1..4),
        valid in proptest::collection::vec(arb_tree(1), 1..4),
        f32_model in any::<bool>(),
        max_depth in 1usize..8,
    ) {
        let precision = if f32_model { Precision::F32 } else { Precision::F64 };
        let limits = EnsembleLimits { max_depth, ..Default::default() };
        // Trees of any shape, and valid ones near the depth limit.
        for trees in [wild, valid] {
            let e = regression(trees, precision);
            prop_assert_eq!(e.validate_with(&limits, true), e.validate_with(&limits, false));
        }
    }

    #[test]
    fn valid_trees_in_order_take_the_one_pass(tree in arb_tree(1)) {
        let e = regression(vec![tree], Precision::F64);
        let limits = EnsembleLimits::default();
        prop_assert!(e.validate(&limits).is_ok());
        let ok = |v: f64| v.is_finite();
        prop_assert!(e.valid_in_order(&e.trees[0], &limits, &ok, &mut Vec::new()));
    }
}

/// A tree splitting `x[feature] < 1` at its root (zero goes `yes`), missing values `no`,
/// with the zero-as-missing flag `zim`, then a left split on feature 2 (depth 2).
fn zero_tree(feature: u32, zim: bool, nested_feature: u32) -> Tree {
    let leaf = |v| Node::Leaf(Leaf::Scalar(v));
    let mut root = split(feature, Test::Lt(1.0), 1, 4, Branch::No);
    let mut nested = split(nested_feature, Test::Lt(1.0), 2, 3, Branch::No);
    for n in [&mut root, &mut nested] {
        if let Node::Split(s) = n {
            s.zero_is_missing = zim && s.feature == feature;
        }
    }
    Tree {
        nodes: vec![root, nested, leaf(1.0), leaf(2.0), leaf(3.0)],
        group: 0,
    }
}

#[test]
fn a_node_apart_from_its_features_zero_as_missing_rule_is_named_in_compile_order() {
    let compiled = |trees| FlatEnsemble::compile(&regression(trees, Precision::F64)).err();
    // Feature 0's rule comes from a later tree; an earlier node sends zero elsewhere.
    let err = compiled(vec![zero_tree(0, false, 2), zero_tree(0, true, 2)]).unwrap();
    assert!(
        err.0
            .starts_with("tree 0 node 0: feature 0 treats zero as missing"),
        "{err}"
    );
    // Features 1 and 2 have the rule; nodes apart from it on both: the first met (tree
    // 0's nested split, on feature 2) is named, not the lowest feature's (tree 1's root).
    let err = compiled(vec![
        zero_tree(0, false, 2),
        zero_tree(1, false, 0),
        zero_tree(1, true, 0),
        zero_tree(2, true, 2),
    ])
    .unwrap();
    assert!(err.0.starts_with("tree 0 node 1: feature 2 "), "{err}");
    // No rule for the feature, or nodes that agree with it: compiled.
    assert!(compiled(vec![zero_tree(0, false, 2), zero_tree(1, false, 2)]).is_none());
    assert!(compiled(vec![zero_tree(0, true, 2), zero_tree(0, true, 2)]).is_none());
}

/// A chain of `splits` splits (each sends `yes` to a leaf, `no` to the next split), so
/// the deepest split is at depth `splits - 1`.
fn chain(splits: u32) -> Tree {
    let mut nodes = Vec::new();
    for s in 0..splits {
        let at = 2 * s;
        nodes.push(split(0, Test::Lt(0.5), at + 1, at + 2, Branch::No));
        nodes.push(Node::Leaf(Leaf::Scalar(1.0)));
    }
    nodes.push(Node::Leaf(Leaf::Scalar(2.0)));
    Tree { nodes, group: 0 }
}

#[test]
fn the_depth_limit_holds_to_the_split_either_way() {
    let limits = EnsembleLimits {
        max_depth: 5,
        ..Default::default()
    };
    for in_order in [true, false] {
        let e = regression(vec![chain(5)], Precision::F64);
        assert!(e.validate_with(&limits, in_order).is_ok(), "{in_order}");
        let e = regression(vec![chain(6)], Precision::F64);
        let err = e.validate_with(&limits, in_order).unwrap_err();
        assert_eq!(err.0, "tree 0 node 10: deeper than 5", "{in_order}");
    }
}

#[test]
fn each_faulty_node_is_named_alike_either_way() {
    let leaf = |v| Node::Leaf(Leaf::Scalar(v));
    let vector = |pairs: Vec<(u32, f64)>| Node::Leaf(Leaf::Vector(pairs));
    let root = |feature, test| split(feature, test, 1, 2, Branch::No);
    let set = |words| Test::InSet {
        words: vec![0; words],
        rule: CategoryRule::Truncate,
    };
    let limits = EnsembleLimits {
        max_set_words: 4,
        ..Default::default()
    };
    let finite = "is not a finite value of the model's precision";
    let cases = [
        (
            Precision::F64,
            root(3, Test::Lt(0.5)),
            leaf(1.0),
            "node 0: feature 3 but the model has 3".to_string(),
        ),
        (
            Precision::F64,
            root(2, Test::Lt(f64::INFINITY)),
            leaf(1.0),
            format!("node 0: threshold inf {finite}"),
        ),
        (
            Precision::F32,
            root(0, Test::Ge(0.1)),
            leaf(1.0),
            format!("node 0: threshold 0.1 {finite}"),
        ),
        (
            Precision::F64,
            root(0, set(5)),
            leaf(1.0),
            "node 0: category set of 5 words (at most 4)".into(),
        ),
        (
            Precision::F64,
            root(0, set(4)),
            leaf(f64::NAN),
            format!("node 1: leaf value NaN {finite}"),
        ),
        (
            Precision::F32,
            root(0, Test::Lt(0.5)),
            leaf(0.1),
            format!("node 1: leaf value 0.1 {finite}"),
        ),
        (
            Precision::F64,
            root(0, Test::Lt(0.5)),
            vector(vec![]),
            "node 1: leaf has 0 values for 1 outputs".into(),
        ),
        (
            Precision::F64,
            root(0, Test::Lt(0.5)),
            vector(vec![(0, 1.0), (0, 1.0)]),
            "node 1: leaf has 2 values for 1 outputs".into(),
        ),
        (
            Precision::F64,
            root(0, Test::Lt(0.5)),
            vector(vec![(1, 1.0)]),
            "node 1: leaf adds to output 1 of 1".into(),
        ),
        (
            Precision::F64,
            root(0, Test::Lt(0.5)),
            vector(vec![(0, f64::NAN)]),
            format!("node 1: leaf value NaN {finite}"),
        ),
    ];
    for (precision, root, first, want) in cases {
        let tree = Tree {
            nodes: vec![root, first, leaf(2.0)],
            group: 0,
        };
        let e = regression(vec![tree], precision);
        for in_order in [true, false] {
            let err = e.validate_with(&limits, in_order).unwrap_err();
            assert_eq!(err.0, format!("tree 0 {want}"), "in order: {in_order}");
        }
    }
    // And the same nodes, sound, pass.
    let tree = Tree {
        nodes: vec![root(2, set(4)), vector(vec![(0, 0.5)]), leaf(2.0)],
        group: 0,
    };
    assert!(
        regression(vec![tree], Precision::F32)
            .validate(&limits)
            .is_ok()
    );
}

#[test]
fn the_feature_count_is_bounded_before_anything_per_feature_is_built() {
    let tree = Tree {
        nodes: vec![Node::Leaf(Leaf::Scalar(1.0))],
        group: 0,
    };
    let mut e = regression(vec![tree], Precision::F64);
    let limits = EnsembleLimits::default();
    for (n, ok) in [
        (0, false),
        (1, true),
        (1 << 20, true),
        ((1 << 20) + 1, false),
    ] {
        e.num_features = n;
        let got = e.validate(&limits);
        assert_eq!(got.is_ok(), ok, "{n}: {got:?}");
        if let Err(err) = got {
            assert_eq!(
                err.0,
                format!("features: {n} (1 to 1048576 allowed: rows are dense)")
            );
        }
    }
}
