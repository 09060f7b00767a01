//! `treeserve import`: another framework's model file → a treeserve artifact, with its
//! parity to the framework checked on reference rows.

use std::path::{Path, PathBuf};

use super::flags::RegistryArg;
use super::registry::publish_artifact;
use super::{CommandError, io_err};
use crate::import::build::{ImportOptions, Table};
use crate::import::detect::{self, Format};

/// Formats on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// Decide by the file's content.
    Auto,
    /// XGBoost `save_model` JSON or UBJSON.
    Xgboost,
    /// LightGBM `save_model` text.
    Lightgbm,
    /// ONNX tree ensembles (skl2onnx, onnxmltools).
    Onnx,
}

/// `treeserve import`.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("destination").required(true).args(["publish", "output"]))]
pub struct ImportArgs {
    /// The model file: XGBoost JSON/UBJSON, LightGBM text or ONNX (never a pickle).
    pub model_file: PathBuf,
    /// Model name in the registry.
    #[arg(long)]
    pub name: String,
    /// The file's format.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: FormatArg,
    /// Feature names in the model's order (required where the file has none, e.g. ONNX).
    #[arg(long, value_delimiter = ',')]
    pub features: Option<Vec<String>>,
    /// Class labels in the model's order (default: the file's, else 0..K-1).
    #[arg(long, value_delimiter = ',')]
    pub classes: Option<Vec<String>>,
    /// Target name: the answer's key is `predicted_<target>` (default `class`, or `value`
    /// for a regressor).
    #[arg(long)]
    pub target: Option<String>,
    /// CSV of rows (a header naming the features; an empty cell is a missing value): the
    /// golden rows and drift baseline, and with a target column the metrics.
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// CSV of the framework's own outputs on the reference rows, as `treeserve predict
    /// --probabilities` writes them; the import is refused if any differs beyond 1e-6.
    #[arg(long, requires = "reference")]
    pub expected: Option<PathBuf>,
    /// Artifact to write.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Publish the model to the registry (`--registry`, or the directory given here).
    #[arg(long, num_args = 0..=1, value_name = "REGISTRY")]
    pub publish: Option<Option<crate::registry::Location>>,
    /// Registry (for --publish).
    #[command(flatten)]
    pub registry: RegistryArg,
    /// With --publish, point this alias at the new version.
    #[arg(long, requires = "publish")]
    pub alias: Option<String>,
    /// Largest model file read, in bytes.
    #[arg(long, default_value_t = 512 << 20)]
    pub max_model_bytes: u64,
}

/// Runs `treeserve import`.
pub(super) fn import(a: ImportArgs) -> Result<(), CommandError> {
    let path = a.model_file.display().to_string();
    let err = |source| CommandError::Import {
        path: path.clone(),
        source,
    };
    let bytes = read_capped(&a.model_file, a.max_model_bytes)?;
    let forced = match a.format {
        FormatArg::Auto => None,
        FormatArg::Xgboost => Some(Format::Xgboost),
        FormatArg::Lightgbm => Some(Format::Lightgbm),
        FormatArg::Onnx => Some(Format::Onnx),
    };
    let format = detect::detect(&bytes, forced).map_err(err)?;
    let imported = crate::import::read(format, &bytes).map_err(err)?;
    let table = |p: &Option<PathBuf>| -> Result<Option<Table>, CommandError> {
        let Some(p) = p else { return Ok(None) };
        let b = std::fs::read(p).map_err(io_err(p))?;
        Table::parse(&p.display().to_string(), &b)
            .map(Some)
            .map_err(|source| CommandError::Import {
                path: p.display().to_string(),
                source,
            })
    };
    let opts = ImportOptions {
        name: a.name.clone(),
        features: a.features.clone(),
        classes: a.classes.clone(),
        target: a.target.clone(),
        reference: table(&a.reference)?,
        expected: table(&a.expected)?,
        file_name: a
            .model_file
            .file_name()
            .map_or(path.clone(), |n| n.to_string_lossy().into_owned()),
        file_sha256: crate::model::sha256_hex(&bytes),
        created: None,
    };
    let (source, objective) = (imported.source.clone(), imported.objective.clone());
    let started = std::time::Instant::now();
    let built = crate::import::build::build(imported, opts).map_err(err)?;
    let m = &built.model;
    eprintln!(
        "imported {path} ({source}, {objective}): {} trees, {} nodes, {} features, {} in {:.2} s",
        m.num_trees(),
        m.num_nodes(),
        m.num_features(),
        if m.is_regression() {
            "a regressor".to_string()
        } else {
            format!("classes {}", m.classes().join(", "))
        },
        started.elapsed().as_secs_f64()
    );
    match &built.parity {
        Some(p) => eprintln!(
            "parity with the framework: {} rows, max abs difference {:e}, max rel {:e}",
            p.rows, p.max_abs, p.max_rel
        ),
        None => eprintln!("PARITY NOT CHECKED (see the warning below)"),
    }
    for w in &built.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(out) = &a.output {
        write_atomically(out, &built.artifact)?;
        eprintln!("wrote {} ({} bytes)", out.display(), built.artifact.len());
    }
    if let Some(publish) = &a.publish {
        let reg = match publish {
            Some(dir) => crate::registry::open(dir)?,
            None => a.registry.open()?,
        };
        publish_artifact(&*reg, &built.artifact, path, a.alias.as_deref())?;
    }
    Ok(())
}

fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, CommandError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut bytes = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    if bytes.len() as u64 > cap {
        return Err(CommandError::Usage(format!(
            "{}: larger than --max-model-bytes ({cap} bytes)",
            path.display()
        )));
    }
    Ok(bytes)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CommandError> {
    super::output::write_output(path, |mut file| {
        std::io::Write::write_all(&mut file, bytes).map_err(io_err(path))
    })
}
