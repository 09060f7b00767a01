//! Datasets: `treeserve data add`, `data check` and `data list`.

use std::path::PathBuf;

use clap::Subcommand;

use super::CommandError;
use super::flags::{CheckArgs, LabelColumns, RegistryArg};
use crate::data::DatasetStore;
use crate::lifecycle::LifecycleError;

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
    /// Target (label) and identifier columns.
    #[command(flatten)]
    pub labels: LabelColumns,
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
            target: &self.labels.target,
            id_column: self.labels.id_column(),
            append: self.append,
        }
    }
}

/// Runs `treeserve data`.
pub(super) fn data(cmd: DataCommand) -> Result<(), CommandError> {
    match cmd {
        DataCommand::Add(a) => {
            let store = DatasetStore::new(a.registry.open()?);
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
            let store = DatasetStore::new(a.registry.open()?);
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
            let store = DatasetStore::new(registry.open()?);
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
