//! From an [`Imported`] model to a normal treeserve artifact: names, reference rows, the
//! parity check against the framework's own outputs, golden rows, drift baseline, metrics.

pub use super::reference::Table;
use super::reference::{check_parity, metrics_of, reference_rows};
use super::{ImportError, Imported, ImportedTask};
use crate::model::ensemble::Ensemble;
use crate::model::tree::TreeLimits;
use crate::model::{
    Algorithm, GoldenRow, ImportInfo, Manifest, Model, Parity, Task, TrainingData,
    encode_artifact_as,
};

/// Relative tolerance of the parity check: `|ours - theirs| <= TOL · max(|theirs|, 1e-3)`.
pub const PARITY_TOLERANCE: f64 = crate::model::GOLDEN_TOLERANCE;
/// Golden rows kept from the reference rows.
pub const MAX_GOLDEN_ROWS: usize = 1000;

/// What the user says about the model beyond its file.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Model name in the registry.
    pub name: String,
    /// Feature names (required where the file has none, e.g. ONNX; else `f0..`).
    pub features: Option<Vec<String>>,
    /// Class labels (else the file's, else `0..K-1`).
    pub classes: Option<Vec<String>>,
    /// Target name (the answer's key is `predicted_<target>`; default `class` or `value`).
    pub target: Option<String>,
    /// Rows to check parity on and keep as golden rows and drift baseline.
    pub reference: Option<Table>,
    /// The framework's own outputs on the reference rows (what `treeserve predict
    /// --probabilities` writes: `predicted_<target>`, then `p_<class>` columns).
    pub expected: Option<Table>,
    /// The model file's name.
    pub file_name: String,
    /// The model file's SHA-256, hex.
    pub file_sha256: String,
    /// The manifest's creation time (RFC 3339); `None`: now. A registry that builds the
    /// same source again (an MLflow flavor) passes the source's time, so every build of it
    /// is the same bytes.
    pub created: Option<String>,
}

/// An imported model as an artifact, with what the import found.
#[derive(Debug)]
pub struct Built {
    /// The artifact bytes.
    pub artifact: Vec<u8>,
    /// The validated model (loaded from `artifact`).
    pub model: Model,
    /// Parity with the framework (`None`: not checked).
    pub parity: Option<Parity>,
    /// Warnings for the user.
    pub warnings: Vec<String>,
}

/// Builds the artifact of `imported`: names, checks parity on the reference rows, keeps
/// golden rows, drift baseline and metrics, and loads the result as any artifact is loaded.
pub fn build(imported: Imported, opts: ImportOptions) -> Result<Built, ImportError> {
    let mut warnings = imported.warnings.clone();
    let e = &imported.ensemble;
    let f = e.num_features as usize;
    let features = feature_names(&imported, &opts, &mut warnings)?;
    let task = match imported.task {
        ImportedTask::Classification => Task::Classification,
        ImportedTask::Regression => Task::Regression,
    };
    let classes = match task {
        Task::Regression => {
            if opts.classes.is_some() {
                return Err(ImportError::Usage(
                    "--classes: this model is a regressor".into(),
                ));
            }
            Vec::new()
        }
        Task::Classification => class_labels(&imported, &opts)?,
    };
    let target = opts.target.clone().unwrap_or_else(|| {
        match task {
            Task::Classification => "class",
            Task::Regression => "value",
        }
        .to_owned()
    });
    if !crate::name::valid_name(&opts.name) {
        return Err(ImportError::Usage(format!(
            "--name {:?}: use letters, digits, '.', '_' and '-'",
            opts.name
        )));
    }
    // Limits beyond a default load's: what the frameworks write.
    let limits = TreeLimits {
        max_depth: 4096,
        max_trees: 1 << 16,
        ..TreeLimits::default()
    };
    let (payload, format) = crate::model::ensemble_payload(e, &limits)?;
    let flat = crate::model::flat::FlatEnsemble::compile(e)?;
    let k = flat.num_scores();
    let mut scratch = crate::model::flat::Scratch::default();
    let mut predict = |row: &[f64], out: &mut Vec<f64>| {
        out.resize(k, 0.0);
        flat.predict(row, &mut scratch, out)
    };

    // Reference rows: parity, golden rows, drift baseline, metrics.
    let (rows, actual) = match &opts.reference {
        Some(t) => reference_rows(
            t,
            &features,
            imported.missing_aware,
            &target,
            task,
            &classes,
        )?,
        None => (probe_rows(e, imported.missing_aware), None),
    };
    let mut outputs = Vec::with_capacity(rows.len());
    let mut scores = Vec::new();
    for row in &rows {
        let class = predict(row, &mut scores);
        outputs.push((class, scores.clone()));
    }
    let parity = match (&opts.reference, &opts.expected) {
        (Some(_), Some(exp)) => Some(check_parity(exp, &outputs, &target, task, &classes)?),
        (None, Some(_)) => {
            return Err(ImportError::Usage("--expected needs --reference".into()));
        }
        (Some(r), None) => {
            warnings.push(format!(
                "parity NOT checked: give --expected with the framework's own outputs on {} \
                 (what `treeserve predict --probabilities` writes) to have every row compared",
                r.name
            ));
            None
        }
        (None, None) => {
            warnings.push(
                "parity NOT checked and drift is off: give --reference ROWS.csv --expected \
                 OUT.csv (the framework's outputs on those rows)"
                    .into(),
            );
            None
        }
    };
    let golden = rows
        .iter()
        .zip(&outputs)
        .take(MAX_GOLDEN_ROWS)
        .map(|(r, (c, s))| GoldenRow {
            features: r.clone(),
            class: *c as u32,
            probabilities: s.clone(),
        })
        .collect();
    let feature_stats = match &opts.reference {
        Some(_) => (0..f)
            .map(|j| crate::train::feature_stats(&features[j], rows.iter().map(|r| r[j])))
            .collect(),
        None => Vec::new(),
    };
    let (metrics, regression_metrics) = metrics_of(task, &classes, actual.as_deref(), &outputs);
    let reference = opts.reference.as_ref();
    let manifest = Manifest {
        name: opts.name.clone(),
        created: opts.created.clone().unwrap_or_else(|| {
            humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
        }),
        treeserve_version: env!("CARGO_PKG_VERSION").into(),
        algorithm: Algorithm::Imported,
        hyper_parameters: None,
        features,
        target,
        classes,
        training: TrainingData {
            source: reference.map_or("(no reference rows)".into(), |t| t.name.clone()),
            sha256: reference.map_or(String::new(), |t| t.sha256.clone()),
            rows: rows.len() as u64 * u64::from(reference.is_some()),
            train_rows: 0,
            test_rows: rows.len() as u64 * u64::from(reference.is_some()),
            test_size: 1.0,
            split_seed: 0,
            split: Default::default(),
            dataset: None,
            gated: false,
        },
        metrics,
        feature_stats,
        golden,
        leaf_counts: Vec::new(),
        payload_sha256: String::new(),
        task,
        missing_aware: imported.missing_aware,
        import: Some(ImportInfo {
            format: imported.format.into(),
            source: imported.source.clone(),
            objective: imported.objective.clone(),
            file: opts.file_name.clone(),
            sha256: opts.file_sha256.clone(),
            parity: parity.clone(),
            warnings: warnings.clone(),
        }),
        regression_metrics,
    };
    let artifact = encode_artifact_as(&manifest, &payload, format);
    let model = Model::from_bytes(&artifact, 0, &limits)
        .map_err(|err| ImportError::Usage(format!("the built artifact does not load: {err}")))?;
    Ok(Built {
        artifact,
        model,
        parity,
        warnings,
    })
}

