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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path as Key;
use object_store::{GetOptions, ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::fs::MAX_ALIAS_BYTES;
use super::location::Cloud;

mod io;
mod ops;

use super::{AliasRecord, RegistryError, parse_version};
pub(super) use io::run;
use io::{describe, hint};

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

use super::check_name as check;

impl ObjectRegistry {
    /// Connects to `cloud` `bucket` with credentials and settings from the environment
    /// (`AWS_*` incl. `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`; `AZURE_STORAGE_*`;
    /// `GOOGLE_*`). Nothing is contacted until the first call.
    pub fn new(cloud: Cloud, bucket: &str, prefix: &str) -> Result<Self, RegistryError> {
        super::tls_provider();
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
        let store = built.map_err(|e| {
            let mut detail = e.to_string();
            // rustls finds no root certificates: a bare container image, a host without
            // the ca-certificates package.
            if detail.contains("builder error") {
                detail.push_str(
                    " (no CA certificates could be loaded: install the ca-certificates \
                     package, or point SSL_CERT_FILE at a PEM bundle)",
                );
            }
            RegistryError::Remote {
                op: "configure",
                url: shown.clone(),
                detail,
            }
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

    /// An object's first `len` bytes (all of it when shorter; a ranged GET), or `None`
    /// when absent.
    fn get_head(&self, key: &Key, len: u64) -> Result<Option<Bytes>, RegistryError> {
        let (store, k) = (self.store.clone(), key.clone());
        let result = run(async move {
            let opts = GetOptions {
                range: Some(object_store::GetRange::Bounded(0..len)),
                ..Default::default()
            };
            let got = store.get_opts(&k, opts).await?;
            // A store that ignored the range would send it all: not read.
            if got.range.end.saturating_sub(got.range.start) > len {
                return Ok(Err(got.meta.size));
            }
            got.bytes().await.map(Ok)
        });
        match result {
            Ok(Ok(b)) => Ok(Some(b)),
            Ok(Err(size)) => Err(self.too_large(key, size, len)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
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
