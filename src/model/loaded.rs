//! The served model: a validated artifact with its compiled evaluator — smartcore's
//! trees (format 1) or an imported [`Ensemble`] (format 2).

use std::cell::RefCell;

use super::flat::{FlatEnsemble, Scratch};
use super::tree::{FlatForest, TreeLimits};
use super::wide::{WideEnsemble, WideScratch};
use super::{
    ArtifactError, BodyIn, Manifest, Task, decode_body, sha256_hex, unseal_header, unseal_version,
};
use sha2::Digest;

/// Relative tolerance of a golden row of an imported model (`|a - b| <= TOL · max(|b|,
/// 1e-3)`): the import's parity tolerance.
pub const GOLDEN_TOLERANCE: f64 = 1e-6;

/// The fewest rows [`Model::predict_batch_threads`] gives a thread of its own.
pub const PARALLEL_MIN_ROWS: usize = 256;

mod parallel;
mod payload;
use payload::engine;
pub use payload::ensemble_payload;
#[cfg(test)]
mod tests;

/// The evaluator picked at load: smartcore's trees (IRIS) keep their own; imported
/// ensembles go flat when small, wide when large.
#[derive(Debug, Clone)]
enum Engine {
    Forest(FlatForest),
    Ensemble(FlatEnsemble),
    Wide(WideEnsemble),
}

thread_local! {
    static ENSEMBLE_SCRATCH: RefCell<(Scratch, Vec<f64>)> = RefCell::default();
    static WIDE_SCRATCH: RefCell<(WideScratch, Vec<f64>)> = RefCell::default();
}

