//! The wide evaluator against [`FlatEnsemble`], bit for bit, on random ensembles (every
//! node kind, f32 and f64, deep trees, partial groups) and rows (NaN, zeros, values at
//! and around every threshold, one row or several blocks); and proof that the check
//! fails on deliberately wrong variants. (Over 500 lines: the generators, the property and
//! the proofs that it catches wrong evaluators belong together.)

use super::*;
use crate::model::ensemble::tests::split;
use crate::model::ensemble::{
    Aggregation, BasePlacement, Branch, CategoryRule, EnsembleLimits, Leaf, Node, Split, Test,
    Transform, Tree,
};
use crate::model::flat::Scratch;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// splitmix64.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Debug, Clone)]
pub(super) struct Case {
    pub(super) seed: u64,
    pub(super) trees: usize,
    pub(super) f32m: bool,
    pub(super) outputs: u32,
    pub(super) snap: bool,
    pub(super) mean: bool,
    pub(super) after: bool,
    pub(super) rows: usize,
    pub(super) features: u32,
    /// Category splits the wide evaluator groups: one rule, categories below 63, only on
    /// features 0, 3, 6, … (which no number split reads).
    pub(super) grouped_cats: bool,
}

pub(super) fn arb_case() -> impl Strategy<Value = Case> {
    (
        any::<u64>(),
        prop_oneof![1usize..40, 65usize..150], // >64: one row's groups in several rounds
        any::<bool>(),
        prop_oneof![Just(1u32), Just(3u32)],
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![1usize..4, 60usize..140],
        // Every row stride the evaluator knows (8 to 128 values, and wider).
        prop_oneof![
            Just(5u32),
            1u32..8,
            8u32..16,
            16u32..40,
            60u32..70,
            120u32..130,
            250u32..300
        ],
        any::<bool>(),
    )
        .prop_map(
            |(seed, trees, f32m, outputs, snap, mean, after, rows, features, grouped_cats)| Case {
                seed,
                trees,
                f32m,
                outputs,
                snap,
                mean,
                after,
                rows,
                features,
                grouped_cats,
            },
        )
}

/// An ensemble of hand-made `trees` (one output, `features` features), in f32 or f64.
pub(super) fn ensemble_of(trees: Vec<Tree>, f32m: bool, features: u32) -> Ensemble {
    let c = Case {
        seed: 1,
        trees: 0,
        f32m,
        outputs: 1,
        snap: false,
        mean: false,
        after: false,
        rows: 1,
        features,
        grouped_cats: false,
    };
    Ensemble {
        trees,
        ..ensemble(&c)
    }
}

/// [`ensemble_of`] summing the raw leaves (no transform, no base), validated, and its
/// flat evaluator.
fn values_of(trees: Vec<Tree>, f32m: bool, features: u32) -> (Ensemble, FlatEnsemble) {
    let mut e = ensemble_of(trees, f32m, features);
    e.transform = Transform::Identity;
    e.output = OutputKind::Value;
    e.base.clear();
    e.validate(&EnsembleLimits::default()).unwrap();
    let flat = FlatEnsemble::compile(&e).unwrap();
    (e, flat)
}

/// `w` answers the rows `x` (of `nf` values) as `flat`, one row at a time and as one
/// batch (one output: [`values_of`]'s ensembles); `what` names the case.
fn values_agree(flat: &FlatEnsemble, w: &WideEnsemble, x: &[f64], nf: u32, what: &str) {
    let (mut fs, mut ws) = (Scratch::default(), WideScratch::default());
    let (mut want, mut got) = ([0.0], [0.0]);
    let n = x.len() / nf as usize;
    let (mut batch, mut classes) = (vec![0.0; n], vec![0; n]);
    w.predict_batch(x, &mut ws, &mut batch, &mut classes);
    for (row, b) in x.chunks_exact(nf as usize).zip(&batch) {
        flat.predict(row, &mut fs, &mut want);
        w.predict(row, &mut ws, &mut got);
        assert_eq!(got, want, "one row, {what}: {row:?}");
        assert_eq!(*b, want[0], "batch, {what}: {row:?}");
    }
}

