//! An artifact payload of format 3 (the wide layout, written as it is:
//! `treeserve::model::wide::WideEnsemble::from_payload`): whatever the bytes hold, the
//! reader refuses them or gives a layout that every walk (the scalar one, the vector ones
//! gathering and loading) evaluates without a panic or a hang, one row and a batch, and
//! that writes back to bytes which read to the same layout. No input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use treeserve::model::ensemble::EnsembleLimits;
use treeserve::model::wide::{WideEnsemble, WideScratch};

fuzz_target!(|data: &[u8]| {
    let limits = EnsembleLimits::default();
    let Ok(wide) = WideEnsemble::from_payload(data, &limits) else {
        return;
    };
    let again = wide.to_payload();
    let back = WideEnsemble::from_payload(&again, &limits).expect("a layout read is read again");
    assert_eq!(back.to_payload(), again);
    // Rows from the input's bytes: values around small thresholds, NaN, zeros, categories.
    let nf = wide.num_features().min(1 << 12);
    if nf != wide.num_features() {
        return;
    }
    let rows = 70;
    let x: Vec<f64> = (0..rows * nf)
        .map(|i| match data.get(i % data.len()).copied().unwrap_or(0) {
            200 => f64::NAN,
            201 => -0.0,
            b => f64::from(b % 64) * 0.25 - 4.0,
        })
        .collect();
    let ns = wide.num_scores();
    let mut s = WideScratch::default();
    for (vector, gather) in [(false, false), (true, true), (true, false)] {
        let w = wide.clone().with_vector_walk(vector).with_node_gathers(gather);
        let (mut got, mut classes) = (vec![0.0; rows * ns], vec![0; rows]);
        w.predict_batch(&x, &mut s, &mut got, &mut classes);
        let mut one = vec![0.0; ns];
        w.predict(&x[..nf], &mut s, &mut one);
    }
});
