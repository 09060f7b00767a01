//! An imported artifact's payload read by hand (`treeserve::model::ensemble::decode_fast`)
//! against `rmp_serde`: whatever the fast path reads, `rmp_serde` reads the same ensemble,
//! bit for bit (both written again by the encoder and compared). No input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use treeserve::model::ensemble::{Ensemble, decode_fast};

fuzz_target!(|data: &[u8]| {
    let Some(fast) = decode_fast(data) else {
        return;
    };
    let slow: Ensemble = rmp_serde::from_slice(data).expect("rmp_serde reads what the fast path read");
    assert_eq!(
        rmp_serde::to_vec(&fast).unwrap(),
        rmp_serde::to_vec(&slow).unwrap()
    );
});
