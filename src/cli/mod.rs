//! The command line: clap definitions and the commands behind them.

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::ServeConfig;
use crate::data::DatasetStore;
use crate::data::checks::CheckConfig;
use crate::lifecycle::{GateConfig, LifecycleError};
use crate::model::tree::TreeLimits;
use crate::model::{Algorithm, ArtifactError, Model};
use crate::registry::{DEFAULT_ALIAS, FsRegistry, Registry, RegistryError};
use crate::train::{Criterion, TrainConfig, TrainError};

mod serve;

/// treeserve: train tree models, keep them in a registry, serve them over HTTP.
#[derive(Debug, Parser)]
#[command(name = "treeserve", version, about)]
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
    /// Publish an artifact as the next version of its model.
    Publish(PublishArgs),
    /// List models, versions, aliases and metrics.
    Models(ModelsArgs),
    /// Point an alias at a version.
    Promote(PromoteArgs),
    /// Move an alias back to the version it pointed to before.
    Rollback(RollbackArgs),
    /// Serve the version an alias points to over HTTP.
    Serve(ServeConfig),
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
}

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
    /// Output CSV (`-`: stdout); written to a temporary file and renamed when complete.
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
    #[arg(long, default_value_t = 16 * 1024)]
    pub chunk_rows: usize,
}

/// `treeserve health`.
#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// Server base URL (default: loopback at the port of TREESERVE_LISTEN, else 8080).
    #[arg(long)]
    pub url: Option<String>,
    /// Give up after this long.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
}

/// `treeserve smoke`.
#[derive(Debug, clap::Args)]
pub struct SmokeArgs {
    /// Server base URL, e.g. http://127.0.0.1:8080.
    pub url: String,
    /// Also write the results as JUnit XML to this file.
    #[arg(long)]
    pub junit: Option<PathBuf>,
}

/// Registry location, shared by the registry commands.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArg {
    /// Registry directory.
    #[arg(long, env = "TREESERVE_REGISTRY", default_value = "models")]
    pub registry: PathBuf,
}

/// Algorithms on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AlgorithmArg {
    /// One decision tree.
    DecisionTree,
    /// A random forest.
    RandomForest,
}

/// `treeserve train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// CSV file with a header row.
    #[arg(long, required_unless_present = "dataset")]
    pub data: Option<PathBuf>,
    /// A registry dataset version instead of a file: NAME (latest), NAME:VERSION or
    /// NAME@SHA256-PREFIX. Rows are then split by content (see docs/lifecycle.md).
    #[arg(long, conflicts_with = "data")]
    pub dataset: Option<String>,
    /// Model name (default: the dataset's name, or the CSV file name, lower case, without
    /// extension).
    #[arg(long)]
    pub name: Option<String>,
    /// Target (label) column.
    #[arg(long, default_value = "Species")]
    pub target: String,
    /// Identifier column to ignore when present; `""` for none.
    #[arg(long, default_value = "Id")]
    pub id_column: String,
    /// Learner settings.
    #[command(flatten)]
    pub params: TrainParams,
    /// Artifact to write (default: NAME.tsm in the current directory; none with --publish).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Publish the model to the registry (`--registry`, or the directory given here).
    /// Without --alias it goes through the gate: published under `staging`, promoted to
    /// `production` only if it passes (exit code 3 if not).
    #[arg(long, num_args = 0..=1, value_name = "REGISTRY")]
    pub publish: Option<Option<PathBuf>>,
    /// Registry (for --dataset and --publish).
    #[command(flatten)]
    pub registry: RegistryArg,
    /// With --publish, point this alias at the new version directly, without the gate.
    #[arg(long)]
    pub alias: Option<String>,
    /// Gate thresholds.
    #[command(flatten)]
    pub gate: GateArgs,
}

