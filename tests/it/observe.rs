//! Metrics checked by the real tools: promtool, and a real Prometheus server scraping the
//! real binary.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// A tool the tests need; `.ci/run` installs it (Debian package `prometheus`).
fn tool(name: &str) -> String {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{name} is not installed: run `bash .ci/run`, which installs it (apt-get install prometheus)"
    );
    name.to_owned()
}

#[tokio::test]
async fn promtool_accepts_the_exposition() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    app.post("/score", VERSICOLOR).await;
    app.post("/score", "{").await;
    app.get("/nope").await;
    let text = app.get("/metrics").await.text().await.unwrap();
    let mut child = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Prometheus process and its data directory, both removed on drop.
struct Prometheus {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn query(client: &reqwest::Client, base: &str, q: &str) -> Option<f64> {
    let v: Value = client
        .get(format!("{base}/api/v1/query?query={}", percent_encode(q)))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[tokio::test]
async fn a_real_prometheus_scrapes_request_counts_and_latency_quantiles() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(
        reg.path(),
        &["--drift-min-rows", "1", "--feedback-window", "100"],
    );
    for _ in 0..37 {
        assert_eq!(app.post("/score", VERSICOLOR).await.status(), 200);
    }
    // A labelled answer, so that the live-quality families have series.
    let labelled = app
        .client
        .post(app.url("/score"))
        .header("content-type", "application/json")
        .header("x-request-id", "observe-1")
        .body(VERSICOLOR)
        .send()
        .await
        .unwrap();
    assert_eq!(labelled.status(), 200);
    let joined = app
        .post(
            "/feedback",
            r#"{"request_id": "observe-1", "label": "Iris-versicolor"}"#,
        )
        .await;
    assert_eq!(joined.status(), 200);
    // A free port for Prometheus (it cannot report a port 0 choice).
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: treeserve\n    static_configs:\n      - targets: ['{}']\n",
            app.addr
        ),
    )
    .unwrap();
    let child = Command::new(tool("prometheus"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _prometheus = Prometheus { child, _dir: dir };
    let base = format!("http://127.0.0.1:{port}");
    let client = crate::common::http_client().no_proxy().build().unwrap();
    let started = Instant::now();
    let count = loop {
        let q = r#"treeserve_http_requests_total{route="/score",method="POST",status="200"}"#;
        if let Some(v) = query(&client, &base, q).await {
            break v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "Prometheus scraped nothing in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(count, 38.0, "37 answers and the labelled one");
    let p99 = query(
        &client,
        &base,
        r#"histogram_quantile(0.99, sum by (le) (treeserve_http_request_duration_seconds_bucket{route="/score"}))"#,
    )
    .await
    .expect("a quantile");
    assert!(p99 > 0.0 && p99 < 1.0, "p99 {p99}");
    let up = query(&client, &base, r#"up{job="treeserve"}"#).await;
    assert_eq!(up, Some(1.0));

    // Every query of the shipped Grafana dashboard is valid PromQL for this Prometheus,
    // and every metric it names is one treeserve exports.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/grafana/treeserve.json")).unwrap(),
    )
    .unwrap();
    app.post("/score", "{").await; // a rejection, so that family has a series
    let exposition = app.get("/metrics").await.text().await.unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 4);
    for target in panels.iter().flat_map(|p| p["targets"].as_array().unwrap()) {
        let expr = target["expr"]
            .as_str()
            .unwrap()
            .replace("$__rate_interval", "1m")
            .replace("$instance", ".*");
        let v: Value = client
            .get(format!(
                "{base}/api/v1/query?query={}",
                percent_encode(&expr)
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["status"], "success", "{expr}: {v}");
        for name in expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("treeserve_"))
        {
            let family = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                exposition.contains(&format!("# TYPE {family} ")),
                "{name} is not exported"
            );
        }
    }
}

#[tokio::test]
async fn logs_can_be_json_lines() {
    let reg = TestRegistry::new();
    let logs = json_logs_of(&reg, "warn", |_, _| async {}).await;
    let first = logs.first().expect("a log line");
    assert_eq!(first["level"], "WARN", "{logs:?}");
    let message = first["fields"]["message"].as_str().unwrap();
    assert!(message.contains("waiting for a model"), "{logs:?}");
    let error = first["fields"]["error"].as_str().unwrap();
    assert!(error.contains("no model"), "{logs:?}");
}

/// Runs a server with `filter`, sends requests with `send`, stops it and returns its JSON
/// log lines.
async fn json_logs_of<F, Fut>(reg: &TestRegistry, filter: &str, send: F) -> Vec<Value>
where
    F: FnOnce(String, reqwest::Client) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (mut child, addr) = start_logging(
        &[
            "--log-format",
            "json",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--registry",
            reg.arg(),
            "--wait-for-model",
        ],
        Stdio::piped(),
        filter,
    );
    let client = crate::common::http_client().no_proxy().build().unwrap();
    send(format!("http://{addr}"), client).await;
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let out = tokio::task::spawn_blocking(move || {
        let _ = child.stdout.take();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    String::from_utf8(out.stderr)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    id: Option<&str>,
    body: &str,
) -> reqwest::Response {
    let mut req = client
        .post(format!("{url}/score"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(id) = id {
        req = req.header("x-request-id", id);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn requests_are_not_logged_by_default_but_errors_get_an_id() {
    let reg = TestRegistry::with_iris();
    let logs = json_logs_of(&reg, "info", |url, client| async move {
        let ok = post(&client, &url, None, VERSICOLOR).await;
        assert_eq!(ok.status(), 200);
        assert!(
            ok.headers().get("x-request-id").is_none(),
            "a success costs no id"
        );
        let bad = post(&client, &url, None, r#"{"SepalLengthCm": 1}"#).await;
        assert_eq!(bad.status(), 400);
        let id = bad
            .headers()
            .get("x-request-id")
            .expect("an error names its request");
        assert_eq!(id.len(), 17, "{id:?}");
        let echoed = post(&client, &url, Some("client-7"), r#"{"x": 1}"#).await;
        assert_eq!(echoed.headers()["x-request-id"], "client-7");
    })
    .await;
    assert!(!logs.is_empty());
    for line in &logs {
        assert_ne!(line["target"], "treeserve::request", "{line}");
    }
}

#[tokio::test]
async fn request_logging_puts_each_request_in_a_span_with_its_id() {
    let reg = TestRegistry::with_iris();
    let logs = json_logs_of(
        &reg,
        "info,treeserve::request=debug",
        |url, client| async move {
            let ok = post(&client, &url, Some("trace-ok"), VERSICOLOR).await;
            assert_eq!(ok.status(), 200);
            assert_eq!(ok.headers()["x-request-id"], "trace-ok");
            let bad = post(&client, &url, Some("trace-bad"), r#"{"SepalLengthCm": 1}"#).await;
            assert_eq!(bad.status(), 400);
            let generated = client
                .get(format!("{url}/health/live"))
                .send()
                .await
                .unwrap();
            let id = generated.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned();
            assert_eq!(id.len(), 17);
        },
    )
    .await;
    let requests: Vec<&Value> = logs
        .iter()
        .filter(|l| l["target"] == "treeserve::request")
        .collect();
    let find = |id: &str, message: &str| {
        requests
            .iter()
            .find(|l| l["span"]["id"] == id && l["fields"]["message"] == message)
            .copied()
            .unwrap_or_else(|| panic!("no {message:?} line for {id}: {requests:#?}"))
    };
    let ok = find("trace-ok", "answered");
    assert_eq!(ok["level"], "DEBUG");
    assert_eq!(ok["span"]["route"], "/score");
    assert_eq!(ok["span"]["status"], 200);
    assert_eq!(ok["span"]["method"], "POST");
    assert!(ok["fields"]["elapsed_us"].as_u64().is_some(), "{ok}");
    let rejected = find("trace-bad", "request rejected");
    assert_eq!(rejected["fields"]["request_id"], "trace-bad");
    assert_eq!(rejected["fields"]["status"], 400);
    assert_eq!(rejected["fields"]["error_type"], "missing_feature");
    let cause = rejected["fields"]["error"].as_str().unwrap();
    assert!(cause.contains("SepalWidthCm"), "{cause}");
    assert_eq!(find("trace-bad", "answered")["span"]["status"], 400);
    assert_eq!(
        requests
            .iter()
            .filter(|l| l["fields"]["message"] == "answered")
            .count(),
        3,
        "{requests:#?}"
    );
}

#[tokio::test]
async fn the_shipped_prometheus_config_and_alert_rules_pass_promtool() {
    let dir = repo().join("deploy/prometheus");
    for args in [
        vec!["check", "config", "prometheus.yml"],
        vec!["check", "rules", "rules.yml"],
        vec!["test", "rules", "rules_test.yml"],
    ] {
        let out = Command::new(tool("promtool"))
            .args(&args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Every metric the rules use is one a live treeserve exports.
    let reg = TestRegistry::with_iris();
    let app = App::spawn(
        reg.path(),
        &["--drift-min-rows", "1", "--feedback-window", "10"],
    );
    app.post("/score", VERSICOLOR).await;
    // A labelled answer: the live-quality series exist once a label joined.
    let scored = app
        .client
        .post(app.url("/score"))
        .header("content-type", "application/json")
        .header("x-request-id", "rules-1")
        .body(VERSICOLOR)
        .send()
        .await
        .unwrap();
    assert_eq!(scored.status(), 200);
    let label = r#"{"request_id": "rules-1", "label": "Iris-versicolor"}"#;
    assert_eq!(app.post("/feedback", label).await.status(), 200);
    let exposition = app.get("/metrics").await.text().await.unwrap();
    let rules = std::fs::read_to_string(dir.join("rules.yml")).unwrap();
    let used: std::collections::BTreeSet<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("treeserve_"))
        .collect();
    assert!(used.len() >= 5, "{used:?}");
    for name in used {
        assert!(
            exposition.contains(&format!("\n{name}")),
            "{name} is not exported"
        );
    }
}

fn metric_values(text: &str, prefix: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

async fn score_iris(app: &App, shift: Option<(usize, f64)>) -> usize {
    let data = treeserve::train::load_csv(&iris_csv(), "Species", Some("Id")).unwrap();
    let names = [
        "SepalLengthCm",
        "SepalWidthCm",
        "PetalLengthCm",
        "PetalWidthCm",
    ];
    let rows: Vec<Value> = (0..data.rows())
        .map(|i| {
            let mut r = data.row(i).to_vec();
            if let Some((j, by)) = shift {
                r[j] += by;
            }
            Value::Object(
                names
                    .iter()
                    .zip(r)
                    .map(|(n, v)| (n.to_string(), serde_json::json!(v)))
                    .collect(),
            )
        })
        .collect();
    for chunk in rows.chunks(50) {
        assert_eq!(
            app.post("/score", &Value::Array(chunk.to_vec()).to_string())
                .await
                .status(),
            200
        );
    }
    // Single rows go through the other path; they count too.
    for r in rows.iter().take(10) {
        assert_eq!(app.post("/score", &r.to_string()).await.status(), 200);
    }
    rows.len() + 10
}

#[tokio::test]
async fn drift_stays_low_on_training_like_inputs_and_flags_a_shifted_feature() {
    let reg = TestRegistry::with_iris();
    let flags = ["--drift-window", "1h", "--drift-min-rows", "100"];

    let app = App::spawn(reg.path(), &flags);
    let n = score_iris(&app, None).await;
    let text = app.get("/metrics").await.text().await.unwrap();
    let predictions: f64 = metric_values(&text, "treeserve_predictions_total{")
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert_eq!(predictions, n as f64, "{text}");
    let psi = metric_values(&text, "treeserve_drift_psi{");
    assert_eq!(psi.len(), 4, "{text}");
    for (k, v) in &psi {
        assert!(*v < 0.2, "{k} = {v} on training-like data");
    }
    let rows = metric_values(&text, "treeserve_drift_window_rows{");
    assert_eq!(rows[0].1, n as f64);

    let shifted = App::spawn(reg.path(), &flags);
    score_iris(&shifted, Some((2, 4.0))).await;
    let text = shifted.get("/metrics").await.text().await.unwrap();
    for (k, v) in metric_values(&text, "treeserve_drift_psi{") {
        if k.contains("PetalLengthCm") {
            assert!(v > 0.2, "{k} = {v} should flag the shift");
        } else {
            assert!(v < 0.2, "{k} = {v} should stay low");
        }
    }
    let above = metric_values(&text, "treeserve_drift_out_of_range_total{");
    for (k, v) in above {
        if k.contains("PetalLengthCm") && k.contains("above") {
            assert!(v > 50.0, "{k} = {v}");
        } else if !k.contains("PetalLengthCm") {
            assert!(v < 10.0, "{k} = {v}");
        }
    }
}

#[tokio::test]
async fn no_metrics_turns_recording_off() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &["--no-metrics"]);
    score_iris(&app, None).await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metric_values(&text, "treeserve_predictions_total{")
            .iter()
            .all(|(_, v)| *v == 0.0),
        "{text}"
    );
    assert!(!text.contains("treeserve_http_requests_total{"), "{text}");
}
