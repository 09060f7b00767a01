//! The object-store registry (S3 and S3-compatible stores, Azure Blob, Google Cloud
//! Storage) through the `object_store` crate, in the file system's layout (see
//! [`super::fs`]) under `BUCKET/PREFIX/`.
//!
//! Object stores have no rename and no lock, so the two races are settled by conditional
//! writes: a version is created only if absent (`If-None-Match: *`; two publishers
//! racing for `N` cannot both win, the loser takes `N + 1`), and an alias is replaced only
//! if its ETag is still the one read (`If-Match`), else read again and retried. A dataset
//! version is claimed first (a `.claim` object created if absent), then its files are
//! written, its manifest last: it is listed only once whole.
//!
//! Polling an alias sends `If-None-Match` with the ETag last seen: an unmoved alias costs
//! a `304 Not Modified` and no body. Every download is capped from the object's size
//! before its body is read; every call has a timeout and few retries (the follower polls
//! again anyway).
//!
//! The trait is synchronous (callers are blocking threads and CLI commands); calls run on
//! one process-wide I/O runtime that is never dropped, so a registry may be used and
//! dropped anywhere.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path as Key;
use object_store::{GetOptions, ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::fs::{ARTIFACT_FILE, HISTORY_LIMIT, MAX_ALIAS_BYTES, MAX_RECORD_BYTES};
use super::location::Cloud;
use super::{
    AliasListing, AliasRecord, DATASET_MANIFEST, DATASETS_DIR, MAX_ARTIFACT_BYTES, Registry,
    RegistryError, parse_version,
};
use crate::name::valid_name;

/// Timeout of one request to the store.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of connecting to the store.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Conditional writes retried this often before a race is reported.
const MAX_TRIES: usize = 20;
const CLAIM: &str = ".claim";

/// A registry in an object store.
pub struct ObjectRegistry {
    store: Arc<dyn ObjectStore>,
    /// `""` or `a/b`.
    prefix: String,
    /// `s3://bucket/prefix`, for messages.
    shown: String,
    /// Last alias read per (model, alias): its ETag and record, for conditional polls.
    seen: Mutex<HashMap<(String, String), (String, AliasRecord)>>,
}

impl std::fmt::Debug for ObjectRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectRegistry")
            .field("location", &self.shown)
            .finish()
    }
}

/// The one runtime every object registry's I/O runs on (never dropped).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("treeserve-registry-io")
            .enable_all()
            .build()
            .expect("the registry's I/O runtime starts")
    })
}

/// Runs `fut` on the I/O runtime and waits for it (callable from any thread, inside a
/// runtime or not).
pub(super) fn run<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().expect("the registry's I/O task finishes")
}

fn check(name: &str) -> Result<(), RegistryError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(RegistryError::InvalidName(name.into()))
    }
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// What the caller can do about a failed call.
fn hint(e: &object_store::Error) -> &'static str {
    let s = e.to_string();
    if s.contains("403") || s.contains("401") || s.contains("Forbidden") {
        " (check the store's credentials: AWS_*, AZURE_STORAGE_* or GOOGLE_* in the environment)"
    } else if s.contains("error sending request") || s.contains("connect") {
        " (the store is unreachable: check the endpoint and the network)"
    } else {
        ""
    }
}

