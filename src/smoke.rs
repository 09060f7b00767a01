//! `treeserve health` (the container's health check) and `treeserve smoke` (the release
//! smoke test): HTTP clients of a running server.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use http::{Method, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::client::{ClientError, HttpClient, runtime, send};

/// The canonical request of Azure's docs.
pub const CANONICAL: &str =
    r#"{"SepalLengthCm": 6.6, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4}"#;

fn base(url: &str) -> Result<String, ClientError> {
    let uri: Uri = url.parse().map_err(|_| ClientError::Url(url.into()))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http"), Some(a)) => Ok(format!("http://{a}")),
        _ => Err(ClientError::Url(url.into())),
    }
}

fn uri(base: &str, path: &str) -> Result<Uri, ClientError> {
    format!("{base}{path}")
        .parse()
        .map_err(|_| ClientError::Url(format!("{base}{path}")))
}

/// The URL `treeserve health` checks by default: the port of `TREESERVE_LISTEN` (as the
/// server reads it) on loopback, else 8080.
pub fn default_health_url() -> String {
    let port = std::env::var("TREESERVE_LISTEN")
        .ok()
        .and_then(|l| l.parse::<std::net::SocketAddr>().ok())
        .map_or(8080, |a| a.port());
    format!("http://127.0.0.1:{port}")
}

/// `treeserve health`: GET `/health/ready`; `Ok` on 200.
pub fn health(url: &str, timeout: Duration) -> Result<(), ClientError> {
    let base = base(url)?;
    let ready = uri(&base, "/health/ready")?;
    runtime()?.block_on(async {
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        match tokio::time::timeout(timeout, send(&client, Method::GET, &ready, None)).await {
            Ok(r) => r.map(|_| ()),
            Err(_) => Err(ClientError::Transport {
                url: ready.to_string(),
                detail: format!("no answer within {}", humantime::format_duration(timeout)),
            }),
        }
    })
}

/// One smoke check's outcome.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// `None` when it passed; else why not.
    pub failure: Option<String>,
    /// What was seen, for the report.
    pub detail: String,
    /// How long it took.
    pub elapsed: Duration,
}

/// The smoke test's result.
#[derive(Debug, Clone)]
pub struct Report {
    /// The server checked.
    pub url: String,
    /// Every check, in order.
    pub checks: Vec<Check>,
}

impl Report {
    /// Checks that failed.
    pub fn failures(&self) -> usize {
        self.checks.iter().filter(|c| c.failure.is_some()).count()
    }

    /// A readable report.
    pub fn text(&self) -> String {
        let mut out = format!("treeserve smoke test of {}\n", self.url);
        for c in &self.checks {
            let status = if c.failure.is_some() { "FAIL" } else { "ok  " };
            let _ = write!(
                out,
                "  {status} {:<40} {:>7.1} ms  {}",
                c.name,
                c.elapsed.as_secs_f64() * 1e3,
                c.detail
            );
            if let Some(f) = &c.failure {
                let _ = write!(out, "\n       {f}");
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "{} checks, {} failed",
            self.checks.len(),
            self.failures()
        );
        out
    }

    /// JUnit XML, as CI systems publish it.
    pub fn junit(&self) -> String {
        let total: f64 = self.checks.iter().map(|c| c.elapsed.as_secs_f64()).sum();
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            x,
            "<testsuites><testsuite name=\"treeserve smoke\" tests=\"{}\" failures=\"{}\" errors=\"0\" time=\"{total:.3}\">",
            self.checks.len(),
            self.failures()
        );
        let _ = writeln!(
            x,
            "  <properties><property name=\"url\" value=\"{}\"/></properties>",
            escape(&self.url)
        );
        for c in &self.checks {
            let _ = write!(
                x,
                "  <testcase classname=\"smoke\" name=\"{}\" time=\"{:.3}\">",
                escape(&c.name),
                c.elapsed.as_secs_f64()
            );
            if let Some(f) = &c.failure {
                let _ = write!(x, "<failure message=\"{}\"/>", escape(f));
            }
            let _ = writeln!(
                x,
                "<system-out>{}</system-out></testcase>",
                escape(&c.detail)
            );
        }
        x.push_str("</testsuite></testsuites>\n");
        x
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

struct Smoke {
    client: HttpClient,
    base: String,
    checks: Vec<Check>,
}

impl Smoke {
    /// Runs one check: `f` returns what it saw, or why it failed.
    async fn check<F, Fut>(&mut self, name: impl Into<String>, f: F) -> Option<Value>
    where
        F: FnOnce(HttpClient, String) -> Fut,
        Fut: std::future::Future<Output = Result<(String, Value), String>>,
    {
        let started = Instant::now();
        let result = f(self.client.clone(), self.base.clone()).await;
        let elapsed = started.elapsed();
        let (failure, detail, value) = match result {
            Ok((detail, v)) => (None, detail, Some(v)),
            Err(e) => (Some(e), String::new(), None),
        };
        self.checks.push(Check {
            name: name.into(),
            failure,
            detail,
            elapsed,
        });
        value
    }
}

async fn get_json(client: &HttpClient, base: &str, path: &str) -> Result<Value, String> {
    let body = send(
        client,
        Method::GET,
        &uri(base, path).map_err(|e| e.to_string())?,
        None,
    )
    .await
    .map_err(|e| e.to_string())?;
    serde_json::from_slice(&body).map_err(|e| format!("{path} is not JSON: {e}"))
}

async fn post_json(
    client: &HttpClient,
    base: &str,
    path: &str,
    body: &Value,
) -> Result<Value, String> {
    let body = serde_json::to_vec(body).expect("json");
    let resp = send(
        client,
        Method::POST,
        &uri(base, path).map_err(|e| e.to_string())?,
        Some(body),
    )
    .await
    .map_err(|e| e.to_string())?;
    serde_json::from_slice(&resp).map_err(|e| format!("{path} answered non-JSON: {e}"))
}

/// Checks that every line of a Prometheus text exposition parses.
fn check_exposition(text: &str) -> Result<usize, String> {
    let mut samples = 0;
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("line {}: no value: {line:?}", n + 1))?;
        value
            .parse::<f64>()
            .map_err(|_| format!("line {}: bad value {value:?}", n + 1))?;
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        let valid = name.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
        });
        if name.is_empty() || !valid || (name_end < series.len() && !series.ends_with('}')) {
            return Err(format!("line {}: bad series {series:?}", n + 1));
        }
        samples += 1;
    }
    if !text.contains("treeserve_http_requests_total") {
        return Err("no treeserve_http_requests_total".into());
    }
    Ok(samples)
}

