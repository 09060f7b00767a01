//! The command line: clap definitions and the commands behind them.
//!
//! This file holds the top level: [`Cli`], the [`Command`] enum, [`run`] (which only
//! dispatches) and [`CommandError`]. Each command family has its own file owning its
//! arguments and commands (`train`, `data`, `registry`, `predict`, `remote`, `serve`);
//! `flags` holds the flag groups several commands flatten in. Every argument type is
//! re-exported here.

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::ServeConfig;
use crate::lifecycle::LifecycleError;
use crate::model::ArtifactError;
use crate::registry::RegistryError;
use crate::train::TrainError;

mod data;
mod flags;
mod help;
mod import;
mod live;
mod output;
mod predict;
mod registry;
mod remote;
mod serve;
mod train;

pub use data::{DataArgs, DataCommand, DataFileArgs};
pub use flags::{AlgorithmArg, CheckArgs, GateArgs, LabelColumns, RegistryArg, TrainParams};
pub use help::CompletionsArgs;
pub use import::{FormatArg, ImportArgs};
pub use predict::PredictArgs;
pub use registry::{ModelsArgs, PromoteArgs, PublishArgs, RollbackArgs};
pub use remote::{HealthArgs, ScoreArgs, SmokeArgs};
pub use train::{ReportArgs, RetrainArgs, TrainArgs};

/// The exit codes, listed at the end of `treeserve --help`.
pub const EXIT_CODES: &str = "Exit codes:
  0    success
  1    an error: one line on stderr says what is wrong and what to do (--verbose or
       TREESERVE_BACKTRACE=1 print its causes for a bug report)
  2    bad arguments; `serve` with nothing to serve (a missing registry, no model with the
       alias: pass --wait-for-model to wait instead); training over its memory limit
  3    the gate did not promote the model (train --publish, retrain)
  4    the data checks rejected the data
  141  the reader of the output went away (`... | head`)";

/// treeserve: train tree models, keep them in a registry, serve them over HTTP.
#[derive(Debug, Parser)]
#[command(
    name = "treeserve",
    version,
    about,
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Log format on stderr (the level comes from `TREESERVE_LOG`, default `info`).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "TREESERVE_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// On an error, print its whole chain of causes, and on a crash a backtrace (for bug
    /// reports; also `TREESERVE_BACKTRACE=1`). Without it, an error is one line.
    #[arg(long, global = true)]
    pub verbose: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// For people.
    Text,
    /// One JSON object a line, for log pipelines.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model from a CSV and write an artifact (and optionally publish it).
    Train(TrainArgs),
    /// Import an XGBoost, LightGBM or ONNX (scikit-learn) model file as an artifact, its
    /// answers checked against the framework's own.
    Import(ImportArgs),
    /// Publish an artifact as the next version of its model.
    Publish(PublishArgs),
    /// List models, versions, aliases and metrics.
    Models(ModelsArgs),
    /// Point an alias at a version.
    Promote(PromoteArgs),
    /// Move an alias back to the version it pointed to before.
    Rollback(RollbackArgs),
    /// Serve the version an alias points to over HTTP.
    Serve(Box<ServeConfig>),
    /// Post rows to a running server's /score and print the answers.
    Score(ScoreArgs),
    /// Score a CSV of any size offline, on every core: rows in, predictions out, in order.
    Predict(PredictArgs),
    /// Check a local server's readiness (GET /health/ready); exit 0 when ready. The
    /// container image's health check.
    Health(HealthArgs),
    /// Release smoke test of a running server: readiness, the canonical request, every
    /// model's golden rows over /score and V2, and /metrics; exit non-zero on any failure.
    Smoke(SmokeArgs),
    /// Datasets in the registry: add (checked, immutable, content-addressed), check, list.
    Data(DataArgs),
    /// Continuous training: new CSV files in a drop folder become dataset versions, are
    /// checked, trained on, and go through the gate.
    Retrain(RetrainArgs),
    /// Write a model's self-contained HTML report: metric trends, confusion matrices, gate
    /// decisions, data statistics.
    Report(ReportArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Print the man page (roff).
    Man,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Training failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// A registry operation failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// An artifact was refused.
    #[error("{path}: {source}")]
    Artifact {
        /// The file.
        path: String,
        /// Why.
        source: ArtifactError,
    },
    /// The server failed.
    #[error(transparent)]
    Serve(#[from] crate::http::ServeError),
    /// The client failed.
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
    /// A model file could not be imported.
    #[error("{path}: {source}")]
    Import {
        /// The file.
        path: String,
        /// Why.
        source: crate::import::ImportError,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
    /// The server is not ready.
    #[error("not ready: {0}")]
    NotReady(crate::client::ClientError),
    /// Smoke checks failed.
    #[error("{0} smoke check(s) failed")]
    Smoke(usize),
    /// Batch scoring failed.
    #[error(transparent)]
    Batch(#[from] crate::batch::BatchError),
    /// A lifecycle step failed.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// The gate did not promote the model.
    #[error("{0}")]
    GateRefused(String),
    /// The reader of the output went away (`treeserve ... | head`): the command stops
    /// quietly, with the status of a process killed by SIGPIPE.
    #[error("the output's reader went away")]
    ClosedPipe,
}

impl CommandError {
    /// The process exit code: 3 when the gate did not promote, 4 when data checks
    /// rejected the data, 141 (SIGPIPE's) when the output's reader went away, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            CommandError::ClosedPipe => 141,
            CommandError::GateRefused(_) => 3,
            CommandError::Serve(crate::http::ServeError::NothingToServe(_)) => 2,
            CommandError::Lifecycle(LifecycleError::Rejected(_)) => 4,
            CommandError::Train(crate::train::TrainError::Memory(_))
            | CommandError::Lifecycle(LifecycleError::Train(crate::train::TrainError::Memory(_))) => {
                2
            }
            _ => 1,
        }
    }
}

fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> CommandError + '_ {
    move |source| CommandError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A failed write of a command's output: a closed pipe is [`CommandError::ClosedPipe`].
fn output_error(source: std::io::Error) -> CommandError {
    if source.kind() == std::io::ErrorKind::BrokenPipe {
        CommandError::ClosedPipe
    } else {
        CommandError::Io {
            path: "stdout".into(),
            source,
        }
    }
}

/// Batch scoring's error, a closed pipe on the output being [`CommandError::ClosedPipe`].
fn stdout_closed(e: crate::batch::BatchError) -> CommandError {
    match e {
        crate::batch::BatchError::Io { source, .. }
            if source.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            CommandError::ClosedPipe
        }
        e => e.into(),
    }
}

/// Writes a command's whole output to stdout.
fn print_out(out: &[u8]) -> Result<(), CommandError> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out)
        .and_then(|()| stdout.flush())
        .map_err(output_error)
}

/// Runs a command.
pub fn run(cli: Cli) -> Result<(), CommandError> {
    match cli.command {
        Command::Train(a) => train::train(a),
        Command::Import(a) => import::import(a),
        Command::Publish(a) => registry::publish(a),
        Command::Models(a) => registry::models(a),
        Command::Data(a) => data::data(a.command),
        Command::Retrain(a) => train::retrain(a),
        Command::Report(a) => train::report(a),
        Command::Promote(a) => registry::promote(a),
        Command::Rollback(a) => registry::rollback(a),
        Command::Serve(config) => serve::serve(*config),
        Command::Score(a) => remote::score(a),
        Command::Predict(a) => predict::predict(a),
        Command::Health(a) => remote::health(a),
        Command::Smoke(a) => remote::smoke(a),
        Command::Completions(a) => help::completions(a),
        Command::Man => help::man(),
    }
}