impl ObjectRegistry {
    /// Connects to `cloud` `bucket` with credentials and settings from the environment
    /// (`AWS_*` incl. `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`; `AZURE_STORAGE_*`;
    /// `GOOGLE_*`). Nothing is contacted until the first call.
    pub fn new(cloud: Cloud, bucket: &str, prefix: &str) -> Result<Self, RegistryError> {
        use object_store::ClientConfigKey::{ConnectTimeout, Timeout};
        use object_store::RetryConfig;
        let (timeout, connect) = (
            humantime::format_duration(REQUEST_TIMEOUT).to_string(),
            humantime::format_duration(CONNECT_TIMEOUT).to_string(),
        );
        let retry = RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(10),
            ..Default::default()
        };
        let shown = if prefix.is_empty() {
            format!("{}://{bucket}", cloud.scheme())
        } else {
            format!("{}://{bucket}/{prefix}", cloud.scheme())
        };
        let built: Result<Arc<dyn ObjectStore>, object_store::Error> = match cloud {
            Cloud::S3 => {
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry);
                use object_store::aws::AmazonS3ConfigKey::Client;
                b = b
                    .with_config(Client(Timeout), &timeout)
                    .with_config(Client(ConnectTimeout), &connect);
                if std::env::var_os("AWS_REGION").is_none()
                    && std::env::var_os("AWS_DEFAULT_REGION").is_none()
                {
                    b = b.with_region("us-east-1");
                }
                b.build().map(|s| Arc::new(s) as _)
            }
            Cloud::Azure => {
                use object_store::azure::AzureConfigKey::Client;
                let b = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_container_name(bucket)
                    .with_retry(retry)
                    .with_config(Client(Timeout), &timeout)
                    .with_config(Client(ConnectTimeout), &connect);
                b.build().map(|s| Arc::new(s) as _)
            }
            Cloud::Gcs => {
                use object_store::gcp::GoogleConfigKey::Client;
                let b = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry)
                    .with_config(Client(Timeout), &timeout)
                    .with_config(Client(ConnectTimeout), &connect);
                b.build().map(|s| Arc::new(s) as _)
            }
        };
        let store = built.map_err(|e| RegistryError::Remote {
            op: "configure",
            url: shown.clone(),
            detail: e.to_string(),
        })?;
        Ok(Self {
            store,
            prefix: prefix.into(),
            shown,
            seen: Mutex::default(),
        })
    }

    fn key(&self, parts: &[&str]) -> Key {
        let mut s = self.prefix.clone();
        for p in parts {
            if !s.is_empty() {
                s.push('/');
            }
            s.push_str(p);
        }
        Key::from(s)
    }

    fn url(&self, key: &Key) -> String {
        let bucket_root = self.shown.split('/').take(3).collect::<Vec<_>>().join("/");
        format!("{bucket_root}/{key}")
    }

    fn remote(&self, op: &'static str, key: &Key, e: object_store::Error) -> RegistryError {
        RegistryError::Remote {
            op,
            url: self.url(key),
            detail: format!("{}{}", describe(&e), hint(&e)),
        }
    }

    /// An object's bytes and ETag, or `None` when absent; refused when over `cap`
    /// (from its size, before the body is read).
    fn get(
        &self,
        key: &Key,
        cap: u64,
        if_none_match: Option<String>,
    ) -> Result<Got, RegistryError> {
        let (store, k) = (self.store.clone(), key.clone());
        let result = run(async move {
            let opts = GetOptions {
                if_none_match,
                ..Default::default()
            };
            let got = store.get_opts(&k, opts).await?;
            let (size, etag) = (got.meta.size, got.meta.e_tag.clone());
            if size > cap {
                return Ok(Err(size));
            }
            let bytes = got.bytes().await?;
            Ok(Ok((bytes, etag)))
        });
        match result {
            Ok(Ok((bytes, etag))) if bytes.len() as u64 <= cap => {
                Ok(Got::Found(bytes, etag.unwrap_or_default()))
            }
            Ok(Ok((bytes, _))) => Err(self.too_large(key, bytes.len() as u64, cap)),
            Ok(Err(size)) => Err(self.too_large(key, size, cap)),
            Err(object_store::Error::NotFound { .. }) => Ok(Got::Absent),
            Err(object_store::Error::NotModified { .. }) => Ok(Got::NotModified),
            Err(e) => Err(self.remote("read", key, e)),
        }
    }

    fn too_large(&self, key: &Key, size: u64, cap: u64) -> RegistryError {
        RegistryError::Refused {
            path: self.url(key),
            detail: format!("{size} bytes, over the {cap}-byte limit"),
        }
    }

    fn put(&self, key: &Key, bytes: Bytes, mode: PutMode) -> Result<Put, RegistryError> {
        let (store, k) = (self.store.clone(), key.clone());
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        match run(async move { store.put_opts(&k, PutPayload::from(bytes), opts).await }) {
            Ok(_) => Ok(Put::Done),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(Put::Lost),
            Err(e) => Err(self.remote("write", key, e)),
        }
    }

    /// Names directly under `parts` (common prefixes) and the objects there.
    fn list(&self, parts: &[&str]) -> Result<(Vec<String>, Vec<String>), RegistryError> {
        let key = self.key(parts);
        let (store, k) = (self.store.clone(), key.clone());
        let prefix = (!k.as_ref().is_empty()).then_some(k);
        let listed = run(async move { store.list_with_delimiter(prefix.as_ref()).await })
            .map_err(|e| self.remote("list", &key, e))?;
        let last = |p: &Key| p.filename().unwrap_or_default().to_owned();
        Ok((
            listed.common_prefixes.iter().map(last).collect(),
            listed.objects.iter().map(|o| last(&o.location)).collect(),
        ))
    }

    /// Every object key under `parts`, relative to it.
    fn list_all(&self, parts: &[&str]) -> Result<Vec<String>, RegistryError> {
        use futures_util::TryStreamExt;
        let key = self.key(parts);
        let (store, k) = (self.store.clone(), key.clone());
        let listed: Result<Vec<_>, _> =
            run(async move { store.list(Some(&k)).try_collect::<Vec<_>>().await });
        let base = key.as_ref().len() + 1;
        Ok(listed
            .map_err(|e| self.remote("list", &key, e))?
            .into_iter()
            .filter_map(|m| m.location.as_ref().get(base..).map(str::to_owned))
            .collect())
    }

    fn versions_under(&self, parts: &[&str]) -> Result<Vec<u64>, RegistryError> {
        let (dirs, _) = self.list(parts)?;
        let mut v: Vec<u64> = dirs.iter().filter_map(|d| parse_version(d)).collect();
        v.sort_unstable();
        Ok(v)
    }

    fn read_alias(
        &self,
        model: &str,
        alias: &str,
        conditional: bool,
    ) -> Result<Option<(AliasRecord, String)>, RegistryError> {
        check(model)?;
        check(alias)?;
        let key = self.key(&[model, "aliases", alias]);
        let slot = (model.to_owned(), alias.to_owned());
        let known = conditional
            .then(|| self.seen.lock().expect("lock").get(&slot).cloned())
            .flatten();
        match self.get(&key, MAX_ALIAS_BYTES, known.as_ref().map(|k| k.0.clone()))? {
            Got::Absent => {
                self.seen.lock().expect("lock").remove(&slot);
                Ok(None)
            }
            Got::NotModified => match known {
                Some((etag, rec)) => Ok(Some((rec, etag))),
                // Not asked conditionally: a store answering 304 anyway is broken.
                None => Err(RegistryError::Corrupt {
                    path: self.url(&key),
                    detail: "the store answered 304 to an unconditional read".into(),
                }),
            },
            Got::Found(bytes, etag) => {
                let rec: AliasRecord =
                    serde_json::from_slice(&bytes).map_err(|e| RegistryError::Corrupt {
                        path: self.url(&key),
                        detail: e.to_string(),
                    })?;
                if !etag.is_empty() {
                    self.seen
                        .lock()
                        .expect("lock")
                        .insert(slot, (etag.clone(), rec.clone()));
                }
                Ok(Some((rec, etag)))
            }
        }
    }

    fn require_model(&self, model: &str) -> Result<(), RegistryError> {
        check(model)?;
        let (dirs, _) = self.list(&[model, "versions"])?;
        if dirs.is_empty() {
            Err(RegistryError::ModelNotFound(model.into()))
        } else {
            Ok(())
        }
    }

    /// Read-modify-write of an alias with a conditional put, retried when another writer
    /// moved it in between.
    fn update_alias(
        &self,
        model: &str,
        alias: &str,
        change: impl Fn(Option<AliasRecord>) -> Result<AliasRecord, RegistryError>,
    ) -> Result<AliasRecord, RegistryError> {
        let key = self.key(&[model, "aliases", alias]);
        for _ in 0..MAX_TRIES {
            let old = self.read_alias(model, alias, false)?;
            let mode = match &old {
                Some((_, etag)) if !etag.is_empty() => PutMode::Update(UpdateVersion {
                    e_tag: Some(etag.clone()),
                    version: None,
                }),
                Some(_) => PutMode::Overwrite,
                None => PutMode::Create,
            };
            let record = change(old.map(|o| o.0))?;
            let mut json = serde_json::to_vec_pretty(&record).expect("alias serializes");
            json.extend_from_slice(b"\n");
            if let Put::Done = self.put(&key, json.into(), mode)? {
                return Ok(record);
            }
        }
        Err(RegistryError::Contended {
            what: format!("alias {alias:?} of model {model:?}"),
            tries: MAX_TRIES,
        })
    }

    /// Claims the next free number under `parts` by creating `N/NAME` if absent.
    fn claim_next(&self, parts: &[&str], name: &str, bytes: &[u8]) -> Result<u64, RegistryError> {
        let mut next = self.versions_under(parts)?.last().copied().unwrap_or(0);
        for _ in 0..MAX_TRIES {
            next = next
                .checked_add(1)
                .ok_or_else(|| RegistryError::VersionsExhausted {
                    path: self.url(&self.key(parts)),
                })?;
            let n = next.to_string();
            let mut key_parts = parts.to_vec();
            key_parts.extend([n.as_str(), name]);
            let key = self.key(&key_parts);
            match self.put(&key, Bytes::copy_from_slice(bytes), PutMode::Create)? {
                Put::Done => return Ok(next),
                Put::Lost => {
                    let last = self.versions_under(parts)?.last().copied().unwrap_or(0);
                    next = next.max(last);
                }
            }
        }
        Err(RegistryError::Contended {
            what: format!("the next version under {}", self.url(&self.key(parts))),
            tries: MAX_TRIES,
        })
    }
}

