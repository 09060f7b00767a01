//! Datasets as registry objects: immutable, content-addressed versions of labelled CSV
//! data with their schema and per-column statistics, and the data-quality checks that run
//! before any training ([`checks`]).
//!
//! ```text
//! REGISTRY/_datasets/NAME/versions/N/data.csv       the rows, as stored (canonical CSV)
//!                                   /dataset.json   DatasetManifest
//! ```
//!
//! A version's SHA-256 is that of its `data.csv`; adding bytes that hash to an existing
//! version returns that version. A dataset is named `NAME` (latest version), `NAME:N` or
//! `NAME@SHA256-PREFIX` (at least 8 hex digits).

pub mod checks;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::registry::{FsRegistry, RegistryError, valid_name};

/// Directory under the registry root that holds datasets (not a valid model name, so it
/// never shows up as a model).
pub const DATASETS_DIR: &str = "_datasets";
/// File of a version's rows.
pub const DATA_FILE: &str = "data.csv";
/// File of a version's manifest.
pub const MANIFEST_FILE: &str = "dataset.json";

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
    /// Reads CSV bytes with a header row.
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

/// The dataset store of a file-system registry.
#[derive(Debug, Clone)]
pub struct DatasetStore {
    root: PathBuf,
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> DataError + 'a {
    move |source| {
        RegistryError::Io {
            op,
            path: path.display().to_string(),
            source,
        }
        .into()
    }
}

impl DatasetStore {
    /// The datasets of `registry`.
    pub fn new(registry: &FsRegistry) -> Self {
        Self {
            root: registry.root().join(DATASETS_DIR),
        }
    }

    fn dir(&self, name: &str) -> Result<PathBuf, DataError> {
        if !valid_name(name) {
            return Err(RegistryError::InvalidName(name.into()).into());
        }
        Ok(self.root.join(name))
    }

    /// Dataset names, sorted.
    pub fn names(&self) -> Result<Vec<String>, DataError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", &self.root)(e)),
        };
        let mut out: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| valid_name(n))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Versions of a dataset, ascending (empty if it has none).
    pub fn versions(&self, name: &str) -> Result<Vec<u64>, DataError> {
        let dir = self.dir(name)?.join("versions");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", &dir)(e)),
        };
        let mut out: Vec<u64> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|v: &u64| dir.join(v.to_string()).join(MANIFEST_FILE).is_file())
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// A version's manifest.
    pub fn manifest(&self, name: &str, version: u64) -> Result<DatasetManifest, DataError> {
        let path = self.version_dir(name, version)?.join(MANIFEST_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DataError::NotFound(format!("{name}:{version}")));
            }
            Err(e) => return Err(io("read", &path)(e)),
        };
        let mut m: DatasetManifest = serde_json::from_slice(&bytes).map_err(|e| {
            DataError::from(RegistryError::Corrupt {
                path: path.display().to_string(),
                detail: e.to_string(),
            })
        })?;
        m.version = version;
        Ok(m)
    }

    /// Every version's manifest, oldest first.
    pub fn manifests(&self, name: &str) -> Result<Vec<DatasetManifest>, DataError> {
        self.versions(name)?
            .into_iter()
            .map(|v| self.manifest(name, v))
            .collect()
    }

    fn version_dir(&self, name: &str, version: u64) -> Result<PathBuf, DataError> {
        Ok(self.dir(name)?.join("versions").join(version.to_string()))
    }

    /// Path of a version's rows.
    pub fn data_path(&self, name: &str, version: u64) -> Result<PathBuf, DataError> {
        Ok(self.version_dir(name, version)?.join(DATA_FILE))
    }

    /// The version a reference names.
    pub fn resolve(&self, r: &DatasetRef) -> Result<DatasetManifest, DataError> {
        let name = r.name();
        let versions = self.versions(name)?;
        let missing = || DataError::NotFound(format!("{r:?}"));
        match r {
            DatasetRef::Latest(_) => {
                let v = *versions
                    .last()
                    .ok_or_else(|| DataError::NotFound(name.into()))?;
                self.manifest(name, v)
            }
            DatasetRef::Version(_, v) => {
                if versions.contains(v) {
                    self.manifest(name, *v)
                } else {
                    Err(DataError::NotFound(format!("{name}:{v}")))
                }
            }
            DatasetRef::Sha(_, prefix) => {
                let mut found = None;
                for m in self.manifests(name)? {
                    if m.sha256.starts_with(prefix.as_str()) {
                        found = Some(m);
                    }
                }
                found.ok_or_else(missing)
            }
        }
    }

    /// Stores `table` as a new version of dataset `name` (or returns the existing version
    /// with the same content). `findings` are the checks' (non-critical) findings.
    pub fn add(
        &self,
        name: &str,
        table: &Table,
        schema: &Schema,
        parent: Option<&DatasetManifest>,
        findings: Vec<checks::Finding>,
    ) -> Result<(DatasetManifest, bool), DataError> {
        let csv = table.to_csv();
        let sha256 = crate::model::sha256_hex(&csv);
        if let Some(existing) = self
            .manifests(name)?
            .into_iter()
            .find(|m| m.sha256 == sha256)
        {
            return Ok((existing, false));
        }
        let profile = checks::profile(table, schema);
        let mut sources: Vec<String> = parent.map(|p| p.sources.clone()).unwrap_or_default();
        sources.push(table.source.clone());
        let mut manifest = DatasetManifest {
            name: name.to_owned(),
            version: 0,
            sha256,
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            parent: parent.map(|p| p.version),
            sources,
            schema: schema.clone(),
            rows: table.rows.len() as u64,
            columns: profile.columns,
            classes: profile.classes,
            duplicate_rows: profile.duplicate_rows,
            findings,
        };
        // The stored manifest says version 0: the number is the directory's, known only
        // once the rename wins it, and filled in when a manifest is read.
        let mut json = serde_json::to_vec_pretty(&manifest).expect("json");
        json.push(b'\n');
        manifest.version = crate::registry::publish_dir(
            &self.dir(name)?,
            &[(DATA_FILE, &csv), (MANIFEST_FILE, &json)],
        )?;
        Ok((manifest, true))
    }

    /// A version's rows.
    pub fn table(&self, m: &DatasetManifest) -> Result<Table, DataError> {
        let path = self.data_path(&m.name, m.version)?;
        let mut t = Table::read(&path)?;
        t.source = format!("{}:{}", m.name, m.version);
        Ok(t)
    }
}
