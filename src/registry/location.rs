//! Where a registry lives: what `--registry` takes, parsed once into a [`Location`].
//!
//! A plain path is a directory; `s3://`, `az://`, `gs://` are object stores (the same
//! layout as on disk under a bucket or container and an optional prefix);
//! `mlflow+http(s)://host:port` is an MLflow tracking server, and `mlflow` alone the one
//! `$MLFLOW_TRACKING_URI` names. Any other `scheme://` is refused, so a misspelled
//! scheme never becomes a directory named `s3:`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The object stores a registry can live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    /// Amazon S3 and S3-compatible stores (`s3://`).
    S3,
    /// Azure Blob Storage (`az://`).
    Azure,
    /// Google Cloud Storage (`gs://`).
    Gcs,
}

impl Cloud {
    /// The URL scheme.
    pub fn scheme(self) -> &'static str {
        match self {
            Cloud::S3 => "s3",
            Cloud::Azure => "az",
            Cloud::Gcs => "gs",
        }
    }
}

/// A registry's location, as `--registry` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory.
    Dir(PathBuf),
    /// An object store bucket (or Azure container) and a prefix inside it (no leading or
    /// trailing `/`; empty for the bucket's root).
    Object {
        /// Which store.
        cloud: Cloud,
        /// Bucket or container.
        bucket: String,
        /// Key prefix.
        prefix: String,
    },
    /// An MLflow tracking server's base URL (`http(s)://host:port[/path]`, no trailing `/`).
    Mlflow {
        /// The base URL.
        url: String,
    },
}

/// Why `--registry` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("registry {given:?}: {why}")]
pub struct LocationError {
    given: String,
    why: String,
}

pub(super) fn refuse(given: &str, why: impl Into<String>) -> LocationError {
    LocationError {
        given: given.into(),
        why: why.into(),
    }
}

const SCHEMES: &str = "use a directory, s3://BUCKET[/PREFIX], az://CONTAINER[/PREFIX], gs://BUCKET[/PREFIX], \
     mlflow+http(s)://HOST:PORT or mlflow ($MLFLOW_TRACKING_URI)";

impl Location {
    /// Parses `--registry`; `mlflow_env` is `$MLFLOW_TRACKING_URI` (read by the caller, so
    /// parsing stays pure).
    pub fn parse(s: &str, mlflow_env: Option<&str>) -> Result<Self, LocationError> {
        if s.is_empty() {
            return Err(refuse(s, format!("empty; {SCHEMES}")));
        }
        if s == "mlflow" {
            let uri = mlflow_env.filter(|u| !u.is_empty()).ok_or_else(|| {
                refuse(
                    s,
                    "MLFLOW_TRACKING_URI is not set: set it to the tracking server's \
                     http(s):// URL, or pass --registry mlflow+http(s)://HOST:PORT",
                )
            })?;
            return match uri.split_once("://") {
                Some(("http" | "https", _)) => Self::parse(&format!("mlflow+{uri}"), None),
                _ => Err(refuse(
                    s,
                    format!(
                        "MLFLOW_TRACKING_URI={uri:?} is not an http(s):// tracking server \
                         (a local mlruns directory or a database is not served over the \
                         registry API): point it at `mlflow server`"
                    ),
                )),
            };
        }
        let Some((scheme, rest)) = s.split_once("://") else {
            return Ok(Location::Dir(PathBuf::from(s)));
        };
        let cloud = match scheme {
            "s3" | "s3a" => Cloud::S3,
            "az" | "azure" | "abfs" => Cloud::Azure,
            "gs" | "gcs" => Cloud::Gcs,
            "mlflow+http" | "mlflow+https" => {
                let base = rest.trim_end_matches('/');
                let host = base.split('/').next().unwrap_or("");
                if host.is_empty() {
                    return Err(refuse(s, "no host: use mlflow+http(s)://HOST:PORT"));
                }
                let http = scheme.trim_start_matches("mlflow+");
                return Ok(Location::Mlflow {
                    url: format!("{http}://{base}"),
                });
            }
            "file" => return Ok(Location::Dir(PathBuf::from(rest))),
            _ => return Err(refuse(s, format!("unknown scheme {scheme:?}; {SCHEMES}"))),
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(refuse(
                s,
                format!("no bucket: use {}://BUCKET[/PREFIX]", cloud.scheme()),
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
            && !prefix.is_empty()
        {
            return Err(refuse(
                s,
                "the prefix has an empty, `.` or `..` part: use plain names separated by /",
            ));
        }
        Ok(Location::Object {
            cloud,
            bucket: bucket.into(),
            prefix: prefix.into(),
        })
    }

    /// The directory, for a local registry.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Location::Dir(p) => Some(p),
            _ => None,
        }
    }
}

impl FromStr for Location {
    type Err = LocationError;

    /// Parses with `$MLFLOW_TRACKING_URI` from the environment (clap's value parser).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s, std::env::var("MLFLOW_TRACKING_URI").ok().as_deref())
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Dir(p) => write!(f, "{}", p.display()),
            Location::Object {
                cloud,
                bucket,
                prefix,
            } if prefix.is_empty() => write!(f, "{}://{bucket}", cloud.scheme()),
            Location::Object {
                cloud,
                bucket,
                prefix,
            } => write!(f, "{}://{bucket}/{prefix}", cloud.scheme()),
            Location::Mlflow { url } => write!(f, "mlflow+{url}"),
        }
    }
}

impl From<PathBuf> for Location {
    fn from(p: PathBuf) -> Self {
        Location::Dir(p)
    }
}

impl From<&Path> for Location {
    fn from(p: &Path) -> Self {
        Location::Dir(p.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Location, LocationError> {
        Location::parse(s, None)
    }

    #[test]
    fn every_form_parses_and_prints_back() {
        for s in [
            "models",
            "/var/lib/treeserve",
            "s3://bucket",
            "s3://bucket/team/models",
            "az://container/p",
            "gs://b/x/y",
            "mlflow+http://127.0.0.1:5000",
            "mlflow+https://host/prefix",
        ] {
            assert_eq!(p(s).unwrap().to_string(), s, "{s}");
        }
        assert_eq!(
            p("s3://bucket/pre/").unwrap().to_string(),
            "s3://bucket/pre"
        );
        assert_eq!(p("file:///x").unwrap(), Location::Dir("/x".into()));
    }

    #[test]
    fn unknown_schemes_and_empty_parts_are_refused() {
        for s in [
            "",
            "s4://bucket",
            "http://host",
            "s3://",
            "s3:///prefix",
            "s3://b/a//c",
            "gs://b/../c",
            "mlflow+http://",
            "mlflow",
        ] {
            let e = p(s).unwrap_err().to_string();
            assert!(e.starts_with("registry "), "{s}: {e}");
        }
        assert!(
            p("s4://b")
                .unwrap_err()
                .to_string()
                .contains("unknown scheme")
        );
    }

    #[test]
    fn mlflow_alone_reads_the_tracking_uri() {
        assert_eq!(
            Location::parse("mlflow", Some("http://h:5000/")).unwrap(),
            Location::Mlflow {
                url: "http://h:5000".into()
            }
        );
        let e = Location::parse("mlflow", Some("sqlite:///mlflow.db")).unwrap_err();
        assert!(e.to_string().contains("not an http(s)://"), "{e}");
    }
}