pub(super) fn ensemble(c: &Case) -> Ensemble {
    let mut r = Rng(c.seed);
    let round = |v: f64| if c.f32m { v as f32 as f64 } else { v };
    // Features 3 and 4 treat zero as missing in every node (LightGBM's missing type Zero).
    let zero_missing = |f: u32| !c.f32m && f >= 3;
    let pool: Vec<f64> = (0..12)
        .map(|i| match i {
            0 => 0.0,
            1 => -0.0,
            2 | 3 => (r.below(7) as f64) - 3.0,
            _ => round((r.unit() - 0.5) * 6.0),
        })
        .collect();
    let mut trees = Vec::new();
    for _ in 0..c.trees {
        let chain = c.trees < 65 && r.below(10) == 0; // deep: alone, not in a round
        let splits = if chain { 34 + r.below(6) } else { r.below(40) };
        let leaf = |r: &mut Rng| {
            if c.outputs > 1 && r.below(8) == 0 {
                let o = r.below(c.outputs as usize) as u32;
                Node::Leaf(Leaf::Vector(vec![(o, round(r.unit() - 0.5)), (0, 0.25)]))
            } else {
                // ±0.0 too: a +0.0 leaf's bits are the keyed walk's phantom key
                // (`Wide::set_keys`).
                Node::Leaf(Leaf::Scalar(match r.below(16) {
                    0 => 0.0,
                    1 => -0.0,
                    _ => round(r.unit() * 4.0 - 2.0),
                }))
            }
        };
        let mut nodes = vec![leaf(&mut r)];
        let mut frontier = vec![0usize];
        for _ in 0..splits {
            let at = if chain {
                frontier.pop().unwrap()
            } else {
                frontier.swap_remove(r.below(frontier.len()))
            };
            let (y, n) = (nodes.len(), nodes.len() + 1);
            nodes.push(leaf(&mut r));
            nodes.push(leaf(&mut r));
            let mut feature = r.below(c.features as usize) as u32;
            let t = pool[r.below(pool.len())];
            // Half the cases without grouped categories have no category split at all:
            // their trees group (8 lanes of number splits) in f32 as in f64.
            let kind = if !c.grouped_cats && c.seed % 4 < 2 {
                r.below(9)
            } else {
                r.below(11)
            };
            if c.grouped_cats {
                // Category splits on multiples of 3, number splits on the others.
                let cat = kind > 8 || c.features == 1;
                if cat != feature.is_multiple_of(3) {
                    feature = if cat {
                        feature / 3 * 3
                    } else {
                        (feature + 1) % c.features
                    };
                }
                if cat != feature.is_multiple_of(3) {
                    feature = 0;
                }
            }
            let cat_words = |r: &mut Rng| -> Vec<u32> {
                let mut w: Vec<u32> = (0..r.below(3)).map(|_| r.next() as u32).collect();
                if c.grouped_cats && w.len() == 2 {
                    w[1] &= !(1 << 31);
                }
                w
            };
            let group_rule = if c.seed.is_multiple_of(2) {
                CategoryRule::Truncate
            } else {
                CategoryRule::TruncateNegativeFractionIsZero
            };
            let test = match if c.grouped_cats && c.features == 1 {
                9
            } else {
                kind
            } {
                0..=2 => Test::Lt(t),
                3..=4 => Test::Le(t),
                5..=6 => Test::Ge(t),
                7..=8 => Test::Gt(t),
                _ if c.grouped_cats => Test::InSet {
                    words: cat_words(&mut r),
                    rule: group_rule,
                },
                _ => Test::InSet {
                    words: cat_words(&mut r),
                    rule: if r.below(2) == 0 {
                        CategoryRule::Truncate
                    } else {
                        CategoryRule::TruncateNegativeFractionIsZero
                    },
                },
            };
            nodes[at] = Node::Split(Split {
                feature,
                test,
                yes: y as u32,
                no: n as u32,
                missing: if r.below(2) == 0 {
                    Branch::Yes
                } else {
                    Branch::No
                },
                zero_is_missing: zero_missing(feature),
            });
            frontier.extend([y, n]);
        }
        let group = r.below(c.outputs as usize) as u32;
        trees.push(Tree { nodes, group });
    }
    let k = c.outputs;
    Ensemble {
        num_features: c.features,
        outputs: k,
        trees,
        base: (0..k).map(|i| round(0.25 * i as f64 - 0.3)).collect(),
        base_placement: if c.after {
            BasePlacement::AfterSum
        } else {
            BasePlacement::Initial
        },
        aggregation: if c.mean {
            Aggregation::Mean { divisor: 3.0 }
        } else {
            Aggregation::Sum
        },
        precision: if c.f32m {
            Precision::F32
        } else {
            Precision::F64
        },
        zero_snap: c.snap,
        transform: match (k, c.f32m) {
            (1, true) => Transform::XgbSigmoid,
            (1, false) => Transform::Identity,
            (_, true) => Transform::XgbSoftmax,
            (_, false) => Transform::LgbSoftmax,
        },
        output_cast_f32: false,
        output: match k {
            1 if c.f32m => OutputKind::BinaryOneMinus,
            1 => OutputKind::Value,
            _ => OutputKind::ArgmaxProbabilities,
        },
    }
}

