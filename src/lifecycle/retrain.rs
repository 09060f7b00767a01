//! Continuous training from a drop folder: every labelled CSV written then renamed into
//! the folder becomes a new dataset version (old rows + new rows), passes the data
//! checks, trains, and goes through the gate; running servers that follow `production`
//! hot-swap when it is promoted. Files that fail the checks move to `rejected/` with a
//! report, and nothing is published from them; processed files move to `processed/`.
//!
//! As in the server's registry watcher, file events are only hints that wake one loop,
//! which lists the folder itself; a poll covers file systems without inotify.

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use notify::{Event, EventKind, RecursiveMode, Watcher};

use super::{
    Decision, GateConfig, LifecycleError, add_dataset, finish_ungated, load_dataset, publish_gated,
    train_on,
};
use crate::data::checks::{CheckConfig, Report};
use crate::data::{DatasetRef, DatasetStore, Table};
use crate::registry::Registry;
use crate::train::TrainConfig;

/// Where processed files go, under the drop folder.
pub const PROCESSED_DIR: &str = "processed";
/// Where rejected files go, under the drop folder.
pub const REJECTED_DIR: &str = "rejected";

/// Everything `treeserve retrain` needs.
#[derive(Debug, Clone)]
pub struct RetrainConfig {
    /// Model and dataset name.
    pub name: String,
    /// The drop folder.
    pub drop_dir: PathBuf,
    /// Label column (for the first dataset version; later ones keep its schema).
    pub target: String,
    /// Identifier column to ignore, if the data has it.
    pub id_column: Option<String>,
    /// Learner settings.
    pub train: TrainConfig,
    /// Gate thresholds.
    pub gate: GateConfig,
    /// Data-check thresholds.
    pub checks: CheckConfig,
    /// How often the folder is listed even without file events.
    pub poll_interval: Duration,
}

/// What became of one dropped file.
#[derive(Debug)]
pub enum Outcome {
    /// The checks found critical problems: moved to `rejected/`, nothing published.
    Rejected(Report),
    /// A new model version was published (and promoted if the decision says so).
    Published {
        /// The data checks' report.
        report: Report,
        /// The gate's decision.
        decision: Box<Decision>,
    },
    /// The file added nothing new (its rows were already in the dataset and a model was
    /// trained on it).
    Unchanged(Report),
    /// Something else failed (I/O, registry): the file stays for the next attempt.
    Failed(String),
}

impl Outcome {
    /// A readable account.
    pub fn text(&self) -> String {
        match self {
            Outcome::Rejected(r) => format!("{}rejected: nothing published\n", r.text()),
            Outcome::Published { report, decision } => {
                format!("{}{}", report.text(), decision.text())
            }
            Outcome::Unchanged(r) => {
                format!(
                    "{}no new rows: the dataset version exists and is trained on\n",
                    r.text()
                )
            }
            Outcome::Failed(e) => format!("failed: {e}\n"),
        }
    }
}

