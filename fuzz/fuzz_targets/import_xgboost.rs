//! XGBoost import: no byte string may panic the JSON or UBJSON reader or the translation,
//! or make them allocate beyond what the input can describe; an imported model compiles
//! and predicts probe rows to scores (probabilities never outside [0, 1]).
//!
//! The first byte picks the path: 0 — the bytes as a model file; 1 — the JSON reader
//! alone; 2 — the UBJSON reader alone.
#![no_main]

use libfuzzer_sys::fuzz_target;
use treeserve::import::{ImportedTask, xgboost};
use treeserve::model::flat::{FlatEnsemble, Scratch};

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    match mode % 3 {
        1 => {
            let _ = xgboost::json::parse(rest);
            return;
        }
        2 => {
            let _ = xgboost::ubjson::parse(rest);
            return;
        }
        _ => {}
    }
    let Ok(imported) = xgboost::read(rest) else {
        return;
    };
    let flat = FlatEnsemble::compile(&imported.ensemble).expect("a validated model compiles");
    let f = flat.num_features();
    let mut scores = vec![0.0; flat.num_scores()];
    let mut scratch = Scratch::default();
    for probe in [0.0, -1e300, 1e300, 0.5, f64::NAN, 3.0, -1.0, 7.9] {
        let row = vec![probe; f];
        let class = flat.predict(&row, &mut scratch, &mut scores);
        assert!(class < scores.len().max(1));
        // Margins are finite f32 sums or ±inf (never NaN); a softmax over +inf margins is
        // NaN in XGBoost too, so only "not outside [0, 1]" is asserted for probabilities.
        if imported.task == ImportedTask::Classification {
            assert!(scores.iter().all(|p| !(*p < 0.0 || *p > 1.0)));
        }
    }
});
