//! Validation of hostile structures, and the compiled evaluator against a direct
//! interpretation of the ensemble on random ensembles and rows.

use super::*;
use crate::model::flat::{FlatEnsemble, Scratch, transform};
use proptest::prelude::*;

/// A split node that reads no zero as missing.
pub(in crate::model) fn split(
    feature: u32,
    test: Test,
    yes: u32,
    no: u32,
    missing: Branch,
) -> Node {
    Node::Split(Split {
        feature,
        test,
        yes,
        no,
        missing,
        zero_is_missing: false,
    })
}

pub(super) fn regression(trees: Vec<Tree>, precision: Precision) -> Ensemble {
    Ensemble {
        num_features: 3,
        outputs: 1,
        trees,
        base: vec![0.5],
        base_placement: BasePlacement::Initial,
        aggregation: Aggregation::Sum,
        precision,
        zero_snap: false,
        transform: Transform::Identity,
        output_cast_f32: false,
        output: OutputKind::Value,
    }
}

fn stump(test: Test, missing: Branch) -> Tree {
    Tree {
        nodes: vec![
            split(0, test, 1, 2, missing),
            Node::Leaf(Leaf::Scalar(1.0)),
            Node::Leaf(Leaf::Scalar(2.0)),
        ],
        group: 0,
    }
}

fn value(e: &Ensemble, row: &[f64]) -> f64 {
    e.validate(&EnsembleLimits::default()).unwrap();
    let flat = FlatEnsemble::compile(e).unwrap();
    let mut s = [0.0];
    flat.predict(row, &mut Scratch::default(), &mut s);
    s[0]
}

#[test]
fn comparisons_are_exact_at_the_threshold() {
    let t = 0.25;
    for (test, at, below, above) in [
        (Test::Lt(t), 2.0, 1.0, 2.0),
        (Test::Le(t), 1.0, 1.0, 2.0),
        (Test::Ge(t), 1.0, 2.0, 1.0),
        (Test::Gt(t), 2.0, 2.0, 1.0),
    ] {
        let e = regression(vec![stump(test.clone(), Branch::No)], Precision::F64);
        assert_eq!(value(&e, &[t, 0.0, 0.0]), 0.5 + at, "{test:?} at t");
        assert_eq!(
            value(&e, &[t.next_down(), 0.0, 0.0]),
            0.5 + below,
            "{test:?}"
        );
        assert_eq!(value(&e, &[t.next_up(), 0.0, 0.0]), 0.5 + above, "{test:?}");
    }
}

#[test]
fn missing_values_follow_the_missing_branch() {
    for (test, missing, want) in [
        (Test::Lt(0.0), Branch::Yes, 1.0),
        (Test::Lt(0.0), Branch::No, 2.0),
        (Test::Ge(0.0), Branch::Yes, 1.0),
        (Test::Gt(0.0), Branch::No, 2.0),
    ] {
        let e = regression(vec![stump(test, missing)], Precision::F64);
        assert_eq!(value(&e, &[f64::NAN, 0.0, 0.0]), 0.5 + want);
    }
}

#[test]
fn f32_models_round_inputs_first() {
    // 0.1f32 is above 0.1f64: a row of 0.1 rounds to the threshold itself.
    let t = 0.1f32 as f64;
    let e = regression(vec![stump(Test::Lt(t), Branch::No)], Precision::F32);
    assert_eq!(value(&e, &[0.1, 0.0, 0.0]), 2.5);
    let e = regression(vec![stump(Test::Lt(t), Branch::No)], Precision::F64);
    assert_eq!(value(&e, &[0.1, 0.0, 0.0]), 1.5);
}

#[test]
fn zero_as_missing_and_zero_snap() {
    let mut tree = stump(Test::Le(-1.0), Branch::Yes);
    if let Node::Split(s) = &mut tree.nodes[0] {
        s.zero_is_missing = true;
    }
    let mut e = regression(vec![tree], Precision::F64);
    e.zero_snap = true;
    assert_eq!(value(&e, &[0.0, 0.0, 0.0]), 1.5, "zero is missing: yes");
    assert_eq!(value(&e, &[1e-36, 0.0, 0.0]), 1.5, "snapped to zero");
    assert_eq!(value(&e, &[1e-30, 0.0, 0.0]), 2.5);
    // Another node on the feature that sends zero elsewhere than missing cannot compile.
    e.trees.push(stump(Test::Le(1.0), Branch::No));
    assert!(FlatEnsemble::compile(&e).is_err());
}

