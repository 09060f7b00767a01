//! Datasets as registry objects: immutable, content-addressed versions of labelled CSV
//! data with their schema and per-column statistics, and the data-quality checks that run
//! before any training ([`checks`]).
//!
//! A version is two files, stored and read through the [`Registry`](crate::registry::Registry)
//! trait ([`DatasetStore`]), whatever the backend:
//!
//! ```text
//! data.csv       the rows, as stored (canonical CSV)
//! dataset.json   DatasetManifest
//! ```
//!
//! (A file-system registry keeps them in `ROOT/_datasets/NAME/versions/N/`.)
//!
//! A version's SHA-256 is that of its `data.csv`; adding bytes that hash to an existing
//! version returns that version. A dataset is named `NAME` (latest version), `NAME:N` or
//! `NAME@SHA256-PREFIX` (at least 8 hex digits).

pub mod checks;
mod store;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::name::valid_name;
use crate::registry::RegistryError;

/// Directory under a file-system registry's root that holds datasets.
pub use crate::registry::DATASETS_DIR;
pub use store::DatasetStore;

/// File of a version's rows.
pub const DATA_FILE: &str = "data.csv";
/// File of a version's manifest.
pub const MANIFEST_FILE: &str = crate::registry::DATASET_MANIFEST;

/// Why a dataset operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The CSV cannot be read as a table at all.
    #[error("{source_name}: {message}")]
    Unreadable {
        /// File name.
        source_name: String,
        /// What is wrong.
        message: String,
    },
    /// No such dataset or version.
    #[error("dataset {0} is not in the registry")]
    NotFound(String),
    /// A dataset reference that cannot be parsed.
    #[error("invalid dataset reference {0:?}: use NAME, NAME:VERSION or NAME@SHA256-PREFIX")]
    InvalidRef(String),
    /// The data checks found critical problems.
    #[error("the data checks found {0} critical problem(s)")]
    Rejected(usize),
}

/// A CSV read as strings: the header and every record, cells trimmed. Blank lines are
/// skipped; records with the wrong number of fields are kept (the checks report them).
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Column names.
    pub columns: Vec<String>,
    /// Records, each with its line number in the file.
    pub rows: Vec<(u64, Vec<String>)>,
    /// File name, for messages.
    pub source: String,
}

impl Table {
    /// Reads CSV bytes with a header row; `source` names them in messages.
    pub fn parse(bytes: &[u8], source: &str) -> Result<Table, DataError> {
        let unreadable = |message: String| DataError::Unreadable {
            source_name: source.to_owned(),
            message,
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(bytes);
        let columns: Vec<String> = reader
            .headers()
            .map_err(|e| unreadable(format!("cannot read the header: {e}")))?
            .iter()
            .map(str::to_owned)
            .collect();
        if columns.iter().all(String::is_empty) {
            return Err(unreadable("the file is empty or has no header".into()));
        }
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| unreadable(format!("malformed CSV: {e}")))?;
            if record.len() == 1 && record.get(0) == Some("") {
                continue;
            }
            let line = record.position().map_or(0, |p| p.line());
            rows.push((line, record.iter().map(str::to_owned).collect()));
        }
        Ok(Table {
            columns,
            rows,
            source: source.to_owned(),
        })
    }

    /// Reads a CSV file.
    pub fn read(path: &Path) -> Result<Table, DataError> {
        let bytes = std::fs::read(path).map_err(|e| DataError::Unreadable {
            source_name: path.display().to_string(),
            message: e.to_string(),
        })?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        Table::parse(&bytes, &name)
    }

    /// Index of a column.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The table as canonical CSV: header, then records, quoted where needed, `\n` ends.
    pub fn to_csv(&self) -> Vec<u8> {
        let mut w = csv::WriterBuilder::new()
            .flexible(true)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        w.write_record(&self.columns).expect("writes to memory");
        for (_, r) in &self.rows {
            w.write_record(r).expect("writes to memory");
        }
        w.into_inner().expect("writes to memory")
    }
}

/// How a dataset's columns are used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// Label column.
    pub target: String,
    /// Identifier column, ignored for training, if the data has one.
    pub id_column: Option<String>,
    /// Numeric feature columns, in file order.
    pub features: Vec<String>,
}

/// Statistics of one numeric column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnStats {
    /// Column name.
    pub name: String,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
}

/// Rows of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassCount {
    /// Label.
    pub label: String,
    /// Rows.
    pub rows: u64,
}

/// What is stored about a dataset version (`dataset.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetManifest {
    /// Dataset name.
    pub name: String,
    /// Version number (the directory's; stored as 0).
    pub version: u64,
    /// SHA-256 of `data.csv`, hex.
    pub sha256: String,
    /// When it was added, RFC 3339 UTC.
    pub created: String,
    /// The version this one extends (old rows + new rows), if any.
    pub parent: Option<u64>,
    /// The file(s) its rows came from, oldest first.
    pub sources: Vec<String>,
    /// Column roles.
    pub schema: Schema,
    /// Data rows.
    pub rows: u64,
    /// Per-feature statistics.
    pub columns: Vec<ColumnStats>,
    /// Rows per class, sorted by label.
    pub classes: Vec<ClassCount>,
    /// Rows that repeat an earlier row exactly (features and label).
    pub duplicate_rows: u64,
    /// The data-check findings when it was added (warnings only: critical ones refuse it).
    pub findings: Vec<checks::Finding>,
}

/// A dataset version named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatasetRef {
    /// The latest version.
    Latest(String),
    /// A version number.
    Version(String, u64),
    /// A SHA-256 prefix.
    Sha(String, String),
}

impl DatasetRef {
    /// Parses `NAME`, `NAME:N` or `NAME@HEX`.
    pub fn parse(s: &str) -> Result<DatasetRef, DataError> {
        let bad = || DataError::InvalidRef(s.to_owned());
        let r = if let Some((name, v)) = s.split_once(':') {
            DatasetRef::Version(name.into(), v.parse().map_err(|_| bad())?)
        } else if let Some((name, sha)) = s.split_once('@') {
            if sha.len() < 8 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            DatasetRef::Sha(name.into(), sha.to_ascii_lowercase())
        } else {
            DatasetRef::Latest(s.into())
        };
        if !valid_name(r.name()) {
            return Err(bad());
        }
        Ok(r)
    }

    /// The dataset name.
    pub fn name(&self) -> &str {
        match self {
            DatasetRef::Latest(n) | DatasetRef::Version(n, _) | DatasetRef::Sha(n, _) => n,
        }
    }
}