/// Rows whose values sit on, just around and between the f32 and f64 roundings of the
/// thresholds, plus NaN, zeros, tiny values and small integers (categories).
pub(super) fn rows(e: &Ensemble, n: usize, seed: u64) -> Vec<f64> {
    let mut r = Rng(seed ^ 0x5eed);
    let mut ts: Vec<f64> = e
        .trees
        .iter()
        .flat_map(|t| &t.nodes)
        .filter_map(|n| match n {
            Node::Split(Split {
                test: Test::Lt(v) | Test::Le(v) | Test::Ge(v) | Test::Gt(v),
                ..
            }) => Some(*v),
            _ => None,
        })
        .collect();
    ts.push(0.1);
    (0..n * e.num_features as usize)
        .map(|_| {
            let t = ts[r.below(ts.len())];
            match r.below(14) {
                0 => f64::NAN,
                1 => 0.0,
                2 => -0.0,
                3 => 1e-36,
                4 => t,
                5 => t.next_up(),
                6 => t.next_down(),
                7 => t as f32 as f64,
                8 => (t as f32).next_up() as f64,
                9 => (t as f32).next_down() as f64,
                10 => r.below(70) as f64 - 2.0,
                11 => -0.5,
                _ => (r.unit() - 0.5) * 8.0,
            }
        })
        .collect()
}

fn check(c: &Case, mutate: fn(&mut WideEnsemble)) -> Result<(), TestCaseError> {
    let e = ensemble(c);
    e.validate(&EnsembleLimits::default()).unwrap();
    let flat = FlatEnsemble::compile(&e).unwrap();
    let mut wide = WideEnsemble::compile(&e).unwrap();
    mutate(&mut wide);
    // The scalar walk, and the vector ones (where the CPU has them) gathering and loading,
    // and with AVX2 alone (f32 nodes); blocks of the default size, and of a few rows
    // (several blocks, and a pair's 8-row chunks cut short inside a block).
    for (on, gather, avx2, block) in [
        (false, false, false, 16),
        (true, true, false, wide.block_rows()),
        (true, true, false, 20),
        (true, false, false, 24),
        (true, false, true, wide.block_rows()),
        (true, false, true, 20),
    ] {
        let w = wide
            .clone()
            .with_vector_walk(on)
            .with_node_gathers(gather)
            .with_block_rows(block);
        let w = if avx2 { w.with_avx2_walk() } else { w };
        check_walk(c, &e, &flat, &w)?;
    }
    Ok(())
}

