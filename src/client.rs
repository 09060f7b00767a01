//! `treeserve score`: a small client that posts rows to a running server.

use std::io::Write;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// What `treeserve score` sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScoreInput {
    /// A CSV file of rows (columns named like the model's features; others are ignored),
    /// sent in batches.
    Csv(std::path::PathBuf),
    /// A JSON body to send as is.
    Json(String),
    /// One row as NAME=VALUE pairs separated by commas.
    Row(String),
}

/// Options of `treeserve score`.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    /// Server base URL (`/score` is appended unless the URL has a path).
    pub url: String,
    /// The rows to send; `None` is an error, reported after the URL is checked.
    pub input: Option<ScoreInput>,
    /// Rows per request with a CSV.
    pub batch_size: usize,
    /// Ask for class probabilities.
    pub probabilities: bool,
    /// With a CSV: the label column, to report accuracy.
    pub target: String,
}

/// Why the client failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not usable.
    #[error("invalid URL {0:?}: use http://HOST:PORT[/PATH]")]
    Url(String),
    /// The request failed in transport.
    #[error("request to {url} failed: {detail}")]
    Transport {
        /// The URL.
        url: String,
        /// What failed.
        detail: String,
    },
    /// Nothing answers at the address (connection refused, no such host, ...).
    #[error(
        "no treeserve at {url}: {cause}; start one with `treeserve serve --registry DIR` or give its URL"
    )]
    NoServer {
        /// The server's base URL.
        url: String,
        /// The innermost cause, e.g. `connection refused`.
        cause: String,
    },
    /// The server answered with an error status.
    #[error("server answered {status}: {body}")]
    Status {
        /// The status.
        status: StatusCode,
        /// The body.
        body: String,
    },
    /// Writing the answers to stdout failed.
    #[error("cannot write to stdout: {0}")]
    Output(std::io::Error),
    /// The input rows are unusable.
    #[error("{0}")]
    Input(String),
}

pub(crate) type HttpClient =
    Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// What went wrong with a request, for people: the error and its causes on one line, and
/// what to do when nothing listens there.
fn request_failure(e: &hyper_util::client::legacy::Error) -> String {
    let mut detail = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        detail.push_str(": ");
        detail.push_str(&c.to_string());
        cause = c.source();
    }
    detail
}

/// A connection that could not be made, as [`ClientError::NoServer`]: the base URL and
/// the innermost cause in lower case (`connection refused`).
fn no_server(uri: &Uri, e: &hyper_util::client::legacy::Error) -> ClientError {
    let mut inner: &dyn std::error::Error = e;
    while let Some(c) = inner.source() {
        inner = c;
    }
    let text = inner.to_string();
    let text = text.split(" (os error").next().unwrap_or_default();
    let mut cause = text.to_owned();
    if let Some(first) = cause.get(..1) {
        cause.replace_range(..1, &first.to_lowercase());
    }
    let url = match (uri.scheme_str(), uri.authority()) {
        (Some(s), Some(a)) => format!("{s}://{a}"),
        _ => uri.to_string(),
    };
    ClientError::NoServer { url, cause }
}

