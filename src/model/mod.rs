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
//! The payload is the smartcore model serialized with `rmp_serde::to_vec_named`; its SHA-256
//! is in the manifest. [`Model::from_bytes`] checks all of it, validates the trees'
//! structure and runs the golden rows before a model is accepted.

pub mod ensemble;
pub mod flat;
mod manifest;
pub mod tree;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use manifest::*;
use tree::{FlatForest, MirrorForest, MirrorTree, TreeLimits};

/// First bytes of every artifact.
pub const MAGIC: &[u8; 8] = b"TREESERV";
/// The artifact format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
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
    #[error("unsupported artifact format version {found} (this build reads {FORMAT_VERSION})")]
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
struct BodyIn<'a> {
    manifest: Manifest,
    #[serde(borrow, with = "serde_bytes")]
    payload: &'a [u8],
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes an artifact: header, then the manifest and payload. The manifest's
/// `payload_sha256` is set here.
pub fn encode_artifact(manifest: &Manifest, payload: &[u8]) -> Vec<u8> {
    let mut manifest = manifest.clone();
    manifest.payload_sha256 = sha256_hex(payload);
    let body = rmp_serde::to_vec_named(&BodyOut {
        manifest: &manifest,
        payload,
    })
    .expect("manifest serializes");
    seal(&body)
}

/// Wraps a body in the artifact header (magic, version, length, checksum).
pub fn seal(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(body));
    out.extend_from_slice(body);
    out
}

/// Checks the header and body checksum; returns the body.
pub fn unseal(bytes: &[u8]) -> Result<&[u8], ArtifactError> {
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
    if version != FORMAT_VERSION {
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
    if Sha256::digest(body).as_slice() != &bytes[20..52] {
        return Err(ArtifactError::Checksum("body"));
    }
    Ok(body)
}

fn decode_body(body: &[u8]) -> Result<BodyIn<'_>, ArtifactError> {
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

/// A validated model, ready to serve: treeserve's own form, no smartcore types.
#[derive(Debug, Clone)]
pub struct Model {
    manifest: Manifest,
    forest: FlatForest,
    version: u64,
    sha256: String,
}

impl Model {
    /// Decodes and fully validates an artifact: header, checksums, manifest consistency,
    /// tree structure, then the golden rows. `version` is the registry version (0 if none).
    pub fn from_bytes(
        bytes: &[u8],
        version: u64,
        limits: &TreeLimits,
    ) -> Result<Self, ArtifactError> {
        let BodyIn { manifest, payload } = decode_body(unseal(bytes)?)?;
        if sha256_hex(payload) != manifest.payload_sha256 {
            return Err(ArtifactError::Checksum("payload"));
        }
        check_manifest(&manifest)?;
        let f = manifest.features.len();
        let k = manifest.classes.len();
        let trees = decode_trees(manifest.algorithm, payload, limits)?;
        for (t, tree) in trees.iter().enumerate() {
            tree.validate(f, k, limits).map_err(|e| match e {
                ArtifactError::InvalidTree(m) => {
                    ArtifactError::InvalidTree(format!("tree {t}: {m}"))
                }
                other => other,
            })?;
        }
        let forest = FlatForest::compile(&trees, &manifest.leaf_counts, f, k)?;
        let model = Model {
            manifest,
            forest,
            version,
            sha256: sha256_hex(bytes),
        };
        model.check_golden()?;
        Ok(model)
    }

    fn check_golden(&self) -> Result<(), ArtifactError> {
        if self.manifest.golden.is_empty() {
            return Err(ArtifactError::Invalid("no golden rows".into()));
        }
        let mut proba = vec![0.0; self.num_classes()];
        for (row, g) in self.manifest.golden.iter().enumerate() {
            let fail = |detail: String| Err(ArtifactError::Golden { row, detail });
            if g.features.len() != self.num_features() || g.features.iter().any(|v| !v.is_finite())
            {
                return fail("malformed features".into());
            }
            let got = self.predict(&g.features);
            if got != g.class as usize {
                return fail(format!("predicted class {got}, expected {}", g.class));
            }
            self.predict_proba(&g.features, &mut proba);
            if g.probabilities.len() != proba.len()
                || g.probabilities
                    .iter()
                    .zip(&proba)
                    .any(|(a, b)| (a - b).abs() > 1e-9)
            {
                return fail("probabilities differ".into());
            }
        }
        Ok(())
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Model name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Registry version (0 when loaded from a loose file).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// SHA-256 of the artifact file, hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Feature names, in order.
    pub fn features(&self) -> &[String] {
        &self.manifest.features
    }

    /// Class labels.
    pub fn classes(&self) -> &[String] {
        &self.manifest.classes
    }

    /// Number of features of a row.
    pub fn num_features(&self) -> usize {
        self.forest.num_features()
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.forest.num_classes()
    }

    /// The compiled evaluator.
    pub fn forest(&self) -> &FlatForest {
        &self.forest
    }

    /// Class index for one row of `num_features` finite values.
    #[inline]
    pub fn predict(&self, row: &[f64]) -> usize {
        self.forest.predict(row)
    }

    /// Class probabilities for one row into `out` (`num_classes` long).
    #[inline]
    pub fn predict_proba(&self, row: &[f64], out: &mut [f64]) {
        self.forest.predict_proba(row, out)
    }
}

fn check_manifest(m: &Manifest) -> Result<(), ArtifactError> {
    let bad = |s: String| Err(ArtifactError::Invalid(s));
    if m.name.is_empty() || !crate::name::valid_name(&m.name) {
        return bad(format!("model name {:?} is not valid", m.name));
    }
    if m.features.is_empty() {
        return bad("no features".into());
    }
    if m.classes.len() < 2 {
        return bad("fewer than two classes".into());
    }
    if has_duplicates(&m.features) {
        return bad("duplicate feature names".into());
    }
    if has_duplicates(&m.classes) {
        return bad("duplicate class labels".into());
    }
    if m.feature_stats.len() != m.features.len() {
        return bad("feature statistics do not cover every feature".into());
    }
    Ok(())
}

fn has_duplicates(v: &[String]) -> bool {
    let mut s: Vec<&String> = v.iter().collect();
    s.sort();
    s.windows(2).any(|w| w[0] == w[1])
}

fn decode_trees(
    algorithm: Algorithm,
    payload: &[u8],
    limits: &TreeLimits,
) -> Result<Vec<MirrorTree>, ArtifactError> {
    let err = |e: rmp_serde::decode::Error| ArtifactError::Decode(format!("payload: {e}"));
    match algorithm {
        Algorithm::DecisionTree => Ok(vec![
            rmp_serde::from_slice::<MirrorTree>(payload).map_err(err)?,
        ]),
        Algorithm::RandomForest => {
            let forest: MirrorForest = rmp_serde::from_slice(payload).map_err(err)?;
            let trees = forest
                .trees
                .ok_or_else(|| ArtifactError::InvalidTree("forest has no trees".into()))?;
            if trees.is_empty() || trees.len() > limits.max_trees {
                return Err(ArtifactError::InvalidTree(format!(
                    "forest has {} trees (1 to {} allowed)",
                    trees.len(),
                    limits.max_trees
                )));
            }
            Ok(trees)
        }
    }
}
