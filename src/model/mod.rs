//! Model artifacts and the served model.
//!
//! An artifact is one file:
//!
//! | offset | size | content |
//! |---|---|---|
//! | 0 | 8 | magic `TREESERV` |
//! | 8 | 4 | format version, u32 little endian ([`FORMAT_VERSION`]) |
//! | 12 | 8 | body length, u64 little endian |
//! | 20 | 32 | SHA-256 of the body |
//! | 52 | n | body: MessagePack map `{manifest, payload}` |
//!
//! Format version 1: the payload is the smartcore model serialized with
//! `rmp_serde::to_vec_named`. Format version 2 (imported models, `algorithm: imported`):
//! the payload is an [`ensemble::Ensemble`] serialized with `rmp_serde::to_vec` (compact).
//! The payload's SHA-256 is in the manifest. [`Model::from_bytes`] checks all of it,
//! validates the trees' structure and runs the golden rows before a model is accepted.

pub mod ensemble;
pub mod flat;
mod head;
mod loaded;
mod manifest;
pub mod tree;
pub mod wide;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use loaded::{GOLDEN_TOLERANCE, KEPT_GOLDEN_ROWS, Model, PARALLEL_MIN_ROWS, ensemble_payload};
pub use manifest::*;

/// First bytes of every artifact.
pub const MAGIC: &[u8; 8] = b"TREESERV";
/// The artifact format version of smartcore models (what `train` writes).
pub const FORMAT_VERSION: u32 = 1;
/// The artifact format version of imported models (and regressors): the trees.
pub const FORMAT_VERSION_ENSEMBLE: u32 = 2;
/// The artifact format version of imported ensembles laid out for the wide evaluator
/// (what `import` writes for 16 trees or more: [`wide::WideEnsemble::to_payload`]).
pub const FORMAT_VERSION_WIDE: u32 = 3;
const HEADER_LEN: usize = 8 + 4 + 8 + 32;

/// Why an artifact was refused.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// Shorter than its header or its declared body.
    #[error("artifact is truncated: {0}")]
    Truncated(String),
    /// Not a treeserve artifact.
    #[error("not a treeserve artifact (bad magic)")]
    BadMagic,
    /// Written by an incompatible format version.
    #[error(
        "unsupported artifact format version {found} (this build reads {FORMAT_VERSION} to {FORMAT_VERSION_WIDE}); upgrade treeserve"
    )]
    UnsupportedVersion {
        /// Version found in the header.
        found: u32,
    },
    /// A checksum does not match.
    #[error("checksum mismatch: {0}")]
    Checksum(&'static str),
    /// The body or payload did not decode.
    #[error("artifact does not decode: {0}")]
    Decode(String),
    /// The manifest is inconsistent.
    #[error("invalid manifest: {0}")]
    Invalid(String),
    /// A tree is malformed.
    #[error("invalid tree: {0}")]
    InvalidTree(String),
    /// A golden row gave another output.
    #[error("golden row {row} failed: {detail}")]
    Golden {
        /// Index of the golden row.
        row: usize,
        /// What differed.
        detail: String,
    },
}

impl ArtifactError {
    /// A short, bounded reason for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            ArtifactError::Truncated(_) => "truncated",
            ArtifactError::BadMagic => "bad_magic",
            ArtifactError::UnsupportedVersion { .. } => "unsupported_version",
            ArtifactError::Checksum(_) => "checksum",
            ArtifactError::Decode(_) => "decode",
            ArtifactError::Invalid(_) => "invalid_manifest",
            ArtifactError::InvalidTree(_) => "invalid_tree",
            ArtifactError::Golden { .. } => "golden_rows",
        }
    }
}

#[derive(Serialize)]
struct BodyOut<'a> {
    manifest: &'a Manifest,
    #[serde(with = "serde_bytes")]
    payload: &'a [u8],
}