/// A validated model, ready to serve: treeserve's own form, no foreign types.
#[derive(Debug, Clone)]
pub struct Model {
    manifest: Manifest,
    engine: Engine,
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
        Self::load(bytes, version, limits, Use::Serving)
    }

    /// [`Model::from_bytes`] for batches only (`treeserve predict`): the same checks and
    /// answers, without what only a server uses: the whole artifact's SHA-256 (its
    /// identity; [`Model::sha256`] is then empty) and the nodes laid out for one row.
    pub fn for_batches(
        bytes: &[u8],
        version: u64,
        limits: &TreeLimits,
    ) -> Result<Self, ArtifactError> {
        Self::load(bytes, version, limits, Use::Batches)
    }

    fn load(
        bytes: &[u8],
        version: u64,
        limits: &TreeLimits,
        to: Use,
    ) -> Result<Self, ArtifactError> {
        let (manifest, engine, payload_sha256, sha256) = if bytes.len() >= PARALLEL_HASH_BYTES {
            decode_beside_hashes(bytes, limits, to)?
        } else {
            decode_then_hash(bytes, limits, to)?
        };
        // A wrong payload is told before anything found in decoding it.
        if payload_sha256 != manifest.payload_sha256 {
            return Err(ArtifactError::Checksum("payload"));
        }
        let mut model = Model {
            engine: engine?,
            manifest,
            version,
            sha256,
        };
        model.check_golden()?;
        // Checked: the served model keeps the first few, for `GET /models/NAME` and smoke
        // tests (an import's 1,000 rows of 30 features are 300 KB).
        model.manifest.golden.truncate(KEPT_GOLDEN_ROWS);
        model.manifest.golden.shrink_to_fit();
        if bytes.len() >= PARALLEL_HASH_BYTES {
            // The decoded trees, freed, would otherwise stay resident (see the module).
            crate::memory::release_freed();
        }
        Ok(model)
    }

    /// Checks the golden rows, all predicted in one batch (as a load of a large model
    /// spends most of its time here); errors name the first bad row, as one by one would.
    fn check_golden(&self) -> Result<(), ArtifactError> {
        let golden = &self.manifest.golden;
        if golden.is_empty() {
            return Err(ArtifactError::Invalid("no golden rows".into()));
        }
        let (f, k) = (self.num_features(), self.num_scores());
        let value_ok = |v: &f64| v.is_finite() || (self.manifest.missing_aware && v.is_nan());
        // Rows before the first malformed one are predicted (and may fail first).
        let malformed = golden
            .iter()
            .position(|g| g.features.len() != f || !g.features.iter().all(value_ok));
        let good = &golden[..malformed.unwrap_or(golden.len())];
        let rows: Vec<f64> = good
            .iter()
            .flat_map(|g| g.features.iter().copied())
            .collect();
        let mut scores = vec![0.0; good.len() * k];
        let mut classes = vec![0; good.len()];
        self.predict_batch(&rows, &mut scores, &mut classes);
        let imported = !matches!(self.engine, Engine::Forest(_));
        let close = |a: f64, b: f64| {
            if imported {
                (a - b).abs() <= GOLDEN_TOLERANCE * b.abs().max(1e-3)
            } else {
                (a - b).abs() <= 1e-9
            }
        };
        for (row, ((g, scores), &got)) in good
            .iter()
            .zip(scores.chunks_exact(k))
            .zip(&classes)
            .enumerate()
        {
            let fail = |detail: String| Err(ArtifactError::Golden { row, detail });
            if g.probabilities.len() != k {
                return fail("wrong number of outputs".into());
            }
            if let Some((i, (a, b))) = scores
                .iter()
                .zip(&g.probabilities)
                .enumerate()
                .find(|(_, (a, b))| !close(**a, **b))
            {
                return fail(format!("output {i} is {a}, expected {b}"));
            }
            if self.manifest.task == Task::Classification && got != g.class as usize {
                return fail(format!("predicted class {got}, expected {}", g.class));
            }
        }
        match malformed {
            Some(row) => Err(ArtifactError::Golden {
                row,
                detail: "malformed features".into(),
            }),
            None => Ok(()),
        }
    }

    /// The manifest, with its first [`KEPT_GOLDEN_ROWS`] golden rows (all were checked at
    /// load; the artifact keeps every one).
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

    /// SHA-256 of the artifact file, hex (empty for [`Model::for_batches`]).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Feature names, in order.
    pub fn features(&self) -> &[String] {
        &self.manifest.features
    }

    /// Class labels (empty for a regressor).
    pub fn classes(&self) -> &[String] {
        &self.manifest.classes
    }

    /// What the model predicts.
    pub fn task(&self) -> Task {
        self.manifest.task
    }

    /// Whether the model predicts a number.
    pub fn is_regression(&self) -> bool {
        self.manifest.task == Task::Regression
    }

    /// Whether a row may hold missing values (NaN).
    pub fn missing_aware(&self) -> bool {
        self.manifest.missing_aware
    }

    /// Number of features of a row.
    pub fn num_features(&self) -> usize {
        self.manifest.features.len()
    }

    /// Number of classes (0 for a regressor).
    pub fn num_classes(&self) -> usize {
        self.manifest.classes.len()
    }

    /// Scores of an answer: one probability per class, or the one value of a regressor.
    pub fn num_scores(&self) -> usize {
        match self.manifest.task {
            Task::Classification => self.num_classes(),
            Task::Regression => 1,
        }
    }

    /// Number of trees.
    pub fn num_trees(&self) -> usize {
        match &self.engine {
            Engine::Forest(f) => f.num_trees(),
            Engine::Ensemble(e) => e.num_trees(),
            Engine::Wide(e) => e.num_trees(),
        }
    }

    /// Number of nodes over all trees.
    pub fn num_nodes(&self) -> usize {
        match &self.engine {
            Engine::Forest(f) => f.num_nodes(),
            Engine::Ensemble(e) => e.num_nodes(),
            Engine::Wide(e) => e.num_nodes(),
        }
    }

    /// Class index for one row of `num_features` values (0 for a regressor).
    #[inline]
    pub fn predict(&self, row: &[f64]) -> usize {
        match &self.engine {
            Engine::Forest(f) => f.predict(row),
            Engine::Ensemble(e) => ENSEMBLE_SCRATCH.with_borrow_mut(|(scratch, scores)| {
                scores.resize(e.num_scores(), 0.0);
                e.predict(row, scratch, scores)
            }),
            Engine::Wide(e) => WIDE_SCRATCH.with_borrow_mut(|(scratch, scores)| {
                scores.resize(e.num_scores(), 0.0);
                e.predict(row, scratch, scores)
            }),
        }
    }

    /// Class probabilities for one row into `out` (`num_classes` long).
    #[inline]
    pub fn predict_proba(&self, row: &[f64], out: &mut [f64]) {
        self.predict_scores(row, out);
    }

    /// One row's scores into `out` (`num_scores` long): class probabilities, or a
    /// regressor's value. Returns the class index (0 for a regressor).
    #[inline]
    pub fn predict_scores(&self, row: &[f64], out: &mut [f64]) -> usize {
        match &self.engine {
            Engine::Forest(f) => {
                f.predict_proba(row, out);
                f.predict(row)
            }
            Engine::Ensemble(e) => {
                ENSEMBLE_SCRATCH.with_borrow_mut(|(scratch, _)| e.predict(row, scratch, out))
            }
            Engine::Wide(e) => {
                WIDE_SCRATCH.with_borrow_mut(|(scratch, _)| e.predict(row, scratch, out))
            }
        }
    }

    /// Scores `rows` (`n × num_features` values, row after row) into `scores`
    /// (`n × num_scores`) and class indexes into `classes` (`n`) on this thread, each row
    /// as [`Model::predict_scores`]; the wide evaluator takes the rows in blocks.
    pub fn predict_batch(&self, rows: &[f64], scores: &mut [f64], classes: &mut [usize]) {
        let (f, k) = (self.num_features(), self.num_scores());
        assert_eq!(rows.len(), classes.len() * f, "rows × features");
        assert_eq!(scores.len(), classes.len() * k, "rows × scores");
        match &self.engine {
            Engine::Wide(e) => {
                WIDE_SCRATCH.with_borrow_mut(|(s, _)| e.predict_batch(rows, s, scores, classes))
            }
            Engine::Ensemble(e) => ENSEMBLE_SCRATCH.with_borrow_mut(|(s, _)| {
                for ((row, out), c) in rows
                    .chunks_exact(f)
                    .zip(scores.chunks_exact_mut(k))
                    .zip(classes.iter_mut())
                {
                    *c = e.predict(row, s, out);
                }
            }),
            Engine::Forest(_) => {
                for ((row, out), c) in rows
                    .chunks_exact(f)
                    .zip(scores.chunks_exact_mut(k))
                    .zip(classes.iter_mut())
                {
                    *c = self.predict_scores(row, out);
                }
            }
        }
    }
}