/// CSV files waiting in the drop folder, by name. Hidden files (`.name.csv` while being
/// written) and other extensions are not taken.
pub fn pending(drop_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(drop_dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            !name.starts_with('.') && name.ends_with(".csv")
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Processes one dropped file (see the module docs) with models and datasets in
/// `registry`, and moves it aside unless it failed for a reason unrelated to its content.
pub fn process(registry: &Arc<dyn Registry>, config: &RetrainConfig, path: &Path) -> Outcome {
    let outcome = run(registry, config, path);
    let dir = match &outcome {
        Outcome::Rejected(_) => REJECTED_DIR,
        Outcome::Published { .. } | Outcome::Unchanged(_) => PROCESSED_DIR,
        Outcome::Failed(_) => return outcome,
    };
    if let Err(e) = move_aside(path, &config.drop_dir.join(dir), &outcome.text()) {
        return Outcome::Failed(format!("moving {} aside: {e}", path.display()));
    }
    outcome
}

fn run(reg: &Arc<dyn Registry>, config: &RetrainConfig, path: &Path) -> Outcome {
    let table = match Table::read(path) {
        Ok(t) => t,
        Err(e) => {
            return Outcome::Rejected(Report::critical_only(
                path.display().to_string(),
                0,
                "rows",
                e.to_string(),
            ));
        }
    };
    let store = DatasetStore::new(Arc::clone(reg));
    let step = || -> Result<Outcome, LifecycleError> {
        let append = !store.versions(&config.name)?.is_empty();
        let (manifest, new, report) = match add_dataset(
            &store,
            &super::NewRows {
                name: &config.name,
                table: &table,
                target: &config.target,
                id_column: config.id_column.as_deref(),
                append,
            },
            &config.checks,
        ) {
            Ok(x) => x,
            Err(LifecycleError::Rejected(r)) => return Ok(Outcome::Rejected(r)),
            Err(e) => return Err(e),
        };
        let (data, m) = load_dataset(
            &store,
            &DatasetRef::Version(manifest.name.clone(), manifest.version),
        )?;
        if !new && trained_on(&**reg, &config.name, &manifest.sha256) {
            // A run stopped after publishing but before the gate: finish it.
            return Ok(
                match finish_ungated(&**reg, &config.name, &data, &config.gate)?.pop() {
                    Some((_, decision)) => Outcome::Published {
                        report,
                        decision: Box::new(decision),
                    },
                    None => Outcome::Unchanged(report),
                },
            );
        }
        let train = TrainConfig {
            name: Some(config.name.clone()),
            ..config.train.clone()
        };
        let trained = train_on(&data, &m, &train)?;
        let decision = publish_gated(&**reg, &trained, &data, &config.gate)?;
        Ok(Outcome::Published {
            report,
            decision: Box::new(decision),
        })
    };
    step().unwrap_or_else(|e| match e {
        // Training refusing the data (e.g. one class in the training split) is the
        // file's fault: reject it.
        LifecycleError::Train(e @ crate::train::TrainError::Data { .. }) => {
            Outcome::Rejected(Report::critical_only(
                path.display().to_string(),
                table.rows.len() as u64,
                "training",
                e.to_string(),
            ))
        }
        e => Outcome::Failed(e.to_string()),
    })
}

/// Whether some version of `model` was trained on the dataset with this SHA-256.
fn trained_on(reg: &dyn Registry, model: &str, sha256: &str) -> bool {
    reg.versions(model)
        .unwrap_or_default()
        .into_iter()
        .any(|v| {
            crate::registry::version_manifest(reg, model, v, false)
                .ok()
                .and_then(Result::ok)
                .and_then(|(m, _)| m.training.dataset)
                .is_some_and(|d| d.sha256 == sha256)
        })
}

fn move_aside(path: &Path, dir: &Path, report: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut target = dir.join(&name);
    let mut n = 1;
    while target.exists() {
        target = dir.join(format!("{name}.{n}"));
        n += 1;
    }
    let report_path = PathBuf::from(format!("{}.report.txt", target.display()));
    std::fs::write(&report_path, report)?;
    std::fs::rename(path, &target)
}

/// Processes every pending file once, in name order.
pub fn run_once(
    registry: &Arc<dyn Registry>,
    config: &RetrainConfig,
) -> std::io::Result<Vec<(PathBuf, Outcome)>> {
    Ok(pending(&config.drop_dir)?
        .into_iter()
        .map(|p| {
            let outcome = process(registry, config, &p);
            (p, outcome)
        })
        .collect())
}

/// Watches the drop folder until `stop` returns true, processing files as they arrive;
/// `report` is called with each outcome.
pub fn watch(
    registry: &Arc<dyn Registry>,
    config: &RetrainConfig,
    stop: impl Fn() -> bool,
    mut report: impl FnMut(&Path, &Outcome),
) -> Result<(), notify::Error> {
    let (tx, rx) = mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
        if !matches!(event, Ok(ref e) if matches!(e.kind, EventKind::Access(_))) {
            let _ = tx.send(());
        }
    })?;
    // Without inotify (some network file systems) the poll below still finds files.
    if let Err(e) = watcher.watch(&config.drop_dir, RecursiveMode::NonRecursive) {
        tracing::warn!(error = %e, "cannot watch the drop folder; polling it");
    }
    // Files that failed for reasons outside their content are retried on the poll only.
    let mut failed: Vec<PathBuf> = Vec::new();
    let mut last_poll = std::time::Instant::now();
    while !stop() {
        let polled = last_poll.elapsed() >= config.poll_interval;
        if polled {
            last_poll = std::time::Instant::now();
            failed.clear();
        }
        match pending(&config.drop_dir) {
            Ok(files) => {
                let files: Vec<PathBuf> =
                    files.into_iter().filter(|p| !failed.contains(p)).collect();
                for p in files {
                    let outcome = process(registry, config, &p);
                    if matches!(outcome, Outcome::Failed(_)) {
                        failed.push(p.clone());
                    }
                    report(&p, &outcome);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, dir = %config.drop_dir.display(), "cannot list the drop folder")
            }
        }
        // Wait for an event (or the poll, or a stop check), then drain the burst.
        let _ = rx.recv_timeout(Duration::from_millis(250).min(config.poll_interval));
        while rx.try_recv().is_ok() {}
    }
    Ok(())
}
