//! The CSV reader's number parser (`treeserve::decimal`), against the standard library:
//! whatever prefix it takes, `str::parse` on that prefix gives the same bits, and the
//! general parser it falls back to takes the same prefix. No input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((v, used)) = treeserve::decimal::parse_prefix(data) else {
        return;
    };
    let text = std::str::from_utf8(&data[..used]).expect("a number's prefix is ASCII");
    let want: f64 = text.parse().expect("str::parse takes what parse_prefix took");
    assert_eq!(v.to_bits(), want.to_bits(), "{text:?}");
    let (general, length) = fast_float2::parse_partial::<f64, _>(data).expect("a number");
    assert_eq!((general.to_bits(), length), (v.to_bits(), used), "{text:?}");
});
