//! MLflow `/invocations` and KServe V1 bodies (JSON forms and CSV): no input may panic;
//! what decodes has whole rows within the limit, finite unless missing values are allowed.
//! The first byte picks JSON or CSV, and whether `null` is a missing value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use treeserve::protocol::tabular;

fuzz_target!(|input: &[u8]| {
    let Some((&mode, body)) = input.split_first() else {
        return;
    };
    let features: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let null_is_missing = mode & 2 != 0;
    let decode = if mode & 1 == 0 {
        tabular::decode_json
    } else {
        tabular::decode_csv
    };
    let mut out = Vec::new();
    if let Ok(rows) = decode(body, &features, 64, null_is_missing, &mut out) {
        assert!((1..=64).contains(&rows));
        assert_eq!(out.len(), rows * features.len());
        assert!(null_is_missing || out.iter().all(|v| v.is_finite()));
    }
});
