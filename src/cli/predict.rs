//! `treeserve predict`: score a CSV offline with a registry model, on every core.

use std::path::PathBuf;

use super::flags::RegistryArg;
use super::{CommandError, io_err};
use crate::batch::ModelSource;
use crate::model::Model;
use crate::model::tree::TreeLimits;

/// `treeserve predict`.
#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// Registry.
    #[command(flatten)]
    pub registry: RegistryArg,
    /// Model (default: the registry's only model).
    #[arg(long)]
    pub model: Option<String>,
    /// Alias to score with.
    #[arg(long, default_value = crate::registry::DEFAULT_ALIAS, conflicts_with = "version")]
    pub alias: String,
    /// Exact registry version to score with.
    #[arg(long)]
    pub version: Option<u64>,
    /// Input CSV with a header naming the model's features (`-`: stdin).
    #[arg(long)]
    pub input: PathBuf,
    /// Output CSV (`-`: stdout). A regular file (or a new one; through a symbolic link, its
    /// target) is written to `PATH.partial` and renamed over it when complete; a device or
    /// FIFO (e.g. `/dev/stdout`) is written in place; a directory is refused.
    #[arg(long)]
    pub output: PathBuf,
    /// Add a `p_<class>` column per class.
    #[arg(long)]
    pub probabilities: bool,
    /// Column copied to the output first, when the input has it.
    #[arg(long, default_value = "Id")]
    pub id_column: String,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Rows per chunk handed to a worker.
    #[arg(long, default_value_t = crate::batch::DEFAULT_CHUNK_ROWS)]
    pub chunk_rows: usize,
}

/// Runs `treeserve predict`.
pub(super) fn predict(a: PredictArgs) -> Result<(), CommandError> {
    use std::io::IsTerminal;
    let reg = a.registry.open()?;
    let name = match a.model {
        Some(m) => m,
        None => match reg.models()?.as_slice() {
            [one] => one.clone(),
            [] => return Err(CommandError::Usage("the registry holds no model".into())),
            many => {
                return Err(CommandError::Usage(format!(
                    "the registry holds several models ({}); name one with --model",
                    many.join(", ")
                )));
            }
        },
    };
    let version = match a.version {
        Some(v) => v,
        None => reg.resolve(&name, &a.alias)?,
    };
    let bytes = reg.read(&name, version)?;
    let load_error = |source| CommandError::Artifact {
        path: format!("{name} version {version}"),
        source,
    };
    let opts = crate::batch::PredictOptions {
        threads: a
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        chunk_rows: a.chunk_rows,
        probabilities: a.probabilities,
        id_column: Some(a.id_column),
        progress: std::io::stderr().is_terminal(),
    };
    let input: Box<dyn std::io::Read + Send> = if a.input.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(&a.input).map_err(io_err(&a.input))?)
    };
    // The model loads on its own thread while the CSV is read and its first chunks parsed
    // (the columns from the manifest, read unchecked; the load checks it all).
    let Some(manifest) = crate::model::read_manifest_unchecked(&bytes) else {
        // Not even a manifest: the load says what is wrong.
        return Err(Model::for_batches(&bytes, version, &TreeLimits::default())
            .map_or_else(load_error, |_| {
                CommandError::Usage("the model did not load".into())
            }));
    };
    let slot = std::sync::OnceLock::new();
    let model = ModelSource::Loading {
        manifest: &manifest,
        slot: &slot,
    };
    let (loaded, summary) = std::thread::scope(|s| {
        let loader = s.spawn(|| {
            // Whatever happens, the workers learn the load is over.
            let _over = Over(&slot);
            let m = Model::for_batches(&bytes, version, &TreeLimits::default());
            m.map(|m| {
                let _ = slot.set(Some(m));
            })
        });
        let summary = if a.output.as_os_str() == "-" {
            crate::batch::predict_csv_from(model, input, std::io::stdout(), &opts)
                .map_err(super::stdout_closed)
        } else {
            super::output::write_output(&a.output, |file| {
                crate::batch::predict_csv_from(model, input, file, &opts)
                    .map_err(super::stdout_closed)
            })
        };
        (loader.join(), summary)
    });
    // A failed load is the error, whatever the rows did meanwhile.
    match loaded {
        Ok(Err(e)) => return Err(load_error(e)),
        Err(panic) => std::panic::resume_unwind(panic),
        Ok(Ok(())) => {}
    }
    let summary = summary?;
    eprintln!(
        "predicted {} rows with {name} version {version} in {:.2} s ({:.0} rows/s, {} threads)",
        summary.rows,
        summary.elapsed.as_secs_f64(),
        summary.rows_per_second(),
        summary.threads
    );
    Ok(())
}

/// Marks a load over when dropped: a model that did not load (an error or a panic) is
/// `None`, so no worker waits for it.
struct Over<'a>(&'a std::sync::OnceLock<Option<Model>>);

impl Drop for Over<'_> {
    fn drop(&mut self) {
        let _ = self.0.set(None);
    }
}