#[test]
fn category_rules() {
    let set = |rule| Test::InSet {
        words: vec![0b101],
        rule,
    };
    let e = regression(
        vec![stump(set(CategoryRule::Truncate), Branch::No)],
        Precision::F64,
    );
    for (x, want) in [
        (0.0, 1.0),
        (0.9, 1.0),
        (1.0, 2.0),
        (2.5, 1.0),
        (-0.5, 2.0),
        (40.0, 2.0),
    ] {
        assert_eq!(value(&e, &[x, 0.0, 0.0]), 0.5 + want, "xgboost {x}");
    }
    let e = regression(
        vec![stump(
            set(CategoryRule::TruncateNegativeFractionIsZero),
            Branch::No,
        )],
        Precision::F64,
    );
    assert_eq!(value(&e, &[-0.5, 0.0, 0.0]), 1.5, "(int)-0.5 == 0");
    assert_eq!(value(&e, &[-1.0, 0.0, 0.0]), 2.5);
    assert_eq!(value(&e, &[1e300, 0.0, 0.0]), 2.5);
}

fn refused(e: &Ensemble) -> String {
    e.validate(&EnsembleLimits::default()).unwrap_err().0
}

#[test]
fn hostile_structures_are_refused_by_name() {
    let leaf = || Node::Leaf(Leaf::Scalar(0.0));
    let cyc = Tree {
        nodes: vec![
            split(0, Test::Lt(0.0), 1, 2, Branch::No),
            leaf(),
            split(0, Test::Lt(0.0), 0, 1, Branch::No),
        ],
        group: 0,
    };
    assert!(refused(&regression(vec![cyc], Precision::F64)).contains("reached twice"));
    let out = Tree {
        nodes: vec![split(0, Test::Lt(0.0), 1, 7, Branch::No), leaf()],
        group: 0,
    };
    assert!(refused(&regression(vec![out], Precision::F64)).contains("out of range"));
    let orphan = Tree {
        nodes: vec![leaf(), leaf()],
        group: 0,
    };
    assert!(refused(&regression(vec![orphan], Precision::F64)).contains("not reachable"));
    let nan = stump(Test::Lt(f64::NAN), Branch::No);
    assert!(refused(&regression(vec![nan], Precision::F64)).contains("threshold NaN"));
    let feature = Tree {
        nodes: vec![split(9, Test::Lt(0.0), 1, 2, Branch::No), leaf(), leaf()],
        group: 0,
    };
    assert!(refused(&regression(vec![feature], Precision::F64)).contains("feature 9"));
    let not_f32 = stump(Test::Lt(0.1), Branch::No);
    assert!(refused(&regression(vec![not_f32], Precision::F32)).contains("precision"));
    let mut group = stump(Test::Lt(0.0), Branch::No);
    group.group = 1;
    assert!(refused(&regression(vec![group], Precision::F64)).contains("group 1"));
    assert!(refused(&regression(vec![], Precision::F64)).contains("0 trees"));
}

#[test]
fn a_deep_chain_validates_and_evaluates_without_recursion() {
    let depth = 4000u32;
    let mut nodes = Vec::new();
    for d in 0..depth {
        nodes.push(split(
            0,
            Test::Lt(d as f64),
            2 * d + 2,
            2 * d + 1,
            Branch::No,
        ));
        nodes.push(Node::Leaf(Leaf::Scalar(d as f64)));
    }
    nodes.push(Node::Leaf(Leaf::Scalar(-1.0)));
    let e = regression(vec![Tree { nodes, group: 0 }], Precision::F64);
    assert_eq!(value(&e, &[-1.0, 0.0, 0.0]), -0.5, "all the way down");
    assert_eq!(
        value(&e, &[10.0, 0.0, 0.0]),
        0.5,
        "leaves at the first node"
    );
    let limits = EnsembleLimits {
        max_depth: 100,
        ..Default::default()
    };
    assert!(e.validate(&limits).unwrap_err().0.contains("deeper"));
}

// ---- the compiled evaluator against a direct interpretation ----