/// Learner settings, shared by `train` and `retrain`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainParams {
    /// Learning algorithm.
    #[arg(long, value_enum, default_value = "decision-tree")]
    pub algorithm: AlgorithmArg,
    /// Split criterion.
    #[arg(long, value_enum, default_value = "gini")]
    pub criterion: Criterion,
    /// Maximum tree depth (default: unlimited).
    #[arg(long)]
    pub max_depth: Option<u16>,
    /// Minimum samples at a leaf.
    #[arg(long, default_value_t = 1)]
    pub min_samples_leaf: usize,
    /// Minimum samples to split a node.
    #[arg(long, default_value_t = 2)]
    pub min_samples_split: usize,
    /// Trees in a random forest.
    #[arg(long, default_value_t = 100)]
    pub n_trees: u16,
    /// Features tried at each split of a forest (default: √features).
    #[arg(long)]
    pub max_features: Option<usize>,
    /// Fraction of rows held out for the test metrics (and the gate).
    #[arg(long, default_value_t = 0.4)]
    pub test_size: f64,
    /// Seed of the split and the learner.
    #[arg(long, default_value_t = 1984)]
    pub seed: u64,
}

impl TrainParams {
    fn config(&self) -> TrainConfig {
        TrainConfig {
            algorithm: match self.algorithm {
                AlgorithmArg::DecisionTree => Algorithm::DecisionTree,
                AlgorithmArg::RandomForest => Algorithm::RandomForest,
            },
            criterion: self.criterion,
            max_depth: self.max_depth,
            min_samples_leaf: self.min_samples_leaf,
            min_samples_split: self.min_samples_split,
            n_trees: self.n_trees,
            max_features: self.max_features,
            test_size: self.test_size,
            seed: self.seed,
            ..TrainConfig::default()
        }
    }
}

/// The validation gate's thresholds (flags override a `--gate` file).
#[derive(Debug, Clone, clap::Args)]
pub struct GateArgs {
    /// JSON file of thresholds: {"min_accuracy": 0.9, "min_recall": 0.8, "tolerance": 0.02}.
    #[arg(long, value_name = "FILE")]
    pub gate: Option<PathBuf>,
    /// Least test accuracy on the held-out rows (default 0).
    #[arg(long)]
    pub min_accuracy: Option<f64>,
    /// Least recall of every class on the held-out rows (default 0).
    #[arg(long)]
    pub min_recall: Option<f64>,
    /// How much worse than the champion (accuracy, macro F1) the candidate may be
    /// (default 0.01).
    #[arg(long)]
    pub tolerance: Option<f64>,
}

impl GateArgs {
    fn config(&self) -> Result<GateConfig, CommandError> {
        let mut c = match &self.gate {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(io_err(path))?;
                GateConfig::from_json(&bytes)
                    .map_err(|e| CommandError::Usage(format!("{}: {e}", path.display())))?
            }
            None => GateConfig::default(),
        };
        if let Some(v) = self.min_accuracy {
            c.min_accuracy = v;
        }
        if let Some(v) = self.min_recall {
            c.min_recall = v;
        }
        if let Some(v) = self.tolerance {
            c.tolerance = v;
        }
        c.validate().map_err(CommandError::Usage)?;
        Ok(c)
    }
}

/// Data-check thresholds.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// A value is far outside when more than this many range widths beyond the previous
    /// version's range.
    #[arg(long, default_value_t = CheckConfig::default().far_outside)]
    pub far_outside: f64,
    /// Largest fraction of rows with far-outside values before it is critical.
    #[arg(long, default_value_t = CheckConfig::default().max_far_fraction)]
    pub max_far_fraction: f64,
    /// Largest ratio of the biggest class to the smallest before a warning.
    #[arg(long, default_value_t = CheckConfig::default().max_imbalance)]
    pub max_imbalance: f64,
}

impl CheckArgs {
    fn config(&self) -> CheckConfig {
        CheckConfig {
            far_outside: self.far_outside,
            max_far_fraction: self.max_far_fraction,
            max_imbalance: self.max_imbalance,
        }
    }
}

/// `treeserve data`.
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DataCommand,
}

/// `treeserve data` commands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Check a CSV and store it as a new, immutable dataset version (exit 4 if the checks
    /// find critical problems: nothing is stored).
    Add(DataFileArgs),
    /// Run the data checks on a CSV against the dataset's latest version; store nothing.
    Check(DataFileArgs),
    /// List a dataset's versions (or every dataset).
    List {
        /// Dataset name.
        name: Option<String>,
        /// Registry.
        #[command(flatten)]
        registry: RegistryArg,
    },
}