pub(crate) async fn send(
    client: &HttpClient,
    method: Method,
    uri: &Uri,
    body: Option<Vec<u8>>,
) -> Result<Bytes, ClientError> {
    let transport = |detail: String| ClientError::Transport {
        url: uri.to_string(),
        detail,
    };
    let mut req = Request::builder().method(method).uri(uri.clone());
    if body.is_some() {
        req = req.header(http::header::CONTENT_TYPE, "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| transport(e.to_string()))?;
    let resp = client.request(req).await.map_err(|e| {
        if e.is_connect() {
            no_server(uri, &e)
        } else {
            transport(request_failure(&e))
        }
    })?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| transport(e.to_string()))?
        .to_bytes();
    if !status.is_success() {
        return Err(ClientError::Status {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    Ok(bytes)
}

fn endpoints(url: &str, probabilities: bool) -> Result<(Uri, Uri), ClientError> {
    let base: Uri = url.parse().map_err(|_| ClientError::Url(url.into()))?;
    let (Some(scheme), Some(authority)) = (base.scheme_str(), base.authority()) else {
        return Err(ClientError::Url(url.into()));
    };
    if scheme != "http" {
        return Err(ClientError::Url(url.into()));
    }
    let path = match base.path() {
        "" | "/" => "/score",
        p => p,
    };
    let query = if probabilities {
        "?probabilities=true"
    } else {
        ""
    };
    let score = format!("{scheme}://{authority}{path}{query}")
        .parse()
        .map_err(|_| ClientError::Url(url.into()))?;
    let models = format!("{scheme}://{authority}/models")
        .parse()
        .map_err(|_| ClientError::Url(url.into()))?;
    Ok((score, models))
}

/// A single-threaded runtime for the client commands.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, ClientError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ClientError::Input(e.to_string()))
}

/// Writes one line of the answers; the caller stops on a failed write (a closed pipe:
/// `treeserve score ... | head -1`).
fn put(out: &mut impl Write, line: std::fmt::Arguments<'_>) -> Result<(), ClientError> {
    out.write_fmt(line)
        .and_then(|()| out.write_all(b"\n"))
        .map_err(ClientError::Output)
}

/// Runs `treeserve score`: posts the rows and prints the answers on stdout.
pub fn score_command(a: &ScoreOptions) -> Result<(), ClientError> {
    runtime()?.block_on(score_async(a))
}

async fn score_async(a: &ScoreOptions) -> Result<(), ClientError> {
    let (score_uri, models_uri) = endpoints(&a.url, a.probabilities)?;
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let mut out = std::io::stdout().lock();
    if let Some(ScoreInput::Json(json)) = &a.input {
        let body = send(
            &client,
            Method::POST,
            &score_uri,
            Some(json.clone().into_bytes()),
        )
        .await?;
        put(&mut out, format_args!("{}", String::from_utf8_lossy(&body)))?;
        return Ok(());
    }
    if let Some(ScoreInput::Row(row)) = &a.input {
        let mut obj = serde_json::Map::new();
        for pair in row.split(',').filter(|p| !p.trim().is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| ClientError::Input(format!("{pair:?} is not NAME=VALUE")))?;
            let v: f64 = v
                .trim()
                .parse()
                .map_err(|_| ClientError::Input(format!("{v:?} is not a number")))?;
            obj.insert(k.trim().to_owned(), serde_json::json!(v));
        }
        let body = send(
            &client,
            Method::POST,
            &score_uri,
            Some(serde_json::to_vec(&obj).expect("json")),
        )
        .await?;
        put(&mut out, format_args!("{}", String::from_utf8_lossy(&body)))?;
        return Ok(());
    }
    let Some(ScoreInput::Csv(csv_path)) = &a.input else {
        return Err(ClientError::Input(
            "give --csv FILE, --row NAME=VALUE,... or --json BODY".into(),
        ));
    };
    // The server says which features it wants; send those columns.
    let models: serde_json::Value =
        serde_json::from_slice(&send(&client, Method::GET, &models_uri, None).await?)
            .map_err(|e| ClientError::Input(format!("bad /models answer: {e}")))?;
    let model = &models["models"][0];
    let features: Vec<String> = serde_json::from_value(model["features"].clone())
        .map_err(|e| ClientError::Input(format!("bad /models answer: {e}")))?;
    let output_key = model["output_key"]
        .as_str()
        .unwrap_or("predicted")
        .to_owned();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(csv_path)
        .map_err(|e| ClientError::Input(format!("{}: {e}", csv_path.display())))?;
    let header = reader
        .headers()
        .map_err(|e| ClientError::Input(e.to_string()))?
        .clone();
    let cols: Vec<usize> = features
        .iter()
        .map(|f| {
            header
                .iter()
                .position(|h| h == f)
                .ok_or_else(|| ClientError::Input(format!("the CSV has no column {f:?}")))
        })
        .collect::<Result<_, _>>()?;
    let target = header.iter().position(|h| h == a.target);
    let mut rows: Vec<serde_json::Value> = Vec::new();
    let mut actual: Vec<Option<String>> = Vec::new();
    let (mut n, mut correct, mut labelled) = (0usize, 0usize, 0usize);
    let mut records = reader.records();
    loop {
        let rec = records.next();
        let done = rec.is_none();
        if let Some(rec) = rec {
            let rec = rec.map_err(|e| ClientError::Input(e.to_string()))?;
            let mut obj = serde_json::Map::new();
            for (f, &c) in features.iter().zip(&cols) {
                let cell = rec.get(c).unwrap_or("");
                let v: f64 = cell.parse().map_err(|_| {
                    ClientError::Input(format!(
                        "row {}: {f} = {cell:?} is not a number",
                        n + rows.len() + 1
                    ))
                })?;
                obj.insert(f.clone(), serde_json::json!(v));
            }
            rows.push(serde_json::Value::Object(obj));
            actual.push(target.and_then(|t| rec.get(t)).map(str::to_owned));
        }
        if rows.len() >= a.batch_size.max(1) || (done && !rows.is_empty()) {
            let body = send(
                &client,
                Method::POST,
                &score_uri,
                Some(serde_json::to_vec(&rows).expect("json")),
            )
            .await?;
            let answer: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| ClientError::Input(format!("bad answer: {e}")))?;
            for (i, (o, act)) in answer["output"]
                .as_array()
                .into_iter()
                .flatten()
                .zip(&actual)
                .enumerate()
            {
                let predicted = o[&output_key].as_str().unwrap_or_default();
                let mut line = format!("{}\t{predicted}", n + i + 1);
                if let Some(act) = act {
                    labelled += 1;
                    correct += usize::from(act == predicted);
                    line.push('\t');
                    line.push_str(act);
                }
                if let Some(p) = o.get("probabilities") {
                    line.push('\t');
                    line.push_str(&p.to_string());
                }
                put(&mut out, format_args!("{line}"))?;
            }
            n += rows.len();
            rows.clear();
            actual.clear();
        }
        if done {
            break;
        }
    }
    if labelled > 0 {
        put(
            &mut out,
            format_args!(
                "accuracy {:.4} ({correct}/{labelled})",
                correct as f64 / labelled as f64
            ),
        )?;
    }
    eprintln!("scored {n} rows");
    Ok(())
}