pub(super) fn check_walk(
    c: &Case,
    e: &Ensemble,
    flat: &FlatEnsemble,
    wide: &WideEnsemble,
) -> Result<(), TestCaseError> {
    let x = rows(e, c.rows, c.seed);
    let nf = c.features as usize;
    let ns = e.num_scores();
    let (mut fs, mut ws) = (Scratch::default(), WideScratch::default());
    let mut want = vec![0.0; c.rows * ns];
    let mut want_class = vec![0; c.rows];
    for ((row, s), k) in x
        .chunks_exact(nf)
        .zip(want.chunks_exact_mut(ns))
        .zip(want_class.iter_mut())
    {
        *k = flat.predict(row, &mut fs, s);
    }
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let mut got = vec![0.0; c.rows * ns];
    let mut got_class = vec![0; c.rows];
    wide.predict_batch(&x, &mut ws, &mut got, &mut got_class);
    prop_assert_eq!(bits(&got), bits(&want), "batch");
    prop_assert_eq!(&got_class, &want_class);
    let mut one = vec![0.0; ns];
    for (i, row) in x.chunks_exact(nf).enumerate() {
        let k = wide.predict(row, &mut ws, &mut one);
        prop_assert_eq!(
            bits(&one),
            bits(&want[i * ns..(i + 1) * ns]),
            "row {:?}",
            row
        );
        prop_assert_eq!(k, want_class[i]);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn wide_equals_flat_bit_for_bit(c in arb_case()) {
        check(&c, |_| {})?;
    }
}

/// Applies `f` to every number split: its meta word, the place of its flags, its
/// threshold (f64 or f32).
fn splits_mut(w: &mut WideEnsemble, f: impl Fn(&mut u32, u32, &mut f64, &mut f32)) {
    let (mut d64, mut d32) = (0.0, 0.0);
    match &mut w.nodes {
        Nodes::F32(w) => {
            let fbits = w.fbits;
            w.nodes.iter_mut().for_each(|n| {
                let (mut m, mut t) = (n.m, n.t);
                if (m >> fbits) & (W_LEAF | W_CAT) == 0 {
                    f(&mut m, fbits, &mut d64, &mut t);
                }
                *n = super::Node { t, m };
            })
        }
        Nodes::F64(w) => {
            let fbits = w.fbits;
            w.nodes.iter_mut().for_each(|n| {
                let (mut m, mut t) = (n.m, n.t);
                if (m >> fbits) & (W_LEAF | W_CAT) == 0 {
                    f(&mut m, fbits, &mut t, &mut d32);
                }
                *n = super::Node { t, m };
            })
        }
    }
}

fn fails(mutate: fn(&mut WideEnsemble)) -> bool {
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::with_cases(256)
    });
    runner.run(&arb_case(), |c| check(&c, mutate)).is_err()
}

#[test]
fn the_property_catches_wrong_evaluators() {
    // Missing values always go right.
    assert!(fails(|w| splits_mut(w, |m, fbits, _, _| {
        *m &= !(W_DEFAULT_LEFT << fbits)
    })));
    // ONNX Runtime's mistake: LightGBM's f64 thresholds rounded to f32.
    assert!(fails(|w| splits_mut(w, |_, _, t, _| *t = *t as f32 as f64)));
    // `x <= t` compiled as `x < t` in an f32 model (the threshold not rounded up).
    assert!(fails(|w| splits_mut(w, |_, _, _, t| *t = t.next_down())));
    // The trees of a group summed in another order.
    assert!(fails(|w| {
        let Nodes::F32(n) = &mut w.nodes else { return };
        for s in &mut n.segments {
            if let Segment::Group {
                roots, outs, count, ..
            } = s
            {
                roots[..*count].reverse();
                outs[..*count].reverse();
            }
        }
    }));
}

#[test]
fn nodes_are_compact_and_small_models_fit() {
    assert_eq!(size_of::<super::Node<f32>>(), 8);
    assert_eq!(size_of::<super::Node<f64>>(), 12);
    let c = Case {
        seed: 7,
        trees: 20,
        f32m: true,
        outputs: 1,
        snap: false,
        mean: false,
        after: false,
        rows: 1,
        features: 5,
        grouped_cats: false,
    };
    let w = WideEnsemble::compile(&ensemble(&c)).unwrap();
    assert_eq!(w.num_trees(), 20);
    assert_eq!(w.node_bytes(), 8);
    // Blocks of rows as many as fit 128 KiB: 1,024 rows of 8 f32 values; 64 rows (the
    // fewest) of 512 f64 values.
    assert_eq!(w.block_rows(), BLOCK);
    let wide_rows = Case {
        f32m: false,
        features: 300,
        ..c
    };
    let w = WideEnsemble::compile(&ensemble(&wide_rows)).unwrap();
    assert_eq!((w.node_bytes(), w.block_rows()), (12, MIN_BLOCK));
}

#[test]
fn category_splits_are_grouped_when_they_fit() {
    let mut c = Case {
        seed: 11,
        trees: 30,
        f32m: false,
        outputs: 1,
        snap: false,
        mean: false,
        after: false,
        rows: 1,
        features: 9,
        grouped_cats: true,
    };
    let grouped = |c: &Case| {
        let w = WideEnsemble::compile(&ensemble(c)).unwrap();
        let Nodes::F64(w) = &w.nodes else {
            panic!("an f64 model")
        };
        w.segments
            .iter()
            .filter(|s| matches!(s, Segment::Group { cat: true, .. }))
            .count()
    };
    assert!(grouped(&c) > 0, "category splits in groups");
    c.grouped_cats = false;
    assert_eq!(
        grouped(&c),
        0,
        "mixed rules and number splits on category features"
    );
}