/// A CSV for a dataset.
#[derive(Debug, clap::Args)]
pub struct DataFileArgs {
    /// CSV file with a header row.
    pub file: PathBuf,
    /// Dataset name.
    #[arg(long)]
    pub name: String,
    /// Registry.
    #[command(flatten)]
    pub registry: RegistryArg,
    /// Label column (of the first version; later versions keep its schema).
    #[arg(long, default_value = "Species")]
    pub target: String,
    /// Identifier column, ignored for training.
    #[arg(long, default_value = "Id")]
    pub id_column: String,
    /// The file holds new rows: the version is the latest version's rows plus these.
    #[arg(long)]
    pub append: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Check thresholds.
    #[command(flatten)]
    pub checks: CheckArgs,
}

impl DataFileArgs {
    /// The rows of `table` (read from `--file`) offered to the dataset.
    fn rows<'a>(&'a self, table: &'a crate::data::Table) -> crate::lifecycle::NewRows<'a> {
        crate::lifecycle::NewRows {
            name: &self.name,
            table,
            target: &self.target,
            id_column: (!self.id_column.is_empty()).then_some(self.id_column.as_str()),
            append: self.append,
        }
    }
}

/// `treeserve retrain`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["watch", "once"])))]
pub struct RetrainArgs {
    /// Model and dataset name.
    #[arg(long)]
    pub name: String,
    /// Keep watching this drop folder for new CSV files.
    #[arg(long, value_name = "DROP_DIR")]
    pub watch: Option<PathBuf>,
    /// Process the files in this drop folder once and exit (for cron and CI): exit 0
    /// when every file was processed, 3 if a model was not promoted, 4 if a file was
    /// rejected.
    #[arg(long, value_name = "DROP_DIR")]
    pub once: Option<PathBuf>,
    /// Registry.
    #[command(flatten)]
    pub registry: RegistryArg,
    /// Label column (for the first dataset version).
    #[arg(long, default_value = "Species")]
    pub target: String,
    /// Identifier column, ignored for training.
    #[arg(long, default_value = "Id")]
    pub id_column: String,
    /// How often the folder is listed without file events.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub poll_interval: std::time::Duration,
    /// Learner settings.
    #[command(flatten)]
    pub params: TrainParams,
    /// Gate thresholds.
    #[command(flatten)]
    pub gate: GateArgs,
    /// Check thresholds.
    #[command(flatten)]
    pub checks: CheckArgs,
}

/// `treeserve report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Model name.
    pub name: String,
    /// Registry.
    #[command(flatten)]
    pub registry: RegistryArg,
    /// HTML file to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// `treeserve publish`.
#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// Artifact file.
    pub artifact: PathBuf,
    /// Registry.
    #[command(flatten)]
    pub registry: RegistryArg,
    /// Point this alias at the new version.
    #[arg(long)]
    pub alias: Option<String>,
    /// Publish only if the model has no version yet (seeding a shared registry); otherwise
    /// do nothing and succeed.
    #[arg(long)]
    pub if_empty: bool,
}

/// `treeserve models`.
#[derive(Debug, clap::Args)]
pub struct ModelsArgs {
    /// Only this model.
    pub name: Option<String>,
    /// With NAME: every version's metrics side by side.
    #[arg(long, requires = "name")]
    pub compare: bool,
    /// Registry.
    #[command(flatten)]
    pub registry: RegistryArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `treeserve promote`.
#[derive(Debug, clap::Args)]
pub struct PromoteArgs {
    /// Model name.
    pub name: String,
    /// Version to point the alias at.
    pub version: u64,
    /// Alias to move.
    #[arg(long, default_value = DEFAULT_ALIAS)]
    pub alias: String,
    /// Registry.
    #[command(flatten)]
    pub registry: RegistryArg,
}

/// `treeserve rollback`.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// Model name.
    pub name: String,
    /// Alias to move back.
    #[arg(long, default_value = DEFAULT_ALIAS)]
    pub alias: String,
    /// Registry.
    #[command(flatten)]
    pub registry: RegistryArg,
}

/// `treeserve score`.
#[derive(Debug, clap::Args)]
pub struct ScoreArgs {
    /// Server base URL, e.g. http://127.0.0.1:8080 (`/score` is appended unless the URL
    /// has a path).
    pub url: String,
    /// CSV file of rows (columns named like the model's features; others are ignored).
    #[arg(long, conflicts_with_all = ["json", "row"])]
    pub csv: Option<PathBuf>,
    /// A JSON body to send as is.
    #[arg(long, conflicts_with = "row")]
    pub json: Option<String>,
    /// One row as NAME=VALUE pairs separated by commas.
    #[arg(long)]
    pub row: Option<String>,
    /// Rows per request with --csv.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Ask for class probabilities.
    #[arg(long)]
    pub probabilities: bool,
    /// With --csv: the label column, to report accuracy.
    #[arg(long, default_value = "Species")]
    pub target: String,
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
}

