//! The HTTP side of the MLflow registry: one `reqwest` client, credentials from the
//! environment, a timeout on every call, capped response bodies, and MLflow's error
//! answers turned into [`ApiError`]s that say what to do.

use std::time::Duration;

use serde::de::DeserializeOwned;

use super::super::RegistryError;
use super::super::object::run;

/// Timeout of connecting to the tracking server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of one API call (JSON in, JSON out).
const API_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of one artifact transfer, whole (a stalled one is also cut by [`READ_TIMEOUT`]).
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest pause between two reads of a response.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest API answer read.
pub(super) const MAX_API_BYTES: u64 = 16 << 20;
/// Largest error body read (the rest is dropped).
const MAX_ERROR_BYTES: u64 = 64 << 10;

/// How requests authenticate (MLflow's own environment variables).
#[derive(Clone)]
enum Auth {
    None,
    Bearer(String),
    Basic(String, String),
}

/// A tracking server's REST API.
#[derive(Clone)]
pub(super) struct Client {
    http: reqwest::Client,
    /// `http(s)://host:port[/path]`, no trailing `/`.
    base: String,
    auth: Auth,
}

/// A failed call: MLflow's `error_code` (empty when the call failed before MLflow
/// answered, or it answered no JSON error) and the error for people.
#[derive(Debug)]
pub(super) struct ApiError {
    pub code: String,
    pub err: RegistryError,
}

impl From<ApiError> for RegistryError {
    fn from(e: ApiError) -> Self {
        e.err
    }
}

/// One request.
pub(super) enum Body {
    None,
    Json(serde_json::Value),
    Bytes(Vec<u8>),
}

impl Client {
    /// A client of the server at `base`, with credentials from `MLFLOW_TRACKING_TOKEN`
    /// (bearer) or `MLFLOW_TRACKING_USERNAME` and `MLFLOW_TRACKING_PASSWORD` (basic).
    pub fn new(base: &str) -> Result<Self, RegistryError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let configure = |detail: String| RegistryError::Remote {
            op: "configure",
            url: format!("mlflow+{base}"),
            detail,
        };
        let auth = match (
            var("MLFLOW_TRACKING_TOKEN"),
            var("MLFLOW_TRACKING_USERNAME"),
            var("MLFLOW_TRACKING_PASSWORD"),
        ) {
            (Some(t), _, _) => Auth::Bearer(t),
            (None, Some(u), Some(p)) => Auth::Basic(u, p),
            (None, None, None) => Auth::None,
            (None, Some(_), None) | (None, None, Some(_)) => {
                return Err(configure(
                    "set both MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or neither \
                     (or MLFLOW_TRACKING_TOKEN for a bearer token)"
                        .into(),
                ));
            }
        };
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build()
            .map_err(|e| configure(format!("cannot set up an HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: base.to_owned(),
            auth,
        })
    }

    /// `mlflow+BASE/PATH`, for messages.
    pub fn shown(&self, path: &str) -> String {
        format!("mlflow+{}{path}", self.base)
    }

    /// GET `/api/2.0/mlflow/ENDPOINT?QUERY`, JSON answer.
    pub fn get<T: DeserializeOwned>(
        &self,
        op: &'static str,
        endpoint: &str,
        query: &[(&str, &str)],
    ) -> Result<T, ApiError> {
        let path = format!("/api/2.0/mlflow/{endpoint}{}", query_string(query));
        self.json(op, reqwest::Method::GET, &path, Body::None)
    }

    /// POST JSON to `/api/2.0/mlflow/ENDPOINT`, JSON answer.
    pub fn post<T: DeserializeOwned>(
        &self,
        op: &'static str,
        endpoint: &str,
        body: serde_json::Value,
    ) -> Result<T, ApiError> {
        let path = format!("/api/2.0/mlflow/{endpoint}");
        self.json(op, reqwest::Method::POST, &path, Body::Json(body))
    }

    fn json<T: DeserializeOwned>(
        &self,
        op: &'static str,
        method: reqwest::Method,
        path: &str,
        body: Body,
    ) -> Result<T, ApiError> {
        let bytes = self.call(op, method, path, body, API_TIMEOUT, MAX_API_BYTES)?;
        // An empty answer is an empty object (some endpoints answer `{}` or nothing).
        let bytes = if bytes.is_empty() { &b"{}"[..] } else { &bytes };
        serde_json::from_slice(bytes).map_err(|e| ApiError {
            code: String::new(),
            err: RegistryError::Remote {
                op,
                url: self.shown(path),
                detail: format!(
                    "an answer that is not MLflow's JSON ({e}): is this an MLflow tracking server?"
                ),
            },
        })
    }

