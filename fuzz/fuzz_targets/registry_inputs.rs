//! What a registry reads from outside: `--registry` locations and alias records from a
//! store. The first byte picks the parser; no input may panic, and what parses round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use treeserve::registry::{AliasRecord, Location};

fuzz_target!(|input: &[u8]| {
    let Some((&which, rest)) = input.split_first() else {
        return;
    };
    match which % 2 {
        0 => {
            let Ok(s) = std::str::from_utf8(rest) else {
                return;
            };
            if let Ok(loc) = Location::parse(s, Some("http://127.0.0.1:5000")) {
                // What it prints parses back to itself (what logs and errors show is usable).
                let shown = loc.to_string();
                if !matches!(loc, Location::Dir(_)) {
                    assert_eq!(Location::parse(&shown, None).as_ref(), Ok(&loc), "{s:?}");
                }
            }
        }
        _ => {
            if let Ok(rec) = serde_json::from_slice::<AliasRecord>(rest) {
                let again = serde_json::to_vec(&rec).expect("serializes");
                assert_eq!(serde_json::from_slice::<AliasRecord>(&again).unwrap(), rec);
            }
        }
    }
});
