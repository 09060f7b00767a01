//! ONNX import: no byte string may panic the reader or make it allocate beyond what the
//! input can describe, and a model it accepts compiles and predicts probe rows (NaN
//! included) without panicking, with a class in range and the same bits every time.
//! (Scores are not asserted finite: valid leaf weights near f32::MAX may sum to inf.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use treeserve::import::onnx::read;
use treeserve::model::flat::{FlatEnsemble, Scratch};

fuzz_target!(|input: &[u8]| {
    let Ok(imported) = read(input) else { return };
    let flat = FlatEnsemble::compile(&imported.ensemble).expect("a validated ensemble compiles");
    let f = flat.num_features();
    let k = flat.num_scores();
    let mut scores = vec![0.0; k];
    let mut again = vec![0.0; k];
    let mut scratch = Scratch::default();
    for probe in [0.0, -1e300, 1e300, 0.5, f64::MIN_POSITIVE, 3.0, f64::NAN] {
        let row = vec![probe; f];
        let class = flat.predict(&row, &mut scratch, &mut scores);
        assert!(class < k);
        assert_eq!(flat.predict(&row, &mut scratch, &mut again), class);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&scores), bits(&again));
    }
});
