//! Test helpers: run the real binary, train models, start servers on port 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use tempfile::TempDir;

/// The treeserve binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_treeserve");

/// A stdout for a child whose reader is gone before the child starts: its first write
/// fails (SIGPIPE), however much the pipe would have held and however late the test runs.
pub fn reader_gone() -> Stdio {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    Stdio::from(writer)
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped IRIS CSV.
pub fn iris_csv() -> PathBuf {
    repo().join("models/data/iris.csv")
}

/// Runs `treeserve ARGS` to completion.
pub fn treeserve(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("TREESERVE_REGISTRY")
        .output()
        .expect("run treeserve")
}

/// `treeserve models MODEL --registry REGISTRY --json`: the model's versions and aliases.
pub fn models_json(registry: &str, model: &str) -> serde_json::Value {
    let out = treeserve_ok(&["models", model, "--registry", registry, "--json"]);
    serde_json::from_str(&out).expect("models --json is JSON")
}

/// Runs `treeserve ARGS`, asserting success; returns stdout.
pub fn treeserve_ok(args: &[&str]) -> String {
    treeserve_ok_env(args, &[])
}

/// [`treeserve_ok`] with these environment variables set.
pub fn treeserve_ok_env(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("TREESERVE_REGISTRY")
        .envs(env.iter().copied())
        .output()
        .expect("run treeserve");
    assert!(
        out.status.success(),
        "treeserve {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// A fresh temporary registry.
pub struct TestRegistry {
    /// Holds the directory.
    pub dir: TempDir,
}

impl TestRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The registry root.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The root as a string argument.
    pub fn arg(&self) -> &str {
        self.dir.path().to_str().expect("utf-8 path")
    }

    /// Trains an IRIS model with extra `train` flags; returns the artifact path.
    pub fn train(&self, file: &str, extra: &[&str]) -> PathBuf {
        let out = self.dir.path().join(file);
        let csv = iris_csv();
        let mut args = vec![
            "train",
            "--data",
            csv.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        treeserve_ok(&args);
        out
    }

    /// Publishes an artifact, optionally moving an alias; returns the version.
    pub fn publish(&self, artifact: &Path, alias: Option<&str>) -> u64 {
        let mut args = vec![
            "publish",
            artifact.to_str().unwrap(),
            "--registry",
            self.arg(),
        ];
        if let Some(a) = alias {
            args.extend_from_slice(&["--alias", a]);
        }
        treeserve_ok(&args).trim().parse().expect("version number")
    }

    /// `treeserve data add CSV --name iris`: a new version of the registry's `iris` dataset.
    pub fn add_iris_dataset(&self, csv: &Path) {
        let csv = csv.to_str().unwrap();
        treeserve_ok(&[
            "data",
            "add",
            csv,
            "--name",
            "iris",
            "--registry",
            self.arg(),
        ]);
    }

    /// `treeserve train --dataset iris --publish` (the gate decides) with extra flags.
    pub fn train_iris_dataset(&self, extra: &[&str]) -> Output {
        let mut args = vec![
            "train",
            "--dataset",
            "iris",
            "--publish",
            "--registry",
            self.arg(),
        ];
        args.extend_from_slice(extra);
        treeserve(&args)
    }

    /// `treeserve models MODEL --json`: the model's versions and aliases.
    pub fn models_json(&self, model: &str) -> serde_json::Value {
        models_json(self.arg(), model)
    }

    /// A registry with the IRIS tree published as version 1 and aliased `production`.
    pub fn with_iris() -> Self {
        let reg = Self::new();
        let artifact = reg.train("iris.tsm", &[]);
        assert_eq!(reg.publish(&artifact, Some("production")), 1);
        reg
    }
}

/// Starts `treeserve ARGS` (a `serve` command) with logs at `warn` sent to `stderr`, and
/// waits for the address line it prints first.
pub fn start(args: &[&str], stderr: Stdio) -> (Child, SocketAddr) {
    start_logging(args, stderr, "warn")
}

/// [`start`] with the log filter `TREESERVE_LOG=filter`.
pub fn start_logging(args: &[&str], stderr: Stdio, filter: &str) -> (Child, SocketAddr) {
    let (child, addr, _) = start_with_line(args, stderr, filter);
    (child, addr)
}

/// [`start_logging`], also returning the whole address line.
pub fn start_with_line(args: &[&str], stderr: Stdio, filter: &str) -> (Child, SocketAddr, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("TREESERVE_LOG", filter)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn treeserve serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the address line");
    let addr = line
        .trim()
        .rsplit("://")
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (child, addr, line)
}

/// A running `treeserve serve`, killed on drop.
pub struct App {
    child: Child,
    /// The bound address.
    pub addr: SocketAddr,
    /// The gRPC address, with `--grpc-listen`.
    pub grpc: Option<SocketAddr>,
    /// A keep-alive HTTP client.
    pub client: reqwest::Client,
}

impl App {
    /// Starts the server on port 0 for `registry` with extra flags, waiting until it has
    /// printed its address.
    pub fn spawn(registry: &Path, extra: &[&str]) -> Self {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--registry"];
        args.push(registry.to_str().expect("utf-8 path"));
        args.extend_from_slice(extra);
        let (child, addr, line) = start_with_line(&args, Stdio::inherit(), "warn");
        let grpc = line.split_once("grpc://").map(|(_, rest)| {
            let addr = rest.split_whitespace().next().unwrap_or_default();
            addr.parse()
                .unwrap_or_else(|_| panic!("no gRPC address in {line:?}"))
        });
        Self {
            child,
            addr,
            grpc,
            client: crate::common::http_client()
                .no_proxy()
                .build()
                .expect("client"),
        }
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs a JSON string to `path`.
    pub async fn post(&self, path: &str, body: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("request")
    }

    /// GETs `path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// The server's counter `treeserve_model_loads_total{outcome=...}` (0 before any).
    pub async fn loads(&self, outcome: &str) -> u64 {
        let text = self.get("/metrics").await.text().await.unwrap();
        let key = format!("treeserve_model_loads_total{{outcome=\"{outcome}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .map_or(0, |v| v.trim().parse().unwrap())
    }

    /// Sends raw bytes on a new connection and returns everything read until the server
    /// closes it or `timeout` passes.
    pub fn raw(&self, bytes: &[u8], timeout: Duration) -> String {
        let mut s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(timeout)).unwrap();
        s.write_all(bytes).expect("write");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Sends a signal (`HUP`, `TERM`, …) to the server.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The example row from Azure's docs.
pub const VERSICOLOR: &str =
    r#"{"SepalLengthCm": 6.6, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4}"#;
/// A clear setosa.
pub const SETOSA: &str =
    r#"{"SepalLengthCm": 5.1, "SepalWidthCm": 3.5, "PetalLengthCm": 1.4, "PetalWidthCm": 0.2}"#;

/// Asserts a JSON error response: status, `error_type`, and that `error` contains `needle`.
/// A response header that must be present and hold a number.
pub fn header_number(resp: &reqwest::Response, name: &str) -> usize {
    resp.headers()[name].to_str().unwrap().parse().unwrap()
}

pub async fn assert_error(resp: reqwest::Response, status: u16, error_type: &str, needle: &str) {
    assert_eq!(resp.status().as_u16(), status, "status");
    assert_eq!(
        resp.headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned()),
        Some("application/json".to_owned())
    );
    let body: serde_json::Value = resp.json().await.expect("JSON error body");
    assert_eq!(body["error_type"], error_type, "{body}");
    let msg = body["error"].as_str().expect("error message");
    assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
}

/// Polls `f` every 10 ms until it holds; fails after `limit`. Returns the time it took.
pub async fn wait_for<F, Fut>(limit: Duration, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !f().await {
        assert!(started.elapsed() < limit, "not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

/// The framework fixtures CI makes (XGBoost, LightGBM, scikit-learn → ONNX):
/// `$TREESERVE_IMPORT_FIXTURES`, else `target/import-fixtures`.
pub fn fixtures_dir() -> PathBuf {
    let dir = std::env::var_os("TREESERVE_IMPORT_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/import-fixtures"));
    assert!(
        dir.join("fixtures.json").exists(),
        "no framework fixtures at {}: run `bash .ci/run`, which makes them \
         (target/importenv/bin/python tests/import/make_fixtures.py target/import-fixtures)",
        dir.display()
    );
    dir
}

/// A CSV file's header and rows, as text.
pub fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header = r.headers().unwrap().iter().map(str::to_owned).collect();
    let rows = r
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

/// A reqwest client builder, after installing the process's TLS provider (reqwest, built
/// without a bundled one, refuses to build a client before; see registry::tls_provider).
pub fn http_client() -> reqwest::ClientBuilder {
    treeserve::registry::tls_provider();
    reqwest::Client::builder()
}

/// `reqwest::get`, after installing the TLS provider (see [`http_client`]).
pub async fn http_get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    http_client().build()?.get(url).send().await
}
