//! `/score` body decoding: no input may panic; what decodes is finite, row-major, and the
//! fast path and serde agree (checked inside `decode`'s own tests; here: no panic, sane
//! output).
#![no_main]

use libfuzzer_sys::fuzz_target;
use treeserve::protocol::score;

fuzz_target!(|body: &[u8]| {
    let features: Vec<String> = [
        "SepalLengthCm",
        "SepalWidthCm",
        "PetalLengthCm",
        "PetalWidthCm",
    ]
    .map(String::from)
    .to_vec();
    let mut out = Vec::new();
    if let Ok(d) = score::decode(body, &features, 64, &mut out) {
        assert!(d.rows >= 1 && d.rows <= 64);
        assert_eq!(out.len(), d.rows * features.len());
        assert!(out.iter().all(|v| v.is_finite()));
    }
});
