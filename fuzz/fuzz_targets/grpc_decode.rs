//! V2 over gRPC `ModelInfer` messages (protobuf): no input may panic; the model and
//! version are read from any message the full decoder takes, and what decodes has whole
//! rows within the limit, finite unless missing values are allowed. The first byte says
//! whether NaN is a missing value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use treeserve::protocol::v2::grpc;

fuzz_target!(|input: &[u8]| {
    let Some((&mode, body)) = input.split_first() else {
        return;
    };
    let missing = mode & 1 != 0;
    let target = grpc::target(body);
    let mut out = Vec::new();
    if let Ok(d) = grpc::decode(body, 3, 64, missing, &mut out) {
        assert!(target.is_ok(), "decoded, but its model could not be read");
        assert!((1..=64).contains(&d.rows));
        assert_eq!(out.len(), d.rows * 3);
        assert!(missing || out.iter().all(|v| v.is_finite()));
    }
});