fn naive(e: &Ensemble, row: &[f64]) -> Vec<f64> {
    let f32m = e.precision == Precision::F32;
    let x: Vec<f64> = row
        .iter()
        .map(|&v| {
            let v = if f32m { v as f32 as f64 } else { v };
            if e.zero_snap && v.abs() <= 1e-35_f32 as f64 {
                0.0
            } else {
                v
            }
        })
        .collect();
    let zero_missing: Vec<bool> = (0..e.num_features)
        .map(|f| {
            e.trees
                .iter()
                .flat_map(|t| &t.nodes)
                .any(|n| matches!(n, Node::Split(s) if s.feature == f && s.zero_is_missing))
        })
        .collect();
    let mut raw = vec![0.0f64; e.outputs as usize];
    let mut raw32 = vec![0.0f32; e.outputs as usize];
    if e.base_placement == BasePlacement::Initial && !e.base.is_empty() {
        raw.copy_from_slice(&e.base);
        raw32
            .iter_mut()
            .zip(&e.base)
            .for_each(|(a, &b)| *a = b as f32);
    }
    for tree in &e.trees {
        let mut i = 0usize;
        let leaf = loop {
            match &tree.nodes[i] {
                Node::Leaf(l) => break l,
                Node::Split(s) => {
                    let v = x[s.feature as usize];
                    let missing = v.is_nan() || (zero_missing[s.feature as usize] && v == 0.0);
                    let yes = if missing {
                        s.missing == Branch::Yes
                    } else {
                        match &s.test {
                            Test::Lt(t) => v < *t,
                            Test::Le(t) => v <= *t,
                            Test::Ge(t) => v >= *t,
                            Test::Gt(t) => v > *t,
                            Test::InSet { words, rule } => {
                                let neg = match rule {
                                    CategoryRule::Truncate => v < 0.0,
                                    CategoryRule::TruncateNegativeFractionIsZero => v <= -1.0,
                                };
                                let c = v.trunc();
                                !neg && c < (words.len() * 32) as f64 && {
                                    let c = c as usize;
                                    words[c / 32] >> (c % 32) & 1 == 1
                                }
                            }
                        }
                    };
                    i = if yes { s.yes } else { s.no } as usize;
                }
            }
        };
        let pairs: Vec<(u32, f64)> = match leaf {
            Leaf::Scalar(v) => vec![(tree.group, *v)],
            Leaf::Vector(p) => p.clone(),
        };
        for (o, v) in pairs {
            raw[o as usize] += v;
            raw32[o as usize] += v as f32;
        }
    }
    if f32m {
        raw = raw32.iter().map(|&v| v as f64).collect();
    }
    if let Aggregation::Mean { divisor } = e.aggregation {
        if f32m {
            raw.iter_mut()
                .for_each(|r| *r = (*r as f32 / divisor as f32) as f64);
        } else {
            raw.iter_mut().for_each(|r| *r /= divisor);
        }
    }
    if e.base_placement == BasePlacement::AfterSum && !e.base.is_empty() {
        for (r, &b) in raw.iter_mut().zip(&e.base) {
            *r = if f32m {
                (*r as f32 + b as f32) as f64
            } else {
                *r + b
            };
        }
    }
    transform(e.transform, &mut raw);
    raw
}

fn arb_test() -> impl Strategy<Value = Test> {
    let t = prop_oneof![
        Just(0.0),
        Just(-0.0),
        -3.0..3.0f64,
        (-3i32..3).prop_map(f64::from)
    ];
    prop_oneof![
        t.clone().prop_map(Test::Lt),
        t.clone().prop_map(Test::Le),
        t.clone().prop_map(Test::Ge),
        t.prop_map(Test::Gt),
        (proptest::collection::vec(any::<u32>(), 0..3), any::<bool>()).prop_map(|(words, r)| {
            Test::InSet {
                words,
                rule: if r {
                    CategoryRule::Truncate
                } else {
                    CategoryRule::TruncateNegativeFractionIsZero
                },
            }
        }),
    ]
}

/// A random tree of up to `splits` splits, grown breadth-first so it is always valid.
pub(super) fn arb_tree(outputs: u32) -> impl Strategy<Value = Tree> {
    (
        proptest::collection::vec((0u32..3, arb_test(), any::<bool>()), 0..12),
        proptest::collection::vec(-2.0..2.0f64, 13),
        0..outputs,
    )
        .prop_map(move |(splits, leaves, group)| {
            let mut nodes = vec![Node::Leaf(Leaf::Scalar(leaves[0]))];
            let mut frontier = vec![0usize];
            for (k, (feature, test, missing_yes)) in splits.into_iter().enumerate() {
                let at = frontier.remove(k % frontier.len());
                let (y, n) = (nodes.len(), nodes.len() + 1);
                nodes.push(Node::Leaf(Leaf::Scalar(leaves[(2 * k + 1) % 13])));
                nodes.push(Node::Leaf(Leaf::Scalar(leaves[(2 * k + 2) % 13])));
                nodes[at] = split(
                    feature,
                    test,
                    y as u32,
                    n as u32,
                    if missing_yes { Branch::Yes } else { Branch::No },
                );
                frontier.extend([y, n]);
            }
            Tree { nodes, group }
        })
}

