//! Loading a 1,000-tree model (issue 21's bar: loads and validates in ≤ 200 ms): the time
//! of `Model::from_bytes` on synthetic imports shaped like the frameworks' — LightGBM
//! (1,000 trees × 31 leaves × 15 features, f64) and XGBoost (1,000 trees × depth 8 × 30
//! features, f32) — each with 1,000 golden rows as a real import keeps; in format 3 (the
//! wide layout, what `import` writes) and in format 2 (the trees, what older imports
//! wrote). Before criterion runs, one line per model splits a load into its phases (median
//! of 11) and gives the compact size (wide nodes × node bytes).
//!
//! `cargo bench --bench load_model`

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use treeserve::import::build::{ImportOptions, Table, build};
use treeserve::import::{Imported, ImportedTask};
#[path = "synthetic.rs"]
mod synthetic;
use synthetic::{Rng, depthwise, leafwise, model};
use treeserve::model::ensemble::{Ensemble, EnsembleLimits, Tree};
use treeserve::model::flat::FlatEnsemble;
use treeserve::model::tree::TreeLimits;
use treeserve::model::wide::WideEnsemble;
use treeserve::model::{
    FORMAT_VERSION_ENSEMBLE, Model, encode_artifact_as, read_parts, sha256_hex,
};

/// An imported artifact of `trees` with 1,000 reference (golden) rows: format 3, format 2,
/// the trees.
fn artifact(
    trees: Vec<Tree>,
    features: usize,
    f32m: bool,
    r: &mut Rng,
) -> (Vec<u8>, Vec<u8>, Ensemble) {
    let ensemble = model(trees, features, f32m);
    let names: Vec<String> = (0..features).map(|j| format!("f{j}")).collect();
    let mut header = names.clone();
    header.push("y".into());
    let rows = (0..1000)
        .map(|_| {
            let mut row: Vec<String> = (0..features).map(|_| r.unit().to_string()).collect();
            row.push(if f32m { "0" } else { "0.5" }.into());
            row
        })
        .collect();
    let reference = Table {
        name: "reference.csv".into(),
        sha256: String::new(),
        header,
        rows,
    };
    let imported = Imported {
        ensemble: ensemble.clone(),
        task: if f32m {
            ImportedTask::Classification
        } else {
            ImportedTask::Regression
        },
        features: Some(names),
        classes: None,
        missing_aware: false,
        format: if f32m { "xgboost" } else { "lightgbm" },
        source: "synthetic".into(),
        objective: "synthetic".into(),
        warnings: Vec::new(),
    };
    let opts = ImportOptions {
        name: "load".into(),
        target: Some("y".into()),
        reference: Some(reference),
        ..Default::default()
    };
    let v3 = build(imported, opts).expect("builds").artifact;
    let (manifest, _) = read_parts(&v3).unwrap();
    let trees = rmp_serde::to_vec(&ensemble).unwrap();
    let v2 = encode_artifact_as(&manifest, &trees, FORMAT_VERSION_ENSEMBLE);
    (v3, v2, ensemble)
}

/// Median of 11 runs of `f`.
fn median(mut f: impl FnMut()) -> Duration {
    let mut t: Vec<Duration> = (0..11)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort();
    t[5]
}

/// One line: the whole load (format 3; format 2 and its phases), and the compact size.
fn phases(name: &str, v3: &[u8], bytes: &[u8], e: &Ensemble) {
    let limits = TreeLimits::default();
    let format3 = median(|| drop(Model::from_bytes(v3, 1, &limits).expect("loads")));
    let (_, layout) = read_parts(v3).unwrap();
    let read = median(|| {
        drop(WideEnsemble::from_payload(layout, &EnsembleLimits::default()).expect("reads"))
    });
    let total = median(|| drop(Model::from_bytes(bytes, 1, &limits).expect("loads")));
    let payload = rmp_serde::to_vec(e).unwrap();
    let sha = median(|| drop(sha256_hex(bytes)));
    let decode = median(|| drop(Ensemble::from_msgpack(&payload).unwrap()));
    let validate = median(|| e.validate(&EnsembleLimits::default()).unwrap());
    let flat = median(|| drop(FlatEnsemble::compile(e).unwrap()));
    let compiled = FlatEnsemble::compile(e).unwrap();
    let wide = median(|| drop(WideEnsemble::from_flat(compiled.clone()).unwrap()));
    let w = WideEnsemble::compile(e).unwrap();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{name}: format 3 from_bytes {:.1} ms (the layout read and checked {:.1}), artifact \
         {:.1} MB; format 2 from_bytes {:.1} ms (sha256 ×2 {:.1}, decode {:.1}, validate \
         {:.1}, flat {:.1}, wide {:.1} incl. clone, rest = golden rows, manifest); artifact \
         {:.1} MB, compact {} nodes × {} B = {:.2} MB",
        ms(format3),
        ms(read),
        v3.len() as f64 / 1e6,
        ms(total),
        2.0 * ms(sha),
        ms(decode),
        ms(validate),
        ms(flat),
        ms(wide),
        bytes.len() as f64 / 1e6,
        w.num_nodes(),
        w.node_bytes(),
        (w.num_nodes() * w.node_bytes()) as f64 / 1e6,
    );
}

fn load(c: &mut Criterion) {
    let mut r = Rng(21);
    let lgb: Vec<Tree> = (0..1000).map(|_| leafwise(&mut r, 31, 15)).collect();
    let (lgb, lgb2, lgb_e) = artifact(lgb, 15, false, &mut r);
    let xgb: Vec<Tree> = (0..1000).map(|_| depthwise(&mut r, 8, 30)).collect();
    let (xgb, xgb2, xgb_e) = artifact(xgb, 30, true, &mut r);
    phases("lgb 1000 trees x 31 leaves", &lgb, &lgb2, &lgb_e);
    phases("xgb 1000 trees x depth 8", &xgb, &xgb2, &xgb_e);
    let limits = TreeLimits::default();
    let mut g = c.benchmark_group("load");
    g.sample_size(20);
    g.bench_function("from_bytes/lgb1000x31leaves", |b| {
        b.iter(|| Model::from_bytes(&lgb, 1, &limits).expect("loads"))
    });
    g.bench_function("from_bytes/xgb1000xdepth8", |b| {
        b.iter(|| Model::from_bytes(&xgb, 1, &limits).expect("loads"))
    });
    g.bench_function("from_bytes_format2/xgb1000xdepth8", |b| {
        b.iter(|| Model::from_bytes(&xgb2, 1, &limits).expect("loads"))
    });
    g.finish();
}

criterion_group!(benches, load);
criterion_main!(benches);
