//! Large imported ensembles: today's evaluator (`flat`, 24-byte nodes, one tree at a time)
//! against the wide one (`wide`, compact nodes, 8 trees at once, rows in blocks; its
//! AVX-512 vector walk, and `wide-scalar` without), on
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
#[path = "synthetic.rs"]
mod synthetic;
use synthetic::{Rng, depthwise, leafwise, model};
use treeserve::model::ensemble::EnsembleLimits;
use treeserve::model::flat::{FlatEnsemble, Scratch};
use treeserve::model::wide::{WideEnsemble, WideScratch};

const ROWS: usize = 10_000;

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
        // The wide evaluator with its vector walk (where the CPU has AVX2) and without.
        let scalar = wide.clone().with_vector_walk(false);
        let vector = wide.with_vector_walk(true);
        let walks = [("wide-scalar", &scalar), ("wide", &vector)];
        for (id, w) in walks {
            g.bench_function(BenchmarkId::new(id, "batch1"), |b| {
                b.iter(|| {
                    let mut k = 0;
                    for row in rows.chunks_exact(nf) {
                        k += w.predict(black_box(row), &mut ws, &mut out);
                    }
                    k
                })
            });
        }
        for (id, w) in walks {
            g.bench_function(BenchmarkId::new(id, "batch10000"), |b| {
                b.iter(|| w.predict_batch(black_box(&rows), &mut ws, &mut got, &mut classes))
            });
        }
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