fn to_f32(e: &mut Ensemble) {
    let r = |v: &mut f64| *v = *v as f32 as f64;
    e.base.iter_mut().for_each(r);
    for n in e.trees.iter_mut().flat_map(|t| &mut t.nodes) {
        match n {
            Node::Leaf(Leaf::Scalar(v)) => r(v),
            Node::Leaf(Leaf::Vector(p)) => p.iter_mut().for_each(|(_, v)| r(v)),
            Node::Split(s) => match &mut s.test {
                Test::Lt(v) | Test::Le(v) | Test::Ge(v) | Test::Gt(v) => r(v),
                Test::InSet { .. } => {}
            },
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn compiled_equals_direct_interpretation(
        trees in proptest::collection::vec(arb_tree(3), 1..6),
        f32m in any::<bool>(),
        snap in any::<bool>(),
        mean in any::<bool>(),
        after in any::<bool>(),
        rows in proptest::collection::vec(proptest::collection::vec(
            prop_oneof![Just(f64::NAN), Just(0.0), Just(1e-36), -4.0..4.0f64,
                        (-4i32..40).prop_map(f64::from)], 3), 1..8),
    ) {
        let mut e = Ensemble {
            num_features: 3,
            outputs: 3,
            trees,
            base: vec![0.25, -0.5, 1.0],
            base_placement: if after { BasePlacement::AfterSum } else { BasePlacement::Initial },
            aggregation: if mean { Aggregation::Mean { divisor: 3.0 } } else { Aggregation::Sum },
            precision: if f32m { Precision::F32 } else { Precision::F64 },
            zero_snap: snap,
            transform: Transform::Identity,
            output_cast_f32: false,
            output: OutputKind::ArgmaxRaw,
        };
        if f32m { to_f32(&mut e); }
        e.validate(&EnsembleLimits::default()).unwrap();
        let flat = FlatEnsemble::compile(&e).unwrap();
        let mut scratch = Scratch::default();
        let mut got = vec![0.0; 3];
        for row in &rows {
            flat.predict(row, &mut scratch, &mut got);
            let want = naive(&e, row);
            prop_assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "row {:?}", row
            );
        }
    }
}

/// A one-leaf ensemble over one f64 output with ONNX's float output cast.
fn ort_leaf(values: &[(u32, f64)], outputs: u32, output: OutputKind) -> Ensemble {
    Ensemble {
        num_features: 1,
        outputs,
        trees: vec![Tree {
            nodes: vec![Node::Leaf(Leaf::Vector(values.to_vec()))],
            group: 0,
        }],
        base: vec![],
        base_placement: BasePlacement::AfterSum,
        aggregation: Aggregation::Sum,
        precision: Precision::F64,
        zero_snap: false,
        transform: Transform::Identity,
        output_cast_f32: true,
        output,
    }
}

fn answer(e: &Ensemble) -> (usize, Vec<f64>) {
    e.validate(&EnsembleLimits::default()).unwrap();
    let flat = FlatEnsemble::compile(e).unwrap();
    let mut s = vec![0.0; e.num_scores()];
    let class = flat.predict(&[0.0], &mut Scratch::default(), &mut s);
    (class, s)
}

#[test]
fn ort_binary_one_minus_decides_before_the_float_cast() {
    // 0.5 + 1e-12 rounds to 0.5f, yet ONNX Runtime compares the double score.
    let e = ort_leaf(&[(0, 0.5 + 1e-12)], 1, OutputKind::OrtBinaryOneMinus);
    assert_eq!(answer(&e), (1, vec![0.5, 0.5]));
    // 1 - s in f64, then cast: not 1.0f - 0.3f.
    let e = ort_leaf(&[(0, 0.3)], 1, OutputKind::OrtBinaryOneMinus);
    assert_eq!(answer(&e), (0, vec![0.7f32 as f64, 0.3f32 as f64]));
}

#[test]
fn ort_raw_decisions_read_scores_before_the_float_cast() {
    let e = ort_leaf(&[(0, 1.0), (1, 1.0 + 1e-12)], 2, OutputKind::ArgmaxRaw);
    assert_eq!(answer(&e), (1, vec![1.0, 1.0]));
    let e = ort_leaf(&[(0, 1e-300)], 1, OutputKind::BinaryLogisticPair);
    assert_eq!(answer(&e), (1, vec![-0.0, 0.0]));
}

#[test]
fn ort_softmax_zero_treats_nan_as_a_zero_score() {
    let mut v = [f64::NAN, 1.0];
    transform(Transform::OrtSoftmaxZero, &mut v);
    assert!(v[0].is_nan());
    assert_eq!(v[1], 1.0);
}
