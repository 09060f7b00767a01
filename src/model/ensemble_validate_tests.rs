//! Validation in index order (the one pass taken by trees whose children follow their
//! parent) against the search from the root: both answer alike on trees of any shape.

use super::tests::{arb_tree, regression, split};
use super::*;
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