/// Golden rows a loaded model keeps in its manifest after checking them all.
pub const KEPT_GOLDEN_ROWS: usize = 16;

/// Artifacts from this size on hash beside their decoding ([`Model::from_bytes`]).
const PARALLEL_HASH_BYTES: usize = 1 << 20;

/// An artifact decoded, its engine built (or why not), and the payload's and the whole
/// artifact's SHA-256 (empty for batches).
type Decoded = (Manifest, Result<Engine, ArtifactError>, String, String);

/// What a model is loaded for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Use {
    /// Served: one row and batches, named by the artifact's SHA-256.
    Serving,
    /// Batches only ([`Model::for_batches`]).
    Batches,
}

/// The whole artifact's SHA-256, where the model is served (its identity).
fn identity(bytes: &[u8], to: Use) -> String {
    match to {
        Use::Serving => sha256_hex(bytes),
        Use::Batches => String::new(),
    }
}

/// The body's checksum checked, then decoded and built, then the hashes.
fn decode_then_hash(bytes: &[u8], limits: &TreeLimits, to: Use) -> Result<Decoded, ArtifactError> {
    let (format, body) = unseal_version(bytes)?;
    let BodyIn { manifest, payload } = decode_body(body)?;
    let engine = engine(format, &manifest, payload, limits, to);
    Ok((manifest, engine, sha256_hex(payload), identity(bytes, to)))
}

/// A large artifact: two of its three SHA-256 (the body's and, where served, the whole's:
/// 1.5 MB each for a 500-tree model in format 3, 5 MB in format 2, ~1 and ~3 ms each) on a
/// helper thread while this one decodes and builds, then hashes the payload (the decoder takes
/// unchecked bytes: the `artifact` fuzz target). What is told first stays as in
/// [`decode_then_hash`]: the body's checksum, then a decoding error.
fn decode_beside_hashes(
    bytes: &[u8],
    limits: &TreeLimits,
    to: Use,
) -> Result<Decoded, ArtifactError> {
    let (format, body, sum) = unseal_header(bytes)?;
    let hashes = move || {
        let body_ok = sha2::Sha256::digest(body).as_slice() == sum;
        (body_ok, identity(bytes, to))
    };
    std::thread::scope(|s| {
        let Ok(helper) = std::thread::Builder::new().spawn_scoped(s, hashes) else {
            return decode_then_hash(bytes, limits, to);
        };
        let decoded = decode_body(body);
        let built = decoded.as_ref().ok().map(|b| {
            (
                engine(format, &b.manifest, b.payload, limits, to),
                sha256_hex(b.payload),
            )
        });
        let (body_ok, whole) = helper.join().expect("hashing does not panic");
        if !body_ok {
            return Err(ArtifactError::Checksum("body"));
        }
        let BodyIn { manifest, .. } = decoded?;
        let Some((engine, payload)) = built else {
            unreachable!("a decoded body is built and its payload hashed");
        };
        Ok((manifest, engine, payload, whole))
    })
}