enum Got {
    Found(Bytes, String),
    Absent,
    NotModified,
}

enum Put {
    Done,
    Lost,
}

/// A store's error in a line: its last cause, and how many tries were made (the
/// crate's message repeats the request and the retry settings).
fn describe(e: &object_store::Error) -> String {
    let text = e.to_string();
    let s = text.lines().next().unwrap_or(&text).trim();
    let mut cause = s.rsplit_once(" - ").map_or(s, |(_, c)| c.trim()).to_owned();
    // A store's XML error body: its code and message say it best (e.g. NoSuchBucket).
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let len = text[start..].find('<')?;
        Some(text[start..start + len].trim().to_owned())
    };
    if let Some(code) = tag("Code") {
        let status = cause.split(':').next().unwrap_or_default().to_owned();
        cause = match tag("Message") {
            Some(m) => format!("{status}: {code}: {m}"),
            None => format!("{status}: {code}"),
        };
        if code == "NoSuchBucket" || code == "ContainerNotFound" {
            cause.push_str(" (create it, or fix --registry)");
        }
    }
    let tries = s
        .find(" after ")
        .and_then(|i| s[i + 7..].split(',').next())
        .filter(|t| t.ends_with("retries"))
        .map(|t| format!(" (after {t})"))
        .unwrap_or_default();
    let mut out = format!("{cause}{tries}");
    if out.len() > 300 {
        let mut end = 300;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push('…');
    }
    out
}

