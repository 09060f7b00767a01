//! Training: `treeserve train`, `retrain` (continuous training) and `report`.

use std::io::Write;
use std::path::PathBuf;

use super::flags::{CheckArgs, GateArgs, LabelColumns, RegistryArg, TrainParams};
use super::registry::publish_artifact;
use super::{CommandError, io_err};
use crate::data::DatasetStore;
use crate::lifecycle::LifecycleError;
use crate::model::Task;
use crate::registry::RegistryError;
use crate::train::TrainConfig;

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
    /// Target (label) and identifier columns.
    #[command(flatten)]
    pub labels: LabelColumns,
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
    pub publish: Option<Option<crate::registry::Location>>,
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
    /// Target (label) and identifier columns.
    #[command(flatten)]
    pub labels: LabelColumns,
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
    /// Add the live figures of this running server (`GET /models/NAME/live`).
    #[arg(long, value_name = "URL")]
    pub live: Option<String>,
}

/// Runs `treeserve train`.
pub(super) fn train(a: TrainArgs) -> Result<(), CommandError> {
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
    let reg = crate::registry::open(&registry)?;
    let base = TrainConfig {
        name: a.name.clone(),
        target: a.labels.target.clone(),
        id_column: a.labels.id_column().map(str::to_owned),
        ..a.params.config()
    };
    let (trained, data) = match (&a.dataset, &a.data) {
        (Some(_), _) if base.task == Task::Regression => {
            return Err(regression_needs_a_file("--dataset"));
        }
        (Some(r), _) => {
            let store = DatasetStore::new(a.registry.open()?);
            let r = crate::data::DatasetRef::parse(r).map_err(LifecycleError::from)?;
            let (data, m) = crate::lifecycle::load_dataset(&store, &r)?;
            (crate::lifecycle::train_on(&data, &m, &base)?, data)
        }
        (None, Some(path)) => {
            let data = crate::train::load_csv_for(
                path,
                &base.target,
                base.id_column.as_deref(),
                base.task,
            )?;
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
            "task": trained.manifest.task,
            "training": trained.manifest.training,
            "metrics": trained.manifest.metrics,
            "regression_metrics": trained.manifest.regression_metrics,
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
        publish_artifact(
            &*reg,
            &trained.artifact,
            trained.manifest.name.clone(),
            Some(alias),
        )?;
        // Which rows it trained on, for the gate of later candidates.
        let version = reg.resolve(&trained.manifest.name, alias)?;
        crate::lifecycle::rows::RowsRecord::of_trained(&data, &trained.test_rows).store(
            &*reg,
            &trained.manifest.name,
            version,
        )?;
        return Ok(());
    }
    let decision = crate::lifecycle::publish_gated(&*reg, &trained, &data, &gate)?;
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

/// Registry datasets (`data add`, `--dataset`, `retrain`) treat the target as class
/// labels: a regressor trains from a CSV file.
fn regression_needs_a_file(what: &str) -> CommandError {
    CommandError::Usage(format!(
        "{what} is for classifiers (registry datasets hold class labels): train a regressor \
         from a CSV file with `treeserve train --task regression --data FILE.csv`"
    ))
}

/// Runs `treeserve retrain`.
pub(super) fn retrain(a: RetrainArgs) -> Result<(), CommandError> {
    use crate::lifecycle::retrain::{self, Outcome, RetrainConfig};
    if !crate::name::valid_name(&a.name) {
        return Err(RegistryError::InvalidName(a.name).into());
    }
    let drop_dir = a.watch.clone().or(a.once.clone()).expect("clap: one mode");
    if !drop_dir.is_dir() {
        return Err(CommandError::Usage(format!(
            "{} is not a directory",
            drop_dir.display()
        )));
    }
    if a.params.config().task == Task::Regression {
        return Err(regression_needs_a_file("retrain"));
    }
    let registry = a.registry.open()?;
    let config = RetrainConfig {
        name: a.name.clone(),
        drop_dir,
        target: a.labels.target.clone(),
        id_column: a.labels.id_column().map(str::to_owned),
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
        let results = retrain::run_once(&registry, &config).map_err(io_err(&config.drop_dir))?;
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
    retrain::watch(&registry, &config, || false, show).map_err(|e| {
        CommandError::Usage(format!("cannot watch {}: {e}", config.drop_dir.display()))
    })
}

/// Runs `treeserve report`.
pub(super) fn report(a: ReportArgs) -> Result<(), CommandError> {
    let reg = a.registry.open()?;
    reg.versions(&a.name)?;
    let live = match &a.live {
        Some(url) => Some(super::live::fetch(url, &a.name)?),
        None => None,
    };
    let datasets = DatasetStore::new(reg.clone());
    let html = crate::report::html(&*reg, Some(&datasets), &a.name, live.as_ref())?;
    std::fs::write(&a.out, html).map_err(io_err(&a.out))?;
    eprintln!("wrote {}", a.out.display());
    Ok(())
}