/// `treeserve smoke`: checks a running server end to end.
pub fn smoke(url: &str) -> Result<Report, ClientError> {
    let base = base(url)?;
    runtime()?.block_on(async {
        let mut s = Smoke {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: base.clone(),
            checks: Vec::new(),
        };
        // Nothing listening there: one line, not the same failure under every check.
        let live = uri(&base, "/health/live")?;
        if let Err(e @ ClientError::NoServer { .. }) =
            send(&s.client, Method::GET, &live, None).await
        {
            return Err(e);
        }
        let ready = s
            .check("GET /health/ready answers 200", |c, b| async move {
                let v = get_json(&c, &b, "/health/ready").await?;
                Ok((format!("{v}"), v))
            })
            .await
            .unwrap_or(Value::Null);
        let models = s
            .check("GET /models lists loaded models", |c, b| async move {
                let v = get_json(&c, &b, "/models").await?;
                let list = v["models"].as_array().cloned().unwrap_or_default();
                let loaded: Vec<String> = list
                    .iter()
                    .filter(|m| m["ready"] == true)
                    .map(|m| format!("{}@{}", m["name"].as_str().unwrap_or("?"), m["version"]))
                    .collect();
                if loaded.is_empty() {
                    return Err("no model is loaded".into());
                }
                Ok((loaded.join(", "), Value::Array(list)))
            })
            .await
            .unwrap_or(Value::Array(vec![]));
        let models: Vec<Value> = models.as_array().cloned().unwrap_or_default();
        // `/score` is always checked: with the model readiness names (or `/models` marks
        // default), or, when readiness says `/score` has none, that it says so too.
        let score_model = ready["score"]["model"].as_str().map(str::to_owned);
        let default = match &score_model {
            Some(name) => models.iter().find(|m| m["name"] == name.as_str()).cloned(),
            None => models.iter().find(|m| m["default"] == true).cloned(),
        };
        let why_none = ready["score"]["why"].as_str().map(str::to_owned);
        if default.is_none() {
            s.check("POST /score the canonical request", |c, b| async move {
                let body: Value = serde_json::from_str(CANONICAL).expect("valid");
                let answer = post_json(&c, &b, "/score", &body).await;
                match (answer, why_none) {
                    (Err(e), Some(why)) if e.contains("no_default_model") => {
                        Ok((format!("no model, as /health/ready says: {why}"), Value::Null))
                    }
                    (Err(e), _) => Err(format!("/score does not answer: {e}")),
                    (Ok(v), _) => Err(format!(
                        "/score answered {v} but neither /health/ready nor /models names its model"
                    )),
                }
            })
            .await;
        }
        if let Some(m) = &default {
            let classes = m["classes"].clone();
            let regression = m["task"] == "regression";
            let key = m["output_key"].as_str().unwrap_or_default().to_owned();
            // The README's request when the default model reads IRIS's features, else the
            // model's first golden row.
            let canonical: Value = serde_json::from_str(CANONICAL).expect("valid");
            let iris = canonical.as_object().is_some_and(|o| {
                m["features"].as_array().is_some_and(|f| {
                    f.len() == o.len() && f.iter().all(|n| n.as_str().is_some_and(|n| o.contains_key(n)))
                })
            });
            let body = if iris {
                canonical
            } else {
                m["golden_rows"][0]["features"].clone()
            };
            s.check("POST /score the canonical request", |c, b| async move {
                let v = post_json(&c, &b, "/score", &body).await?;
                let answer = &v["output"][&key];
                let known = if regression {
                    answer.is_number()
                } else {
                    classes.as_array().is_some_and(|cs| cs.contains(answer))
                };
                if !known {
                    return Err(format!("answer {v} has no known {} under {key:?}", if regression { "number" } else { "class" }));
                }
                Ok((format!("{v}"), v))
            })
            .await;
        }
        for m in &models {
            if m["ready"] != true {
                continue;
            }
            let name = m["name"].as_str().unwrap_or_default().to_owned();
            let golden = m["golden_rows"].as_array().cloned().unwrap_or_default();
            let key = m["output_key"].as_str().unwrap_or_default().to_owned();
            let path = m["score_path"].as_str().unwrap_or_default().to_owned();
            let rows: Vec<Value> = golden.iter().map(|g| g["features"].clone()).collect();
            // A regressor's golden rows give values: compared within the import tolerance.
            let regression = m["task"] == "regression";
            let expected: Vec<Value> = golden
                .iter()
                .map(|g| g[if regression { "value" } else { "class" }].clone())
                .collect();
            let (rows2, expected2) = (rows.clone(), expected.clone());
            s.check(format!("{name}: golden rows via {path}"), |c, b| async move {
                if rows.is_empty() {
                    return Err("the model lists no golden rows".into());
                }
                let v = post_json(&c, &b, &path, &Value::Array(rows.clone())).await?;
                let got: Vec<Value> = v["output"]
                    .as_array()
                    .map(|a| a.iter().map(|o| o[&key].clone()).collect())
                    .unwrap_or_default();
                if !same_answers(&got, &expected) {
                    return Err(format!("expected {expected:?}, got {got:?}"));
                }
                Ok((format!("{} rows as expected", got.len()), v))
            })
            .await;
            let features = m["features"].clone();
            let infer = format!("/v2/models/{name}/infer");
            s.check(format!("{name}: golden rows via {infer}"), |c, b| async move {
                let names: Vec<&str> = features
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let data: Vec<Vec<Value>> = rows2
                    .iter()
                    .map(|r| names.iter().map(|n| r[n].clone()).collect())
                    .collect();
                let body = json!({
                    "id": "smoke",
                    "inputs": [{"name": "input", "shape": [data.len(), names.len()], "datatype": "FP64", "data": data}],
                    "outputs": [{"name": "label"}],
                });
                let v = post_json(&c, &b, &infer, &body).await?;
                let got = v["outputs"][0]["data"].as_array().cloned().unwrap_or_default();
                if !same_answers(&got, &expected2) || v["id"] != "smoke" {
                    return Err(format!("expected labels {expected2:?}, got {v}"));
                }
                Ok((format!("version {}", v["model_version"]), v))
            })
            .await;
        }
        s.check("GET /metrics parses", |c, b| async move {
            let text = send(&c, Method::GET, &uri(&b, "/metrics").map_err(|e| e.to_string())?, None)
                .await
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8(text.to_vec()).map_err(|e| e.to_string())?;
            let n = check_exposition(&text)?;
            Ok((format!("{n} samples"), Value::Null))
        })
        .await;
        Ok(Report {
            url: base,
            checks: s.checks,
        })
    })
}