impl Registry for ObjectRegistry {
    fn models(&self) -> Result<Vec<String>, RegistryError> {
        let (mut dirs, _) = self.list(&[])?;
        dirs.retain(|d| valid_name(d) && d != DATASETS_DIR);
        dirs.sort();
        Ok(dirs)
    }

    fn versions(&self, model: &str) -> Result<Vec<u64>, RegistryError> {
        check(model)?;
        let v = self.versions_under(&[model, "versions"])?;
        if v.is_empty() {
            return Err(RegistryError::ModelNotFound(model.into()));
        }
        Ok(v)
    }

    fn alias_listing(&self, model: &str) -> Result<AliasListing, RegistryError> {
        self.require_model(model)?;
        let (_, names) = self.list(&[model, "aliases"])?;
        let mut out = AliasListing::default();
        for name in names.into_iter().filter(|n| valid_name(n)) {
            match self.read_alias(model, &name, true) {
                Ok(Some((rec, _))) => {
                    out.aliases.insert(name, rec);
                }
                Ok(None) => {}
                Err(e) => {
                    out.broken.insert(name, e.to_string());
                }
            }
        }
        Ok(out)
    }

    fn alias(&self, model: &str, alias: &str) -> Result<AliasRecord, RegistryError> {
        match self.read_alias(model, alias, true)? {
            Some((rec, _)) => Ok(rec),
            None => {
                self.require_model(model)?;
                Err(RegistryError::AliasNotFound {
                    model: model.into(),
                    alias: alias.into(),
                })
            }
        }
    }

    fn read(&self, model: &str, version: u64) -> Result<Vec<u8>, RegistryError> {
        check(model)?;
        let key = self.key(&[model, "versions", &version.to_string(), ARTIFACT_FILE]);
        match self.get(&key, MAX_ARTIFACT_BYTES, None)? {
            Got::Found(b, _) => Ok(b.to_vec()),
            _ => Err(RegistryError::VersionNotFound {
                model: model.into(),
                version,
            }),
        }
    }

