//! Large imported ensembles: today's evaluator (`flat`, 24-byte nodes, one tree at a time)
//! against the wide one (`wide`, compact nodes, 8 trees at once, rows in blocks), on
//! synthetic models shaped like issue 21's:
//!
//! - `m1`: 100 trees × 31 leaves × 5 features, f64 (LightGBM regression, leaf-wise);
//! - `m2`: 500 trees × depth 8 × 30 features, f32 (XGBoost binary:logistic, ~145 leaves).
//!
//! Every iteration predicts 10,000 different rows (no row repeated, so the branch
//! predictor cannot learn the paths): `batch1` one call per row, `batch10000` one call
//! for all. Criterion's throughput is rows; ns per tree·row = time per row / trees.
//!
//! `cargo bench --bench ensembles`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::{Duration, Instant};
use treeserve::model::ensemble::{
    Aggregation, BasePlacement, Branch, Ensemble, EnsembleLimits, Leaf, Node, OutputKind,
    Precision, Split, Test, Transform, Tree,
};
use treeserve::model::flat::{FlatEnsemble, Scratch};
use treeserve::model::wide::{WideEnsemble, WideScratch};

const ROWS: usize = 10_000;

struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize
    }
}

/// A split at a random feature and a threshold in (0, 1), children `y`/`n`.
fn split(r: &mut Rng, features: usize, f32m: bool, y: usize, n: usize) -> Node {
    let t = r.unit();
    Node::Split(Split {
        feature: r.below(features) as u32,
        test: Test::Lt(if f32m { t as f32 as f64 } else { t }),
        yes: y as u32,
        no: n as u32,
        missing: if r.below(2) == 0 {
            Branch::Yes
        } else {
            Branch::No
        },
        zero_is_missing: false,
    })
}

fn leaf(r: &mut Rng, f32m: bool) -> Node {
    let v = r.unit() * 0.2 - 0.1;
    Node::Leaf(Leaf::Scalar(if f32m { v as f32 as f64 } else { v }))
}

/// Leaf-wise growth (LightGBM): split a random leaf until the tree has `leaves`.
fn leafwise(r: &mut Rng, leaves: usize, features: usize) -> Tree {
    let mut nodes = vec![leaf(r, false)];
    let mut frontier = vec![0];
    while frontier.len() < leaves {
        let at = frontier.swap_remove(r.below(frontier.len()));
        let (y, n) = (nodes.len(), nodes.len() + 1);
        nodes.push(leaf(r, false));
        nodes.push(leaf(r, false));
        nodes[at] = split(r, features, false, y, n);
        frontier.extend([y, n]);
    }
    Tree { nodes, group: 0 }
}

/// Depth-wise growth (XGBoost): every node above `depth` splits with probability 0.92.
fn depthwise(r: &mut Rng, depth: usize, features: usize) -> Tree {
    let mut nodes = vec![leaf(r, true)];
    let mut level = vec![0];
    for _ in 0..depth {
        let mut next = Vec::new();
        for &at in &level {
            if r.unit() < 0.92 {
                let (y, n) = (nodes.len(), nodes.len() + 1);
                nodes.push(leaf(r, true));
                nodes.push(leaf(r, true));
                nodes[at] = split(r, features, true, y, n);
                next.extend([y, n]);
            }
        }
        level = next;
    }
    Tree { nodes, group: 0 }
}

fn model(trees: Vec<Tree>, features: usize, f32m: bool) -> Ensemble {
    Ensemble {
        num_features: features as u32,
        outputs: 1,
        trees,
        base: vec![0.0],
        base_placement: BasePlacement::Initial,
        aggregation: Aggregation::Sum,
        precision: if f32m { Precision::F32 } else { Precision::F64 },
        zero_snap: !f32m,
        transform: if f32m {
            Transform::XgbSigmoid
        } else {
            Transform::Identity
        },
        output_cast_f32: false,
        output: if f32m {
            OutputKind::BinaryOneMinus
        } else {
            OutputKind::Value
        },
    }
}

fn ensembles(c: &mut Criterion) {
    let mut r = Rng(21);
    let m1 = model(
        (0..100).map(|_| leafwise(&mut r, 31, 5)).collect(),
        5,
        false,
    );
    let m2 = model(
        (0..500).map(|_| depthwise(&mut r, 8, 30)).collect(),
        30,
        true,
    );
    for (name, e) in [("m1", m1), ("m2", m2)] {
        e.validate(&EnsembleLimits::default()).unwrap();
        let t0 = Instant::now();
        let flat = FlatEnsemble::compile(&e).unwrap();
        let t1 = Instant::now();
        let wide = WideEnsemble::compile(&e).unwrap();
        let compile = (t1 - t0, t1.elapsed());
        let (nf, ns, trees) = (e.num_features as usize, e.num_scores(), e.trees.len());
        let rows: Vec<f64> = (0..ROWS * nf).map(|_| r.unit()).collect();
        // Same answers, bit for bit, before anything is timed.
        let (mut fs, mut ws) = (Scratch::default(), WideScratch::default());
        let mut want = vec![0.0; ROWS * ns];
        for (row, s) in rows.chunks_exact(nf).zip(want.chunks_exact_mut(ns)) {
            flat.predict(row, &mut fs, s);
        }
        let mut got = vec![0.0; ROWS * ns];
        let mut classes = vec![0; ROWS];
        wide.predict_batch(&rows, &mut ws, &mut got, &mut classes);
        assert!(
            want.iter()
                .zip(&got)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
        eprintln!(
            "{name}: {trees} trees, {} nodes; flat 24 B/node, compiled in {:?}; \
             wide {} B/node, compiled (flat, then wide) in {:?}",
            flat.num_nodes(),
            compile.0,
            wide.node_bytes(),
            compile.1
        );
        let mut g = c.benchmark_group(format!("ensembles/{name}"));
        g.throughput(Throughput::Elements(ROWS as u64));
        let mut out = vec![0.0; ns];
        g.bench_function(BenchmarkId::new("flat", "batch1"), |b| {
            b.iter(|| {
                let mut k = 0;
                for row in rows.chunks_exact(nf) {
                    k += flat.predict(black_box(row), &mut fs, &mut out);
                }
                k
            })
        });
        g.bench_function(BenchmarkId::new("wide", "batch1"), |b| {
            b.iter(|| {
                let mut k = 0;
                for row in rows.chunks_exact(nf) {
                    k += wide.predict(black_box(row), &mut ws, &mut out);
                }
                k
            })
        });
        g.bench_function(BenchmarkId::new("wide", "batch10000"), |b| {
            b.iter(|| wide.predict_batch(black_box(&rows), &mut ws, &mut got, &mut classes))
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = ensembles
}
criterion_main!(benches);
