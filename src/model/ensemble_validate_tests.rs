//! Validation in index order (the one pass taken by trees whose children follow their
//! parent) against the search from the root: both answer alike on trees of any shape.
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