    fn publish(&self, model: &str, artifact: &[u8]) -> Result<u64, RegistryError> {
        check(model)?;
        self.claim_next(&[model, "versions"], ARTIFACT_FILE, artifact)
    }

    fn set_alias(
        &self,
        model: &str,
        alias: &str,
        version: u64,
    ) -> Result<AliasRecord, RegistryError> {
        check(alias)?;
        if !self.versions(model)?.contains(&version) {
            return Err(RegistryError::VersionNotFound {
                model: model.into(),
                version,
            });
        }
        self.update_alias(model, alias, |old| {
            let mut history = Vec::new();
            if let Some(old) = old {
                history = old.history;
                if old.version != version {
                    history.push(old.version);
                }
            }
            if history.len() > HISTORY_LIMIT {
                history.drain(..history.len() - HISTORY_LIMIT);
            }
            Ok(AliasRecord {
                version,
                history,
                updated: now(),
            })
        })
    }

    fn rollback(&self, model: &str, alias: &str) -> Result<AliasRecord, RegistryError> {
        check(alias)?;
        self.require_model(model)?;
        self.update_alias(model, alias, |old| {
            let mut record = old.ok_or_else(|| RegistryError::AliasNotFound {
                model: model.into(),
                alias: alias.into(),
            })?;
            record.version = record
                .history
                .pop()
                .ok_or_else(|| RegistryError::NoHistory {
                    model: model.into(),
                    alias: alias.into(),
                })?;
            record.updated = now();
            Ok(record)
        })
    }

    fn put_record(
        &self,
        model: &str,
        version: u64,
        kind: &str,
        json: &[u8],
    ) -> Result<(), RegistryError> {
        check(kind)?;
        self.require_model(model)?;
        let key = self.key(&[model, "records", &format!("{version}.{kind}.json")]);
        self.put(&key, Bytes::copy_from_slice(json), PutMode::Overwrite)
            .map(|_| ())
    }

    fn get_record(
        &self,
        model: &str,
        version: u64,
        kind: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        check(model)?;
        check(kind)?;
        let key = self.key(&[model, "records", &format!("{version}.{kind}.json")]);
        match self.get(&key, MAX_RECORD_BYTES, None)? {
            Got::Found(b, _) => Ok(Some(b.to_vec())),
            _ => Ok(None),
        }
    }

    fn datasets(&self) -> Result<Vec<String>, RegistryError> {
        let (mut dirs, _) = self.list(&[DATASETS_DIR])?;
        dirs.retain(|d| valid_name(d));
        dirs.sort();
        Ok(dirs)
    }

    fn dataset_versions(&self, name: &str) -> Result<Vec<u64>, RegistryError> {
        check(name)?;
        let mut v: Vec<u64> = self
            .list_all(&[DATASETS_DIR, name, "versions"])?
            .iter()
            .filter_map(|k| k.split_once('/'))
            .filter(|(_, file)| *file == DATASET_MANIFEST)
            .filter_map(|(n, _)| parse_version(n))
            .collect();
        v.sort_unstable();
        v.dedup();
        Ok(v)
    }

    fn read_dataset_file(
        &self,
        name: &str,
        version: u64,
        file: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        check(name)?;
        check(file)?;
        let key = self.key(&[DATASETS_DIR, name, "versions", &version.to_string(), file]);
        match self.get(&key, MAX_ARTIFACT_BYTES, None)? {
            Got::Found(b, _) => Ok(Some(b.to_vec())),
            _ => Ok(None),
        }
    }

    fn publish_dataset(&self, name: &str, files: &[(&str, &[u8])]) -> Result<u64, RegistryError> {
        check(name)?;
        for (file, _) in files {
            check(file)?;
        }
        let version = self.claim_next(&[DATASETS_DIR, name, "versions"], CLAIM, b"")?;
        let n = version.to_string();
        // The manifest last: the version is listed only once every file is there.
        let mut ordered: Vec<&(&str, &[u8])> = files.iter().collect();
        ordered.sort_by_key(|(f, _)| *f == DATASET_MANIFEST);
        for (file, bytes) in ordered {
            let key = self.key(&[DATASETS_DIR, name, "versions", &n, file]);
            self.put(&key, Bytes::copy_from_slice(bytes), PutMode::Overwrite)?;
        }
        Ok(version)
    }
}