/// Every lane of a group decides on its own: 24 one-split trees whose leaves are distinct
/// powers of two (a sum names each tree's branch), rows exactly at, just below and above
/// the thresholds, and missing values going either way; both walks, f32 and f64.
#[test]
fn every_lane_of_a_group_takes_its_own_branch() {
    for f32m in [false, true] {
        let nf = 5u32;
        let trees: Vec<Tree> = (0..24)
            .map(|i| Tree {
                nodes: vec![
                    Node::Split(Split {
                        feature: i % nf,
                        test: Test::Lt(i as f64 * 0.25),
                        yes: 1,
                        no: 2,
                        missing: if i % 3 == 0 { Branch::Yes } else { Branch::No },
                        zero_is_missing: false,
                    }),
                    Node::Leaf(Leaf::Scalar(f64::from(1u32 << i))),
                    Node::Leaf(Leaf::Scalar(0.0)),
                ],
                group: 0,
            })
            .collect();
        let (e, flat) = values_of(trees, f32m, nf);
        let wide = WideEnsemble::compile(&e).unwrap();
        let mut rng = Rng(3);
        let x: Vec<f64> = (0..64 * nf)
            .map(|_| match rng.below(5) {
                0 => f64::NAN,
                1 => rng.below(24) as f64 * 0.25,
                2 => (rng.below(24) as f64 * 0.25).next_down(),
                3 => (rng.below(24) as f64 * 0.25).next_up(),
                _ => rng.unit() * 6.0,
            })
            .collect();
        for (on, gather, avx2) in [
            (false, false, false),
            (true, true, false),
            (true, false, false),
            (true, false, true),
        ] {
            let w = wide.clone().with_vector_walk(on).with_node_gathers(gather);
            let w = if avx2 { w.with_avx2_walk() } else { w };
            let walk = format!("f32 {f32m}, vector walk {on}, gathers {gather}, avx2 {avx2}");
            values_agree(&flat, &w, &x, nf, &walk);
        }
    }
}

/// Whether the scalar walk of `w` compares keys ([`Wide::keyed`]); its nodes hold keys
/// exactly then.
fn keyed(w: &WideEnsemble) -> bool {
    let (keyed, keys) = match &w.nodes {
        Nodes::F32(w) => (w.keyed(), w.keys),
        Nodes::F64(w) => (w.keyed(), w.keys),
    };
    assert_eq!(keyed, keys, "the nodes hold keys where the walk is keyed");
    keyed
}

#[test]
fn keys_compare_as_the_values_they_are_made_of() {
    let mut rng = Rng(21);
    let mut values = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        5e-324,
        -5e-324,
        1e-40,
        -1e-40,
        f64::MIN_POSITIVE,
        f64::MAX,
        f64::MIN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        -f64::NAN,
    ];
    values.extend((0..300).map(|_| f64::from_bits(rng.next())));
    values.extend((0..300).map(|_| f64::from(f32::from_bits(rng.next() as u32))));
    values.extend((0..100).map(|_| rng.below(40) as f64 * 0.25 - 5.0));
    for &v in &values {
        for &t in values.iter().filter(|t| !t.is_nan()) {
            assert_eq!(v.row_key() < t.key(), v < t, "f64 {v:e} < {t:e}");
            let (v, t) = (v as f32, t as f32);
            assert_eq!(v.row_key() < t.key(), v < t, "f32 {v:e} < {t:e}");
        }
    }
}