/// Labels equal, or numbers within the import's tolerance (1e-6 relative).
fn same_answers(got: &[Value], expected: &[Value]) -> bool {
    got.len() == expected.len()
        && got
            .iter()
            .zip(expected)
            .all(|(g, e)| match (g.as_f64(), e.as_f64()) {
                (Some(a), Some(b)) => {
                    (a - b).abs() <= crate::model::GOLDEN_TOLERANCE * b.abs().max(1e-3)
                }
                _ => g == e,
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_lines_are_checked() {
        assert_eq!(
            check_exposition("# HELP x y\ntreeserve_http_requests_total{a=\"b\"} 3\nup 1\n"),
            Ok(2)
        );
        assert!(check_exposition("treeserve_http_requests_total 1\nbad line\n").is_err());
        assert!(check_exposition("treeserve_http_requests_total{a=\"b\" 1\n").is_err());
    }

    #[test]
    fn junit_escapes_and_counts() {
        let r = Report {
            url: "http://x".into(),
            checks: vec![Check {
                name: "a<b".into(),
                failure: Some("\"bad\" & worse".into()),
                detail: String::new(),
                elapsed: Duration::from_millis(3),
            }],
        };
        let x = r.junit();
        assert!(x.contains("tests=\"1\" failures=\"1\""), "{x}");
        assert!(x.contains("name=\"a&lt;b\""), "{x}");
        assert!(x.contains("&quot;bad&quot; &amp; worse"), "{x}");
    }
}