    /// An artifact's bytes through the artifact proxy, `None` when absent; refused over
    /// `cap` bytes (before the body is read when the size is announced).
    pub fn download(
        &self,
        artifact_path: &str,
        cap: u64,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let path = artifact_url(artifact_path);
        match self.call(
            "download",
            reqwest::Method::GET,
            &path,
            Body::None,
            TRANSFER_TIMEOUT,
            cap,
        ) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.code == "RESOURCE_DOES_NOT_EXIST" || e.code == "404" => Ok(None),
            Err(e) => Err(e.err),
        }
    }

    /// Uploads an artifact through the artifact proxy (replacing one already there).
    pub fn upload(&self, artifact_path: &str, bytes: Vec<u8>) -> Result<(), RegistryError> {
        let path = artifact_url(artifact_path);
        self.call(
            "upload",
            reqwest::Method::PUT,
            &path,
            Body::Bytes(bytes),
            TRANSFER_TIMEOUT,
            MAX_ERROR_BYTES,
        )
        .map(drop)
        .map_err(Into::into)
    }

    /// The files and directories directly under an artifact directory.
    pub fn list(&self, artifact_path: &str) -> Result<Vec<ArtifactFile>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Listing {
            #[serde(default)]
            files: Vec<ArtifactFile>,
        }
        let path = format!(
            "/api/2.0/mlflow-artifacts/artifacts{}",
            query_string(&[("path", artifact_path)])
        );
        let l: Listing = self.json("list", reqwest::Method::GET, &path, Body::None)?;
        Ok(l.files)
    }

    /// One call; the body of a 2xx answer, else an [`ApiError`].
    fn call(
        &self,
        op: &'static str,
        method: reqwest::Method,
        path: &str,
        body: Body,
        timeout: Duration,
        cap: u64,
    ) -> Result<Vec<u8>, ApiError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url).timeout(timeout);
        req = match &self.auth {
            Auth::None => req,
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
        };
        req = match body {
            Body::None => req,
            Body::Json(v) => req
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&v).expect("JSON serializes")),
            Body::Bytes(b) => req
                .header("content-type", "application/octet-stream")
                .body(b),
        };
        let outcome = run(async move {
            let mut resp = req.send().await?;
            let status = resp.status().as_u16();
            let ok = (200..300).contains(&status);
            let limit = if ok { cap } else { MAX_ERROR_BYTES };
            if ok && resp.content_length().is_some_and(|n| n > limit) {
                return Ok(Read::TooLarge(resp.content_length().unwrap_or(0)));
            }
            let mut bytes = Vec::new();
            while let Some(chunk) = resp.chunk().await? {
                if (bytes.len() + chunk.len()) as u64 > limit {
                    if ok {
                        return Ok(Read::TooLarge((bytes.len() + chunk.len()) as u64));
                    }
                    break;
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok::<_, reqwest::Error>(Read::Done(status, bytes))
        });
        let shown = self.shown(path);
        let fail = |code: String, detail: String| ApiError {
            code,
            err: RegistryError::Remote {
                op,
                url: shown.clone(),
                detail,
            },
        };
        match outcome {
            Err(e) => Err(fail(String::new(), transport_detail(&e))),
            Ok(Read::TooLarge(n)) => Err(ApiError {
                code: String::new(),
                err: RegistryError::Refused {
                    path: shown.clone(),
                    detail: format!("{n} bytes or more, over the {cap}-byte limit"),
                },
            }),
            Ok(Read::Done(status, bytes)) if (200..300).contains(&status) => Ok(bytes),
            Ok(Read::Done(status, bytes)) => {
                let (code, detail) = status_detail(status, &bytes);
                Err(fail(code, detail))
            }
        }
    }
}

enum Read {
    Done(u16, Vec<u8>),
    TooLarge(u64),
}

/// One entry of an artifact listing.
#[derive(Debug, Clone, serde::Deserialize)]
pub(super) struct ArtifactFile {
    /// The name, relative to the listed directory.
    pub path: String,
    #[serde(default)]
    pub is_dir: bool,
    /// Bytes (absent for directories).
    #[serde(default)]
    pub file_size: Option<u64>,
}

