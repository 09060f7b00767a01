//! `treeserve predict`'s CSV reader (the plain fast path and the csv reader behind it): no
//! input may panic or hang; what is scored has one output line per row, after the header,
//! and chunk sizes never change the answer. The shipped IRIS model, one thread.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use treeserve::Model;
use treeserve::batch::{PredictOptions, predict_csv};

fn model() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| {
        let bytes = include_bytes!("../../models/iris/versions/1/model.tsm");
        Model::from_bytes(bytes, 1, &Default::default()).expect("the shipped IRIS model loads")
    })
}

fn run(input: &[u8], chunk_rows: usize) -> Result<(u64, Vec<u8>), String> {
    let opts = PredictOptions {
        threads: 1,
        chunk_rows,
        probabilities: true,
        ..PredictOptions::default()
    };
    let mut out = Vec::new();
    predict_csv(model(), input, &mut out, &opts)
        .map(|s| (s.rows, out))
        .map_err(|e| e.to_string())
}

fuzz_target!(|input: &[u8]| {
    // A valid header first, so the rows are what gets fuzzed.
    let mut text = b"Id,SepalLengthCm,SepalWidthCm,PetalLengthCm,PetalWidthCm\n".to_vec();
    text.extend_from_slice(input);
    let whole = run(&text, 1 << 14);
    if let Ok((rows, out)) = &whole {
        let lines = out.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
        assert_eq!(lines as u64, rows + 1, "one line a row after the header");
    }
    // Blocks of a few rows (quotes and errors cut at other places): the same answer.
    assert_eq!(run(&text, 1), whole);
});