/// The property above takes the keyed walk where the vector walk is off and the groups are
/// plain (few of its cases): here, plain groups of both precisions take it, and answer as
/// the flat evaluator.
#[test]
fn plain_groups_walk_as_keys_without_the_vector_walk() {
    let taken = std::cell::Cell::new([0; 2]);
    let mut runner = TestRunner::new(Config::with_cases(96));
    // One output, 65 trees or more (none deep), no category split: groups only.
    let plain = arb_case().prop_map(|c| Case {
        seed: c.seed & !3,
        trees: c.trees.max(65),
        outputs: 1,
        grouped_cats: false,
        ..c
    });
    runner
        .run(&plain, |c| {
            let e = ensemble(&c);
            let flat = FlatEnsemble::compile(&e).unwrap();
            let w = WideEnsemble::compile(&e).unwrap();
            let w = w.with_vector_walk(false).with_block_rows(16);
            if keyed(&w) {
                let mut t = taken.get();
                t[c.f32m as usize] += 1;
                taken.set(t);
                check_walk(&c, &e, &flat, &w)?;
                // Keyed nodes are written as built and read back keyed.
                let payload = w.to_payload();
                let mut built = w.clone();
                match &mut built.nodes {
                    Nodes::F32(w) => w.set_keys(false),
                    Nodes::F64(w) => w.set_keys(false),
                }
                prop_assert!(
                    payload == built.to_payload(),
                    "keyed nodes written as built"
                );
                let back = WideEnsemble::from_payload(&payload, &EnsembleLimits::default())
                    .unwrap()
                    .with_vector_walk(false)
                    .with_block_rows(16);
                prop_assert!(keyed(&back));
                check_walk(&c, &e, &flat, &back)?;
                // The vector walk where the CPU has it: the nodes as built again.
                let vector = back.with_vector_walk(true);
                keyed(&vector);
                check_walk(&c, &e, &flat, &vector)?;
            }
            Ok(())
        })
        .unwrap();
    let [f64s, f32s] = taken.get();
    assert!(
        f64s > 20 && f32s > 20,
        "keyed walks: {f32s} f32, {f64s} f64"
    );
}

/// Groups deeper than `EXIT_DEPTH` stop once every tree is at a leaf (`Wide::keyed_group`):
/// 16 combs 12 to 15 deep (each split's one side a leaf), splitting on numbers and on
/// category sets (feature 0), over rows whose paths end anywhere, missing values
/// included; the keyed walk answers as the flat evaluator, f32 and f64.
#[test]
fn deep_keyed_groups_stop_once_every_tree_is_at_a_leaf() {
    let nf = 4u32;
    for f32m in [false, true] {
        let mut r = Rng(11);
        // Split `k` at node `2k`, its leaf at `2k + 1`, the next split (or the last leaf)
        // at `2k + 2`; which of the two is `yes` drawn.
        let trees: Vec<Tree> = (0..16u32)
            .map(|i| {
                let depth = 12 + i % 4;
                let mut nodes = Vec::new();
                for k in 0..depth {
                    let feature = (k + i) % nf;
                    let test = if feature == 0 {
                        Test::InSet {
                            words: vec![r.next() as u32 & !(1 << 31) | 1, 0],
                            rule: CategoryRule::Truncate,
                        }
                    } else {
                        Test::Lt(((r.unit() - 0.5) * 4.0) as f32 as f64)
                    };
                    let (yes, no) = if r.below(2) == 0 {
                        (2 * k + 1, 2 * k + 2)
                    } else {
                        (2 * k + 2, 2 * k + 1)
                    };
                    let missing = if r.below(2) == 0 {
                        Branch::Yes
                    } else {
                        Branch::No
                    };
                    nodes.push(split(feature, test, yes, no, missing));
                    nodes.push(Node::Leaf(Leaf::Scalar(f64::from(i * 16 + k))));
                }
                nodes.push(Node::Leaf(Leaf::Scalar(-1.0)));
                Tree { nodes, group: 0 }
            })
            .collect();
        let (e, flat) = values_of(trees, f32m, nf);
        let w = WideEnsemble::compile(&e).unwrap().with_vector_walk(false);
        assert!(keyed(&w), "f32 {f32m}: the walk is keyed");
        let deep = |s: &[Segment]| {
            (s.iter()).all(|s| matches!(s, Segment::Group { depth, cat: true, .. } if *depth >= super::keys::EXIT_DEPTH))
        };
        match &w.nodes {
            Nodes::F32(n) => assert!(deep(&n.segments)),
            Nodes::F64(n) => assert!(deep(&n.segments)),
        }
        let x: Vec<f64> = (0..300 * nf)
            .map(|j| match (j % nf, r.below(8)) {
                (_, 0) => f64::NAN,
                (0, 1) => r.below(80) as f64 - 5.0,
                (0, _) => r.below(40) as f64,
                _ => (r.unit() - 0.5) * 4.5,
            })
            .collect();
        values_agree(&flat, &w, &x, nf, &format!("f32 {f32m}"));
    }
}