impl CommandError {
    /// The process exit code: 3 when the gate did not promote, 4 when data checks
    /// rejected the data, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            CommandError::GateRefused(_) => 3,
            CommandError::Lifecycle(LifecycleError::Rejected(_)) => 4,
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

/// Runs a command.
pub fn run(cli: Cli) -> Result<(), CommandError> {
    match cli.command {
        Command::Train(a) => train(a),
        Command::Publish(a) => {
            let bytes = std::fs::read(&a.artifact).map_err(io_err(&a.artifact))?;
            if a.if_empty {
                let reg = FsRegistry::new(&a.registry.registry);
                let name = crate::model::read_manifest(&bytes)
                    .map_err(|source| CommandError::Artifact {
                        path: a.artifact.display().to_string(),
                        source,
                    })?
                    .name;
                let existing = match reg.versions(&name) {
                    Ok(v) => v,
                    Err(RegistryError::ModelNotFound(_)) => Vec::new(),
                    Err(e) => return Err(e.into()),
                };
                if let Some(last) = existing.last() {
                    eprintln!("{name} already has version {last}; nothing published (--if-empty)");
                    return Ok(());
                }
            }
            publish(
                &FsRegistry::new(a.registry.registry),
                &bytes,
                a.artifact.display().to_string(),
                a.alias.as_deref(),
            )
        }
        Command::Models(a) => {
            let reg = FsRegistry::new(a.registry.registry);
            match (&a.name, a.compare) {
                (Some(name), true) => {
                    print!("{}", crate::report::compare_text(&reg, name)?);
                    Ok(())
                }
                _ => models(&reg, a.name.as_deref(), a.json),
            }
        }
        Command::Data(a) => data(a.command),
        Command::Retrain(a) => retrain(a),
        Command::Report(a) => {
            let reg = FsRegistry::new(&a.registry.registry);
            reg.versions(&a.name)?;
            let html = crate::report::html(&reg, Some(&DatasetStore::new(&reg)), &a.name)?;
            std::fs::write(&a.out, html).map_err(io_err(&a.out))?;
            eprintln!("wrote {}", a.out.display());
            Ok(())
        }
        Command::Promote(a) => {
            let reg = FsRegistry::new(a.registry.registry);
            let rec = reg.set_alias(&a.name, &a.alias, a.version)?;
            println!("{} alias {} -> version {}", a.name, a.alias, rec.version);
            Ok(())
        }
        Command::Rollback(a) => {
            let reg = FsRegistry::new(a.registry.registry);
            let rec = reg.rollback(&a.name, &a.alias)?;
            println!(
                "{} alias {} -> version {} (rolled back)",
                a.name, a.alias, rec.version
            );
            Ok(())
        }
        Command::Serve(config) => serve::serve(config),
        Command::Score(a) => crate::client::score_command(&a).map_err(Into::into),
        Command::Predict(a) => predict(a),
        Command::Health(a) => {
            let url = a.url.unwrap_or_else(crate::smoke::default_health_url);
            crate::smoke::health(&url, a.timeout).map_err(CommandError::NotReady)
        }
        Command::Smoke(a) => {
            let report = crate::smoke::smoke(&a.url)?;
            print!("{}", report.text());
            if let Some(path) = &a.junit {
                std::fs::write(path, report.junit()).map_err(io_err(path))?;
            }
            match report.failures() {
                0 => Ok(()),
                n => Err(CommandError::Smoke(n)),
            }
        }
    }
}

fn train(a: TrainArgs) -> Result<(), CommandError> {
    if a.alias.is_some() && a.publish.is_none() {
        return Err(CommandError::Usage(
            "--alias needs --publish [REGISTRY]".into(),
        ));
    }
    let gate = a.gate.config()?;
    let registry = match &a.publish {
        Some(Some(dir)) => dir.clone(),
        _ => a.registry.registry.clone(),
    };
    let reg = FsRegistry::new(&registry);
    let base = TrainConfig {
        name: a.name.clone(),
        target: a.target.clone(),
        id_column: (!a.id_column.is_empty()).then(|| a.id_column.clone()),
        ..a.params.config()
    };
    let (trained, data) = match (&a.dataset, &a.data) {
        (Some(r), _) => {
            let store = DatasetStore::new(&FsRegistry::new(&a.registry.registry));
            let r = crate::data::DatasetRef::parse(r).map_err(LifecycleError::from)?;
            let (data, m) = crate::lifecycle::load_dataset(&store, &r)?;
            (crate::lifecycle::train_on(&data, &m, &base)?, data)
        }
        (None, Some(path)) => {
            let data = crate::train::load_csv(path, &base.target, base.id_column.as_deref())?;
            (crate::train::train_dataset(&data, &base)?, data)
        }
        (None, None) => return Err(CommandError::Usage("--data or --dataset is needed".into())),
    };
    let output = match (&a.output, &a.publish) {
        (Some(o), _) => Some(o.clone()),
        (None, None) => Some(PathBuf::from(format!("{}.tsm", trained.manifest.name))),
        (None, Some(_)) => None,
    };
    if let Some(output) = &output {
        std::fs::write(output, &trained.artifact).map_err(io_err(output))?;
    }
    if a.json {
        let report = serde_json::json!({
            "artifact": output,
            "model": trained.manifest.name,
            "algorithm": trained.manifest.algorithm,
            "training": trained.manifest.training,
            "metrics": trained.manifest.metrics,
        });
        println!("{}", serde_json::to_string_pretty(&report).expect("json"));
    } else {
        print!("{}", crate::train::render_report(&trained.manifest));
        if let Some(output) = &output {
            println!("\nwrote {}", output.display());
        }
    }
    if a.publish.is_none() {
        return Ok(());
    }
    if let Some(alias) = &a.alias {
        return publish(
            &reg,
            &trained.artifact,
            trained.manifest.name.clone(),
            Some(alias),
        );
    }
    let decision = crate::lifecycle::publish_gated(&reg, &trained, &data, &gate)?;
    eprintln!(
        "published {} version {} (alias {})",
        decision.model,
        decision.candidate.version,
        crate::lifecycle::STAGING_ALIAS
    );
    eprint!("{}", decision.text());
    if decision.promoted {
        Ok(())
    } else {
        Err(CommandError::GateRefused(format!(
            "{} version {} was not promoted: it did not pass the gate",
            decision.model, decision.candidate.version
        )))
    }
}

fn data(cmd: DataCommand) -> Result<(), CommandError> {
    match cmd {
        DataCommand::Add(a) => {
            let reg = FsRegistry::new(&a.registry.registry);
            let store = DatasetStore::new(&reg);
            let table = crate::data::Table::read(&a.file).map_err(LifecycleError::from)?;
            match crate::lifecycle::add_dataset(&store, &a.rows(&table), &a.checks.config()) {
                Ok((m, new, report)) => {
                    if a.json {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(
                                &serde_json::json!({"dataset": m, "new": new, "report": report})
                            )
                            .expect("json")
                        );
                    } else {
                        print!("{}", report.text());
                        println!(
                            "{} {}:{} ({} rows, sha256 {})",
                            if new { "stored" } else { "already stored as" },
                            m.name,
                            m.version,
                            m.rows,
                            m.sha256
                        );
                    }
                    Ok(())
                }
                Err(LifecycleError::Rejected(report)) => {
                    print_report(&report, a.json);
                    Err(LifecycleError::Rejected(report).into())
                }
                Err(e) => Err(e.into()),
            }
        }
        DataCommand::Check(a) => {
            let store = DatasetStore::new(&FsRegistry::new(&a.registry.registry));
            let table = crate::data::Table::read(&a.file).map_err(LifecycleError::from)?;
            let checked =
                crate::lifecycle::plan_dataset(&store, &a.rows(&table), &a.checks.config());
            match checked {
                Ok((_, report)) => {
                    print_report(&report, a.json);
                    Ok(())
                }
                Err(LifecycleError::Rejected(report)) => {
                    print_report(&report, a.json);
                    Err(LifecycleError::Rejected(report).into())
                }
                Err(e) => Err(e.into()),
            }
        }
        DataCommand::List { name, registry } => {
            let reg = FsRegistry::new(&registry.registry);
            let store = DatasetStore::new(&reg);
            let names = match name {
                Some(n) => vec![n],
                None => store.names().map_err(LifecycleError::from)?,
            };
            for n in names {
                println!("{n}");
                for m in store.manifests(&n).map_err(LifecycleError::from)? {
                    let classes: Vec<String> = m
                        .classes
                        .iter()
                        .map(|c| format!("{} {}", c.label, c.rows))
                        .collect();
                    println!(
                        "  {:>4}  {}  {:>7} rows  sha256 {}  from {}  ({})",
                        m.version,
                        m.created,
                        m.rows,
                        &m.sha256[..12.min(m.sha256.len())],
                        m.sources.last().map_or("", String::as_str),
                        classes.join(", ")
                    );
                }
            }
            Ok(())
        }
    }
}