/// `/api/2.0/mlflow-artifacts/artifacts/A/B/C`, each segment percent-encoded.
fn artifact_url(artifact_path: &str) -> String {
    let mut s = String::from("/api/2.0/mlflow-artifacts/artifacts");
    for seg in artifact_path.split('/').filter(|s| !s.is_empty()) {
        s.push('/');
        s.push_str(&encode(seg));
    }
    s
}

/// `?k=v&…`, percent-encoded; empty for no pairs.
fn query_string(query: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in query.iter().enumerate() {
        s.push(if i == 0 { '?' } else { '&' });
        s.push_str(&encode(k));
        s.push('=');
        s.push_str(&encode(v));
    }
    s
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(super) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What a transport failure means for the user.
fn transport_detail(e: &reqwest::Error) -> String {
    let root = {
        let mut s: &dyn std::error::Error = e;
        while let Some(next) = s.source() {
            s = next;
        }
        s.to_string()
    };
    if e.is_timeout() {
        format!("no answer in time ({root}): check that the MLflow server is up and not overloaded")
    } else if e.is_connect() {
        format!(
            "cannot connect ({root}): check the registry URL and that `mlflow server` is running there"
        )
    } else {
        format!("the call failed ({root}): check the registry URL and the network")
    }
}

/// MLflow's `error_code` (or the status, for answers without one) and what to do.
fn status_detail(status: u16, body: &[u8]) -> (String, String) {
    #[derive(serde::Deserialize)]
    struct MlflowError {
        #[serde(default)]
        error_code: String,
        #[serde(default)]
        message: String,
    }
    let text = String::from_utf8_lossy(body);
    let parsed: Option<MlflowError> = serde_json::from_slice(body).ok();
    let message = match &parsed {
        Some(e) if !e.message.is_empty() => one_line(&e.message),
        _ => one_line(&text),
    };
    let code = match &parsed {
        Some(e) if !e.error_code.is_empty() => e.error_code.clone(),
        _ => status.to_string(),
    };
    let what = match status {
        401 => " (set MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)"
            .to_owned(),
        403 if text.contains("Host header") => {
            " (the server refuses this Host: start `mlflow server` with --allowed-hosts naming \
             the host in --registry, or use that host name)"
                .to_owned()
        }
        403 => " (these credentials may not do this: check MLFLOW_TRACKING_TOKEN or \
                MLFLOW_TRACKING_USERNAME/PASSWORD and the user's permissions)"
            .to_owned(),
        404 if parsed.is_none() => {
            " (no such endpoint: is this an MLflow tracking server, started with --serve-artifacts?)"
                .to_owned()
        }
        _ => String::new(),
    };
    (code, format!("HTTP {status}: {message}{what}"))
}

/// The first line of `s`, at most 300 characters.
fn one_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    match line.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_queries_and_artifact_paths() {
        assert_eq!(
            query_string(&[("filter", "name='a b'"), ("x", "1")]),
            "?filter=name%3D%27a%20b%27&x=1"
        );
        assert_eq!(
            artifact_url("0/models/m-1/artifacts/model.ubj"),
            "/api/2.0/mlflow-artifacts/artifacts/0/models/m-1/artifacts/model.ubj"
        );
        assert_eq!(
            artifact_url("a b/c"),
            "/api/2.0/mlflow-artifacts/artifacts/a%20b/c"
        );
    }

    #[test]
    fn error_answers_say_what_to_do() {
        let (code, d) = status_detail(
            404,
            br#"{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Registered Model with name=x not found"}"#,
        );
        assert_eq!(code, "RESOURCE_DOES_NOT_EXIST");
        assert!(d.contains("name=x not found"), "{d}");
        let (_, d) = status_detail(
            403,
            b"Invalid Host header - possible DNS rebinding attack detected",
        );
        assert!(d.contains("--allowed-hosts"), "{d}");
        let (code, d) = status_detail(401, b"");
        assert_eq!(code, "401");
        assert!(d.contains("MLFLOW_TRACKING_TOKEN"), "{d}");
        let (_, d) = status_detail(500, "line one\nline two".as_bytes());
        assert!(!d.contains('\n'), "{d}");
    }
}
