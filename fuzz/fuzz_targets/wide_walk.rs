//! The wide evaluator's walks — the scalar one, the AVX-512 ones where the CPU has them,
//! nodes fetched by gathers (with f32 nodes, pairs of groups too) and by loads, and one
//! row's AVX2 walk of keyed f32 nodes where the CPU has AVX2 (the crate's `unsafe` walks,
//! `wide_simd.rs`, `wide_pair.rs` and `wide_avx2.rs`) — against the flat
//! evaluator: any ensemble the bytes describe that validates is evaluated on rows made from
//! the bytes, one at a time and as a batch, and every walk must give the flat evaluator's
//! answers bit for bit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use treeserve::model::ensemble::{
    Aggregation, BasePlacement, Branch, CategoryRule, Ensemble, EnsembleLimits, Leaf, Node,
    OutputKind, Precision, Split, Test, Transform, Tree,
};
use treeserve::model::flat::{FlatEnsemble, Scratch};
use treeserve::model::wide::{WideEnsemble, WideScratch};

/// The input, a byte at a time (zeros once it runs out).
struct Bytes<'a>(std::slice::Iter<'a, u8>);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        self.0.next().copied().unwrap_or(0)
    }
    fn below(&mut self, n: usize) -> usize {
        self.u8() as usize % n
    }
    /// A value from a small pool around the thresholds, or any f32.
    fn value(&mut self) -> f64 {
        match self.u8() {
            b @ 0..=199 => f64::from(b % 50) * 0.25 - 6.0,
            200 => f64::NAN,
            201 => -0.0,
            202 => 1e-36,
            b @ 203..=227 => (f64::from(b - 203) * 0.25 - 3.0).next_up(),
            b @ 228..=252 => (f64::from(b - 228) * 0.25 - 3.0).next_down(),
            _ => f64::from(f32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])),
        }
    }
}

/// A tree of up to 40 splits; `zeros`: features `3, 7, 11, …` treat zero as missing
/// (in every node, as LightGBM's models do).
fn tree(b: &mut Bytes, features: u32, outputs: u32, zeros: bool) -> Tree {
    let leaf = |b: &mut Bytes| {
        let v = b.value();
        Node::Leaf(Leaf::Scalar(if v.is_finite() { v } else { 1.0 }))
    };
    let mut nodes = vec![leaf(b)];
    let mut frontier = vec![0usize];
    for _ in 0..b.below(40) {
        let at = frontier.swap_remove(b.below(frontier.len()));
        let (yes, no) = (nodes.len() as u32, nodes.len() as u32 + 1);
        nodes.push(leaf(b));
        nodes.push(leaf(b));
        let t = b.value();
        let t = if t.is_nan() { 0.5 } else { t };
        let test = match b.below(10) {
            0..=2 => Test::Lt(t),
            3..=4 => Test::Le(t),
            5..=6 => Test::Ge(t),
            7 => Test::Gt(t),
            k => Test::InSet {
                words: (0..b.below(3))
                    .map(|_| u32::from_le_bytes([b.u8(), b.u8(), b.u8(), b.u8()]))
                    .collect(),
                rule: if k == 8 {
                    CategoryRule::Truncate
                } else {
                    CategoryRule::TruncateNegativeFractionIsZero
                },
            },
        };
        let feature = b.below(features as usize) as u32;
        nodes[at] = Node::Split(Split {
            feature,
            test,
            yes,
            no,
            missing: if b.u8() & 1 == 0 { Branch::Yes } else { Branch::No },
            zero_is_missing: zeros && feature % 4 == 3,
        });
        frontier.extend([yes as usize, no as usize]);
    }
    let group = b.below(outputs as usize) as u32;
    Tree { nodes, group }
}

fuzz_target!(|input: &[u8]| {
    let mut b = Bytes(input.iter());
    let head = b.u8();
    let f32m = head & 1 == 0;
    let outputs = if head & 2 == 0 { 1 } else { 3 };
    let features = 1 + b.below(40) as u32;
    let trees = (0..1 + b.below(40))
        .map(|_| tree(&mut b, features, outputs, !f32m && head & 8 != 0))
        .collect();
    let e = Ensemble {
        num_features: features,
        outputs,
        trees,
        base: vec![0.25; outputs as usize],
        base_placement: BasePlacement::Initial,
        aggregation: Aggregation::Sum,
        precision: if f32m { Precision::F32 } else { Precision::F64 },
        zero_snap: head & 4 != 0,
        transform: Transform::Identity,
        output_cast_f32: false,
        output: if outputs == 1 {
            OutputKind::Value
        } else {
            OutputKind::ArgmaxProbabilities
        },
    };
    if e.validate(&EnsembleLimits::default()).is_err() {
        return;
    }
    let flat = FlatEnsemble::compile(&e).expect("a validated model compiles");
    let Ok(wide) = WideEnsemble::compile(&e) else {
        return;
    };
    let (nf, ns) = (features as usize, flat.num_scores());
    let n = 1 + b.below(70);
    let rows: Vec<f64> = (0..n * nf).map(|_| b.value()).collect();
    let mut fs = Scratch::default();
    let mut want = vec![0.0; n * ns];
    for (row, s) in rows.chunks_exact(nf).zip(want.chunks_exact_mut(ns)) {
        flat.predict(row, &mut fs, s);
    }
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let mut ws = WideScratch::default();
    for (on, gather, avx2) in [
        (false, false, false),
        (true, true, false),
        (true, false, false),
        (true, false, true),
    ] {
        let w = wide.clone().with_vector_walk(on).with_node_gathers(gather);
        let w = if avx2 { w.with_avx2_walk() } else { w };
        let mut got = vec![0.0; n * ns];
        let mut classes = vec![0; n];
        w.predict_batch(&rows, &mut ws, &mut got, &mut classes);
        assert_eq!(bits(&got), bits(&want), "a batch, vector walk {on}, gathers {gather}");
        let mut one = vec![0.0; ns];
        for (row, s) in rows.chunks_exact(nf).zip(want.chunks_exact(ns)) {
            w.predict(row, &mut ws, &mut one);
            assert_eq!(bits(&one), bits(s), "one row, vector walk {on}, gathers {gather}");
        }
    }
});
