//! Artifact loading: no byte string may panic the loader or make it allocate beyond what
//! the input can describe, and an artifact that passes validation can never make
//! prediction panic or loop, whatever the row.
//!
//! The first byte picks how deep the input reaches: 0 — the bytes as a file (header and
//! checksums); 1 — the rest as an artifact body, sealed with a valid header and checksum
//! (MessagePack decoding, length prefixes); 2 — that body with its payload checksum fixed
//! too (manifest and tree validation, golden rows, prediction); 3 — as 2, in format 3 (the
//! payload read as the wide layout). Every input also goes through the manifest's ranged
//! read (`read_manifest_head`) at three cuts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use treeserve::Model;
use treeserve::model::{
    FORMAT_VERSION_WIDE, encode_artifact, encode_artifact_as, read_manifest, read_manifest_head,
    read_parts, seal,
};

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let bytes = match mode % 4 {
        0 => input.to_vec(),
        1 => seal(rest),
        m => {
            let sealed = seal(rest);
            let Ok((manifest, payload)) = read_parts(&sealed) else {
                return;
            };
            if m == 2 {
                encode_artifact(&manifest, payload)
            } else {
                encode_artifact_as(&manifest, payload, FORMAT_VERSION_WIDE)
            }
        }
    };
    // A manifest read from the first bytes (a ranged read) is the manifest, or asks for
    // more, whatever the cut.
    let whole = read_manifest(&bytes).ok();
    for cut in [bytes.len() / 3, bytes.len() / 2, bytes.len().saturating_sub(1)] {
        if let (Ok(Some((m, _))), Some(w)) = (read_manifest_head(&bytes[..cut]), &whole) {
            // (Debug: a NaN in the manifest is not equal to itself.)
            assert_eq!(format!("{m:?}"), format!("{w:?}"));
        }
    }
    let Ok(model) = Model::from_bytes(&bytes, 1, &Default::default()) else {
        return;
    };
    let f = model.num_features();
    let k = model.num_classes();
    let mut scores = vec![0.0; model.num_scores()];
    let imported = model.manifest().ensemble_payload();
    let probes = [0.0, -1e300, 1e300, 0.5, f64::MIN_POSITIVE, 3.0, f64::NAN];
    for probe in probes {
        if probe.is_nan() && !model.missing_aware() {
            continue;
        }
        let row = vec![probe; f];
        let class = model.predict(&row);
        assert!(class < k.max(1));
        assert_eq!(model.predict_scores(&row, &mut scores), class);
        if !imported {
            // smartcore's leaf distributions: probabilities. (An imported model's scores
            // are whatever its transform makes of its leaves, e.g. exp of a huge leaf.)
            assert!(
                scores
                    .iter()
                    .all(|p| p.is_finite() && (-1e-9..=1.0 + 1e-9).contains(p))
            );
        }
    }
});