fn print_report(report: &crate::data::checks::Report, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(report).expect("json"));
    } else {
        print!("{}", report.text());
    }
}

fn retrain(a: RetrainArgs) -> Result<(), CommandError> {
    use crate::lifecycle::retrain::{self, Outcome, RetrainConfig};
    if !crate::registry::valid_name(&a.name) {
        return Err(RegistryError::InvalidName(a.name).into());
    }
    let drop_dir = a.watch.clone().or(a.once.clone()).expect("clap: one mode");
    if !drop_dir.is_dir() {
        return Err(CommandError::Usage(format!(
            "{} is not a directory",
            drop_dir.display()
        )));
    }
    let config = RetrainConfig {
        registry: a.registry.registry.clone(),
        name: a.name.clone(),
        drop_dir,
        target: a.target.clone(),
        id_column: (!a.id_column.is_empty()).then(|| a.id_column.clone()),
        train: a.params.config(),
        gate: a.gate.config()?,
        checks: a.checks.config(),
        poll_interval: a.poll_interval.max(std::time::Duration::from_millis(50)),
    };
    let show = |path: &std::path::Path, outcome: &Outcome| {
        let what = match outcome {
            Outcome::Rejected(_) => "rejected",
            Outcome::Published { decision, .. } if decision.promoted => "promoted",
            Outcome::Published { .. } => "not promoted",
            Outcome::Unchanged(_) => "unchanged",
            Outcome::Failed(_) => "failed",
        };
        println!("== {}: {what}", path.display());
        print!("{}", outcome.text());
        let _ = std::io::stdout().flush();
    };
    if a.once.is_some() {
        let results = retrain::run_once(&config).map_err(io_err(&config.drop_dir))?;
        let mut code = None;
        for (path, outcome) in &results {
            show(path, outcome);
            let c = match outcome {
                Outcome::Rejected(r) => {
                    Some(CommandError::Lifecycle(LifecycleError::Rejected(r.clone())))
                }
                Outcome::Published { decision, .. } if !decision.promoted => {
                    Some(CommandError::GateRefused(format!(
                        "{} version {} was not promoted",
                        decision.model, decision.candidate.version
                    )))
                }
                Outcome::Failed(e) => Some(CommandError::Usage(format!("{}: {e}", path.display()))),
                _ => None,
            };
            // The worst outcome decides the exit code: failed, rejected, not promoted.
            if let Some(c) = c {
                let rank = |e: &CommandError| match e.exit_code() {
                    1 => 3,
                    4 => 2,
                    _ => 1,
                };
                if code.as_ref().is_none_or(|old| rank(&c) > rank(old)) {
                    code = Some(c);
                }
            }
        }
        if results.is_empty() {
            println!("no CSV files in {}", config.drop_dir.display());
        }
        return code.map_or(Ok(()), Err);
    }
    // Runs until the process is stopped: a file is moved aside only once its outcome is
    // stored, so a stop mid-file leaves it to be processed again on the next start.
    eprintln!("watching {} for new CSV files", config.drop_dir.display());
    retrain::watch(&config, || false, show).map_err(|e| {
        CommandError::Usage(format!("cannot watch {}: {e}", config.drop_dir.display()))
    })
}