fn feature_names(
    imported: &Imported,
    opts: &ImportOptions,
    warnings: &mut Vec<String>,
) -> Result<Vec<String>, ImportError> {
    let f = imported.ensemble.num_features as usize;
    let names = match (&opts.features, &imported.features) {
        (Some(given), Some(file)) if given != file => {
            return Err(ImportError::Usage(format!(
                "--features [{}] differs from the names in the file [{}]; leave --features out",
                given.join(","),
                file.join(",")
            )));
        }
        (Some(given), _) => given.clone(),
        (None, Some(file)) => file.clone(),
        (None, None) => {
            warnings.push(format!(
                "the file names no features: they are f0..f{} (name them with --features)",
                f.saturating_sub(1)
            ));
            (0..f).map(|i| format!("f{i}")).collect()
        }
    };
    if names.len() != f {
        return Err(ImportError::Usage(format!(
            "the model reads {f} features; {} names given",
            names.len()
        )));
    }
    let mut sorted: Vec<&String> = names.iter().collect();
    sorted.sort();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(ImportError::Usage(format!(
            "feature {:?} is named twice",
            w[0]
        )));
    }
    if let Some(n) = names.iter().find(|n| n.is_empty()) {
        return Err(ImportError::Usage(format!(
            "a feature name is empty: {n:?}"
        )));
    }
    Ok(names)
}

fn class_labels(imported: &Imported, opts: &ImportOptions) -> Result<Vec<String>, ImportError> {
    let k = imported.ensemble.num_scores();
    let labels = match (&opts.classes, &imported.classes) {
        (Some(given), _) => given.clone(),
        (None, Some(file)) => file.clone(),
        (None, None) => (0..k).map(|c| c.to_string()).collect(),
    };
    if labels.len() != k {
        return Err(ImportError::Usage(format!(
            "the model has {k} classes; {} labels given",
            labels.len()
        )));
    }
    let mut sorted: Vec<&String> = labels.iter().collect();
    sorted.sort();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(ImportError::Usage("class labels must differ".into()));
    }
    Ok(labels)
}

/// Rows to keep as golden rows when the user gives none: zeros, and values around the
/// trees' first thresholds, so a later change of decoding or evaluation cannot go unseen.
fn probe_rows(e: &Ensemble, missing_aware: bool) -> Vec<Vec<f64>> {
    use crate::model::ensemble::{Node, Test};
    let f = e.num_features as usize;
    let mut thresholds = Vec::new();
    for tree in e.trees.iter().take(64) {
        for node in tree.nodes.iter().take(16) {
            if let Node::Split(s) = node
                && let Test::Lt(t) | Test::Le(t) | Test::Ge(t) | Test::Gt(t) = s.test
            {
                thresholds.push((s.feature as usize, t));
            }
        }
    }
    let mut rows = vec![vec![0.0; f]];
    for r in 0..16usize {
        let mut row = vec![0.0; f];
        for (j, v) in row.iter_mut().enumerate() {
            let pick = thresholds
                .iter()
                .filter(|(feat, _)| *feat == j)
                .nth(r % 4)
                .map_or(r as f64 - 8.0, |(_, t)| *t);
            let probe = match r % 3 {
                0 => pick,
                1 => pick.next_up(),
                _ => pick.next_down(),
            };
            *v = if probe.is_finite() { probe } else { pick };
        }
        if missing_aware && r % 5 == 4 {
            row[r % f] = f64::NAN;
        }
        rows.push(row);
    }
    rows
}
