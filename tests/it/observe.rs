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
    let app = App::spawn(reg.path(), &[]);
    for _ in 0..37 {
        assert_eq!(app.post("/score", VERSICOLOR).await.status(), 200);
    }
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
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
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
    assert_eq!(count, 37.0);
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
}

#[test]
fn logs_can_be_json_lines() {
    let reg = TestRegistry::new();
    let mut child = Command::new(BIN)
        .args([
            "--log-format",
            "json",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--registry",
            reg.arg(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let logs = String::from_utf8(out.stderr).unwrap();
    let first: Value =
        serde_json::from_str(logs.lines().next().expect("a log line")).expect("JSON");
    assert_eq!(first["level"], "ERROR", "{logs}");
    assert!(
        first["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("no model loaded"),
        "{logs}"
    );
    assert!(
        first["fields"]["error"]
            .as_str()
            .unwrap()
            .contains("no model"),
        "{logs}"
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
    let app = App::spawn(reg.path(), &[]);
    app.post("/score", VERSICOLOR).await;
    let exposition = app.get("/metrics").await.text().await.unwrap();
    let rules = std::fs::read_to_string(dir.join("rules.yml")).unwrap();
    let used: std::collections::BTreeSet<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("treeserve_"))
        .collect();
    assert!(used.len() >= 4, "{used:?}");
    for name in used {
        assert!(
            exposition.contains(&format!("\n{name}")),
            "{name} is not exported"
        );
    }
}