fn publish(
    reg: &dyn Registry,
    bytes: &[u8],
    path: String,
    alias: Option<&str>,
) -> Result<(), CommandError> {
    let model = Model::from_bytes(bytes, 0, &TreeLimits::default())
        .map_err(|source| CommandError::Artifact { path, source })?;
    if let Some(alias) = alias
        && !crate::registry::valid_name(alias)
    {
        return Err(RegistryError::InvalidName(alias.into()).into());
    }
    let version = reg.publish(model.name(), bytes)?;
    eprintln!("published {} version {version}", model.name());
    if let Some(alias) = alias {
        reg.set_alias(model.name(), alias, version)?;
        eprintln!("{} alias {alias} -> version {version}", model.name());
    }
    println!("{version}");
    Ok(())
}

fn predict(a: PredictArgs) -> Result<(), CommandError> {
    use std::io::IsTerminal;
    let reg = FsRegistry::new(&a.registry.registry);
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
    let model = Model::from_bytes(&bytes, version, &TreeLimits::default()).map_err(|source| {
        CommandError::Artifact {
            path: format!("{name} version {version}"),
            source,
        }
    })?;
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
    let summary = if a.output.as_os_str() == "-" {
        crate::batch::predict_csv(&model, input, std::io::stdout(), &opts)?
    } else {
        let mut partial = a.output.clone().into_os_string();
        partial.push(".partial");
        let partial = std::path::PathBuf::from(partial);
        let file = std::fs::File::create(&partial).map_err(io_err(&partial))?;
        match crate::batch::predict_csv(&model, input, file, &opts) {
            Ok(s) => {
                std::fs::rename(&partial, &a.output).map_err(io_err(&a.output))?;
                s
            }
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e.into());
            }
        }
    };
    eprintln!(
        "predicted {} rows with {name} version {version} in {:.2} s ({:.0} rows/s, {} threads)",
        summary.rows,
        summary.elapsed.as_secs_f64(),
        summary.rows_per_second(),
        summary.threads
    );
    Ok(())
}