#[derive(Deserialize)]
pub(crate) struct BodyIn<'a> {
    pub(crate) manifest: Manifest,
    #[serde(borrow, with = "serde_bytes")]
    pub(crate) payload: &'a [u8],
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes an artifact: header, then the manifest and payload. The manifest's
/// `payload_sha256` is set here.
pub fn encode_artifact(manifest: &Manifest, payload: &[u8]) -> Vec<u8> {
    let version = if manifest.ensemble_payload() {
        FORMAT_VERSION_ENSEMBLE
    } else {
        FORMAT_VERSION
    };
    encode_artifact_as(manifest, payload, version)
}

/// [`encode_artifact`] with the format `version` the payload is in.
pub fn encode_artifact_as(manifest: &Manifest, payload: &[u8], version: u32) -> Vec<u8> {
    let mut manifest = manifest.clone();
    manifest.payload_sha256 = sha256_hex(payload);
    let body = rmp_serde::to_vec_named(&BodyOut {
        manifest: &manifest,
        payload,
    })
    .expect("manifest serializes");
    seal_version(&body, version)
}

/// Wraps a body in the artifact header (magic, version 1, length, checksum).
pub fn seal(body: &[u8]) -> Vec<u8> {
    seal_version(body, FORMAT_VERSION)
}

/// Wraps a body in the artifact header with format `version`.
pub fn seal_version(body: &[u8], version: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(body));
    out.extend_from_slice(body);
    out
}

/// Checks the header and body checksum; returns the body.
pub fn unseal(bytes: &[u8]) -> Result<&[u8], ArtifactError> {
    unseal_version(bytes).map(|(_, body)| body)
}

/// Checks the header and body checksum; returns the format version and the body.
pub fn unseal_version(bytes: &[u8]) -> Result<(u32, &[u8]), ArtifactError> {
    let (version, body, sum) = unseal_header(bytes)?;
    if Sha256::digest(body).as_slice() != sum {
        return Err(ArtifactError::Checksum("body"));
    }
    Ok((version, body))
}

/// Checks the header (magic, version, length), not the body's checksum: returns the format
/// version, the body and the checksum the header holds for it.
pub(crate) fn unseal_header(bytes: &[u8]) -> Result<(u32, &[u8], &[u8]), ArtifactError> {
    if bytes.len() < 8 {
        return Err(ArtifactError::Truncated(format!(
            "{} bytes, shorter than the header",
            bytes.len()
        )));
    }
    if &bytes[..8] != MAGIC {
        return Err(ArtifactError::BadMagic);
    }
    if bytes.len() < HEADER_LEN {
        return Err(ArtifactError::Truncated(format!(
            "{} bytes, shorter than the header",
            bytes.len()
        )));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if !(FORMAT_VERSION..=FORMAT_VERSION_WIDE).contains(&version) {
        return Err(ArtifactError::UnsupportedVersion { found: version });
    }
    let len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let body = &bytes[HEADER_LEN..];
    if (body.len() as u64) < len {
        return Err(ArtifactError::Truncated(format!(
            "body is {} bytes, header says {len}",
            body.len()
        )));
    }
    if body.len() as u64 != len {
        return Err(ArtifactError::Decode(format!(
            "{} bytes after the declared body",
            body.len() as u64 - len
        )));
    }
    Ok((version, body, &bytes[20..52]))
}

pub(crate) fn decode_body(body: &[u8]) -> Result<BodyIn<'_>, ArtifactError> {
    rmp_serde::from_slice(body).map_err(|e| ArtifactError::Decode(e.to_string()))
}

/// Reads only the manifest of an artifact (header and checksums checked, trees not).
pub fn read_manifest(bytes: &[u8]) -> Result<Manifest, ArtifactError> {
    Ok(decode_body(unseal(bytes)?)?.manifest)
}

/// Splits an artifact into its manifest and payload (header and body checksum checked,
/// nothing else).
pub fn read_parts(bytes: &[u8]) -> Result<(Manifest, &[u8]), ArtifactError> {
    let body = decode_body(unseal(bytes)?)?;
    Ok((body.manifest, body.payload))
}

