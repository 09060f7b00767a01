//! An artifact's payload made into an engine: the format and manifest checked, the
//! payload read (the trees decoded, validated and compiled; or the stored wide layout read
//! and checked), and what an import writes.

use super::{Engine, Use};
use crate::model::ensemble::{Ensemble, EnsembleError, EnsembleLimits};
use crate::model::flat::FlatEnsemble;
use crate::model::tree::{FlatForest, MirrorForest, MirrorTree, TreeLimits};
use crate::model::wide::WideEnsemble;
use crate::model::{
    Algorithm, ArtifactError, FORMAT_VERSION, FORMAT_VERSION_ENSEMBLE, FORMAT_VERSION_WIDE,
    Manifest, Task,
};

/// Imported models with at least this many trees use the wide evaluator (groups of 8
/// trees walked at once); smaller ones keep the flat one.
const WIDE_MIN_TREES: usize = 16;

/// The engine of a decoded artifact: its format and manifest checked, its payload decoded,
/// validated and compiled.
pub(super) fn engine(
    format: u32,
    manifest: &Manifest,
    payload: &[u8],
    limits: &TreeLimits,
    to: Use,
) -> Result<Engine, ArtifactError> {
    let ensemble = manifest.ensemble_payload();
    let expected = if ensemble {
        [FORMAT_VERSION_ENSEMBLE, FORMAT_VERSION_WIDE]
    } else {
        [FORMAT_VERSION; 2]
    };
    if !expected.contains(&format) {
        return Err(ArtifactError::Invalid(format!(
            "algorithm {} in an artifact of format version {format}",
            manifest.algorithm.as_str()
        )));
    }
    check_manifest(manifest)?;
    if format == FORMAT_VERSION_WIDE {
        let limits = ensemble_limits(limits);
        let wide = match to {
            Use::Serving => WideEnsemble::from_payload(payload, &limits),
            Use::Batches => WideEnsemble::from_payload_for_batches(payload, &limits),
        }
        .map_err(|err| ArtifactError::InvalidTree(err.0))?;
        check_shape(wide.num_features(), wide.num_scores(), manifest)?;
        return Ok(Engine::Wide(wide));
    }
    if ensemble {
        let e = Ensemble::from_msgpack(payload)
            .map_err(|e| ArtifactError::Decode(format!("payload: {e}")))?;
        compile_ensemble(e, manifest, limits, to)
    } else {
        Ok(Engine::Forest(compile_forest(manifest, payload, limits)?))
    }
}

fn compile_ensemble(
    e: Ensemble,
    m: &Manifest,
    limits: &TreeLimits,
    to: Use,
) -> Result<Engine, ArtifactError> {
    e.validate(&ensemble_limits(limits))
        .map_err(|err| ArtifactError::InvalidTree(err.0))?;
    check_shape(e.num_features as usize, e.num_scores(), m)?;
    // The decoded trees (~48 bytes a node) go as they are compiled, before the wide layout
    // is built: what a load leaves resident in the allocator is its peak.
    let flat = FlatEnsemble::compile_owned(e).map_err(|err| ArtifactError::InvalidTree(err.0))?;
    if flat.num_trees() < WIDE_MIN_TREES {
        return Ok(Engine::Ensemble(flat));
    }
    Ok(match WideEnsemble::from_flat(flat) {
        Ok(wide) if to == Use::Serving => Engine::Wide(wide.with_pair_blocks()),
        Ok(wide) => Engine::Wide(wide),
        Err(flat) => Engine::Ensemble(*flat),
    })
}

/// The payload an imported ensemble is written in, and its format: the wide layout
/// (format 3) where a load serves the model with it, else the trees (format 2). The
/// ensemble is validated first (`limits`: the load's).
pub fn ensemble_payload(
    e: &Ensemble,
    limits: &TreeLimits,
) -> Result<(Vec<u8>, u32), EnsembleError> {
    e.validate(&ensemble_limits(limits))?;
    let flat = FlatEnsemble::compile(e)?;
    if flat.num_trees() >= WIDE_MIN_TREES
        && let Ok(wide) = WideEnsemble::from_flat(flat)
    {
        return Ok((wide.to_payload(), FORMAT_VERSION_WIDE));
    }
    let trees = rmp_serde::to_vec(e).expect("an ensemble serializes");
    Ok((trees, FORMAT_VERSION_ENSEMBLE))
}

/// An ensemble's limits from a load's.
fn ensemble_limits(limits: &TreeLimits) -> EnsembleLimits {
    EnsembleLimits {
        max_trees: limits.max_trees,
        max_nodes: limits.max_nodes,
        max_depth: limits.max_depth,
        ..EnsembleLimits::default()
    }
}

/// The trees' features and scores as the manifest names them.
fn check_shape(features: usize, scores: usize, m: &Manifest) -> Result<(), ArtifactError> {
    if features != m.features.len() {
        return Err(ArtifactError::Invalid(format!(
            "the trees read {features} features, the manifest names {}",
            m.features.len()
        )));
    }
    let want = match m.task {
        Task::Classification => m.classes.len(),
        Task::Regression => 1,
    };
    if scores != want || (m.task == Task::Regression) != (scores == 1 && m.classes.is_empty()) {
        return Err(ArtifactError::Invalid(format!(
            "the trees give {scores} scores for a {:?} model with {} classes",
            m.task,
            m.classes.len()
        )));
    }
    Ok(())
}

fn compile_forest(
    m: &Manifest,
    payload: &[u8],
    limits: &TreeLimits,
) -> Result<FlatForest, ArtifactError> {
    if m.task != Task::Classification {
        return Err(ArtifactError::Invalid(
            "a smartcore artifact must be a classifier".into(),
        ));
    }
    let f = m.features.len();
    let k = m.classes.len();
    let trees = decode_trees(m.algorithm, payload, limits)?;
    for (t, tree) in trees.iter().enumerate() {
        tree.validate(f, k, limits).map_err(|e| match e {
            ArtifactError::InvalidTree(m) => ArtifactError::InvalidTree(format!("tree {t}: {m}")),
            other => other,
        })?;
    }
    FlatForest::compile(&trees, &m.leaf_counts, f, k)
}

fn check_manifest(m: &Manifest) -> Result<(), ArtifactError> {
    let bad = |s: String| Err(ArtifactError::Invalid(s));
    if m.name.is_empty() || !crate::name::valid_name(&m.name) {
        return bad(format!("model name {:?} is not valid", m.name));
    }
    if m.features.is_empty() {
        return bad("no features".into());
    }
    match m.task {
        Task::Classification if m.classes.len() < 2 => {
            return bad("fewer than two classes".into());
        }
        Task::Regression if !m.classes.is_empty() => {
            return bad("a regressor has no classes".into());
        }
        _ => {}
    }
    if has_duplicates(&m.features) {
        return bad("duplicate feature names".into());
    }
    if has_duplicates(&m.classes) {
        return bad("duplicate class labels".into());
    }
    // An imported model without reference rows has no drift baseline.
    let drift_off = m.algorithm == Algorithm::Imported && m.feature_stats.is_empty();
    if m.feature_stats.len() != m.features.len() && !drift_off {
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
        Algorithm::Imported => Err(ArtifactError::Invalid(
            "an imported model's payload is not smartcore's".into(),
        )),
    }
}