fn models(reg: &FsRegistry, only: Option<&str>, json: bool) -> Result<(), CommandError> {
    let mut listing = Vec::new();
    let names = match only {
        Some(n) => {
            reg.versions(n)?;
            vec![n.to_owned()]
        }
        None => reg.models()?,
    };
    for name in names {
        let aliases = reg.aliases(&name)?;
        let mut versions = Vec::new();
        for v in reg.versions(&name)? {
            let entry = match reg.read(&name, v).map(|b| crate::model::read_manifest(&b)) {
                Ok(Ok(m)) => serde_json::json!({
                    "version": v,
                    "created": m.created,
                    "algorithm": m.algorithm,
                    "accuracy": m.metrics.accuracy,
                    "training_sha256": m.training.sha256,
                    "aliases": aliases.iter().filter(|(_, r)| r.version == v).map(|(a, _)| a).collect::<Vec<_>>(),
                }),
                Ok(Err(e)) => serde_json::json!({"version": v, "error": e.to_string()}),
                Err(e) => serde_json::json!({"version": v, "error": e.to_string()}),
            };
            versions.push(entry);
        }
        listing.push(serde_json::json!({"name": name, "aliases": aliases, "versions": versions}));
    }
    let mut out = std::io::stdout().lock();
    if json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&listing).expect("json")
        );
        return Ok(());
    }
    if listing.is_empty() {
        let _ = writeln!(out, "no models in {}", reg.root().display());
    }
    for m in &listing {
        let _ = writeln!(out, "{}", m["name"].as_str().unwrap_or_default());
        let _ = writeln!(
            out,
            "  {:>7}  {:<20}  {:<13}  {:>8}  aliases",
            "version", "created", "algorithm", "accuracy"
        );
        for v in m["versions"].as_array().into_iter().flatten() {
            if let Some(err) = v.get("error") {
                let _ = writeln!(
                    out,
                    "  {:>7}  unreadable: {}",
                    v["version"].as_u64().unwrap_or_default(),
                    err.as_str().unwrap_or_default()
                );
                continue;
            }
            let aliases: Vec<&str> = v["aliases"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str())
                .collect();
            let _ = writeln!(
                out,
                "  {:>7}  {:<20}  {:<13}  {:>8.4}  {}",
                v["version"].as_u64().unwrap_or_default(),
                v["created"].as_str().unwrap_or_default(),
                v["algorithm"].as_str().unwrap_or_default(),
                v["accuracy"].as_f64().unwrap_or(f64::NAN),
                aliases.join(", ")
            );
        }
    }
    Ok(())
}
