//! LightGBM text model import: no byte string may panic the reader or make it allocate
//! beyond what the input holds, and a model it accepts compiles or is refused cleanly and
//! then predicts any row without panicking: a class in range, no NaN while the leaves'
//! sums stay finite, probabilities in [0, 1].
#![no_main]

use libfuzzer_sys::fuzz_target;
use treeserve::import::lightgbm;
use treeserve::model::ensemble::{Leaf, Node, OutputKind};
use treeserve::model::flat::{FlatEnsemble, Scratch};

fuzz_target!(|input: &[u8]| {
    let Ok(imported) = lightgbm::read(input) else {
        return;
    };
    let e = &imported.ensemble;
    let Ok(flat) = FlatEnsemble::compile(e) else {
        return;
    };
    // The largest raw score any row can reach.
    let bound: f64 = e
        .trees
        .iter()
        .map(|t| {
            t.nodes
                .iter()
                .map(|n| match n {
                    Node::Leaf(Leaf::Scalar(v)) => v.abs(),
                    _ => 0.0,
                })
                .fold(0.0, f64::max)
        })
        .sum();
    let mut scores = vec![0.0; flat.num_scores()];
    let mut scratch = Scratch::default();
    for probe in [
        0.0,
        f64::NAN,
        -1e300,
        1e300,
        0.5,
        1e-36,
        -0.5,
        3.0,
        31.0,
        1e10,
    ] {
        let row = vec![probe; flat.num_features()];
        let class = flat.predict(&row, &mut scratch, &mut scores);
        assert!(class < flat.num_scores());
        if bound < 1e300 {
            assert!(scores.iter().all(|s| !s.is_nan()), "{scores:?}");
            if e.output != OutputKind::Value {
                assert!(scores.iter().all(|p| (0.0..=1.0).contains(p)), "{scores:?}");
            }
        }
    }
});
