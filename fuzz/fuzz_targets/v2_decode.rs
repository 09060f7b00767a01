//! Open Inference Protocol request decoding (JSON and binary tensor data): no input may
//! panic; what decodes has the declared shape and finite values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use treeserve::protocol::v2;

fuzz_target!(|input: &[u8]| {
    // The first byte says where the JSON header ends (as Inference-Header-Content-Length
    // would); the rest after it is binary tensor data.
    let Some((&split, body)) = input.split_first() else {
        return;
    };
    let at = (split as usize * 4).min(body.len());
    let (json, binary) = if split == 0 {
        (body, &[][..])
    } else {
        body.split_at(at)
    };
    let mut out = Vec::new();
    if let Ok(d) = v2::decode(json, binary, 4, 64, &mut out) {
        assert!(d.rows >= 1 && d.rows <= 64);
        assert_eq!(out.len(), d.rows * 4);
        assert!(out.iter().all(|v| v.is_finite()));
        assert!(!d.outputs.as_slice().is_empty() || json.windows(9).any(|w| w == b"\"outputs\""));
    }
});