/// The manifest of a whole artifact without checking its checksums or anything else: for
/// work begun while the artifact loads (`treeserve predict` reads the CSV meanwhile),
/// which the load, checked, then confirms or cancels. `None` where it does not read.
pub fn read_manifest_unchecked(bytes: &[u8]) -> Option<Manifest> {
    let (_, body, _) = unseal_header(bytes).ok()?;
    manifest_at(body)
}

/// The manifest `encode_artifact` writes first in a body (a map of 2 entries, the key
/// "manifest"), one value read and the rest left alone; `None` if it is not there or does
/// not read (it may run past the bytes given).
fn manifest_at(body: &[u8]) -> Option<Manifest> {
    let rest = body.strip_prefix(b"\x82\xa8manifest")?;
    Manifest::deserialize(&mut rmp_serde::Deserializer::new(rest)).ok()
}

/// The manifest from an artifact's first bytes (`head`, e.g. a ranged read), without the
/// rest: the header's magic and version are checked, the checksums cannot be (they cover
/// the whole body) unless `head` is the whole artifact: the flag says whether they were.
/// `Ok(None)` when the manifest ends past `head`: read more. Used to list versions of a
/// remote registry without downloading them.
pub fn read_manifest_head(head: &[u8]) -> Result<Option<(Manifest, bool)>, ArtifactError> {
    match unseal_version(head) {
        // All of it: everything checked.
        Ok((_, body)) => return decode_body(body).map(|b| Some((b.manifest, true))),
        Err(ArtifactError::Truncated(_)) if head.len() >= HEADER_LEN => {}
        Err(e) => return Err(e),
    }
    // Failing here means the manifest runs past the bytes read (or anything else a full
    // read will tell).
    Ok(manifest_at(&head[HEADER_LEN..]).map(|m| (m, false)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_reads_from_the_first_bytes_or_asks_for_more() {
        let iris = std::fs::read("models/iris/versions/1/model.tsm").unwrap();
        let (manifest, _) = read_parts(&iris).unwrap();
        // A large payload behind the manifest, as an imported ensemble has.
        let big = encode_artifact(&manifest, &vec![7u8; 1 << 20]);
        let want = read_manifest(&big).unwrap();
        let mut first = None;
        for cut in (HEADER_LEN..8192).chain([big.len() / 2, big.len() - 1, big.len()]) {
            match read_manifest_head(&big[..cut]) {
                Ok(Some((m, verified))) => {
                    assert_eq!(m, want, "{cut}");
                    assert_eq!(verified, cut == big.len());
                    first.get_or_insert(cut);
                }
                Ok(None) => assert!(first.is_none(), "more bytes, no manifest, at {cut}"),
                Err(e) => panic!("{cut}: {e}"),
            }
        }
        assert!(first.is_some_and(|c| c > HEADER_LEN + 100), "{first:?}");
        // The whole artifact's manifest without its checks: a flipped payload byte is the
        // load's to find; a cut artifact or another file has none.
        assert_eq!(read_manifest_unchecked(&big), Some(want.clone()));
        let mut flipped = big.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(read_manifest_unchecked(&flipped), Some(want.clone()));
        assert_eq!(read_manifest_unchecked(&big[..big.len() - 1]), None);
        assert_eq!(read_manifest_unchecked(b"not an artifact"), None);
        for cut in [0, 7, 8, HEADER_LEN - 1] {
            assert!(read_manifest_head(&big[..cut]).is_err(), "{cut}");
        }
        // A damaged payload: the head still reads; only a whole read can tell.
        let mut bad = big.clone();
        let n = bad.len();
        bad[n - 10] ^= 1;
        assert_eq!(
            read_manifest_head(&bad[..65536]).unwrap(),
            Some((want, false))
        );
        assert!(matches!(
            read_manifest(&bad),
            Err(ArtifactError::Checksum(_))
        ));
        assert!(read_manifest_head(&bad).is_err());
        let mut magic = big;
        magic[0] = b'X';
        assert!(matches!(
            read_manifest_head(&magic[..65536]),
            Err(ArtifactError::BadMagic)
        ));
    }
}
