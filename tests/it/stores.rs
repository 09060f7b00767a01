//! Real object-store servers for the registry tests: moto (S3) and azurite (Azure Blob),
//! each started on a free port by the test that needs it and killed on drop, behind a TCP
//! proxy the test can cut to make the store unreachable.
//!
//! The servers come from `.ci/run`: `$TREESERVE_OBJSTORE_ENV` (default
//! `target/objstore-env`, a venv with moto and the stores' SDKs) and `$TREESERVE_AZURITE`
//! (default `target/azurite/node_modules/.bin/azurite-blob`).

use std::io::{BufRead, BufReader};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{BIN, repo};

/// Which store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// S3, served by moto.
    S3,
    /// Azure Blob, served by azurite.
    Azure,
}

const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn objstore_env() -> PathBuf {
    let root = std::env::var_os("TREESERVE_OBJSTORE_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/objstore-env"));
    assert!(
        root.join("bin/moto_server").exists(),
        "no venv with moto at {}: run `bash .ci/run`, which creates it (python3 -m venv \
         target/objstore-env && target/objstore-env/bin/pip install -r tests/objstore/requirements.txt)",
        root.display()
    );
    root
}

fn azurite() -> PathBuf {
    let bin = std::env::var_os("TREESERVE_AZURITE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/azurite/node_modules/.bin/azurite-blob"));
    assert!(
        bin.exists(),
        "no azurite at {}: run `bash .ci/run`, which installs it (cd target/azurite && npm \
         install, with tests/objstore/package.json)",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running store with one bucket (container), behind a proxy that can be cut.
pub struct Store {
    /// Which store.
    pub kind: Kind,
    child: Child,
    port: u16,
    proxy: Proxy,
    _dir: tempfile::TempDir,
    /// The bucket (container) made for this test.
    pub bucket: String,
}

impl Store {
    /// Starts the store on a free port, waits until it answers, makes a bucket.
    pub fn start(kind: Kind) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = match kind {
            Kind::S3 => Command::new(objstore_env().join("bin/moto_server"))
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start moto_server"),
            Kind::Azure => Command::new(azurite())
                .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
                .args(["--location", dir.path().to_str().unwrap(), "--silent"])
                .args(["--skipApiVersionCheck", "--loose"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start azurite-blob"),
        };
        let proxy = Proxy::start(port);
        let mut store = Self {
            kind,
            child,
            port,
            proxy,
            _dir: dir,
            bucket: "treeserve-test".into(),
        };
        // The store answers once making the bucket works.
        let started = Instant::now();
        loop {
            let out = store.raw(&["make"]);
            if out.status.success() {
                break;
            }
            assert!(
                store.child.try_wait().unwrap().is_none(),
                "the {kind:?} server exited at start"
            );
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the {kind:?} server did not answer within 60 s: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        store
    }

    fn endpoint(&self, port: u16) -> String {
        format!("http://127.0.0.1:{port}")
    }

    /// Runs tests/objstore/store.py against the store directly (not through the proxy).
    fn raw(&self, args: &[&str]) -> Output {
        let kind = match self.kind {
            Kind::S3 => "s3",
            Kind::Azure => "az",
        };
        Command::new(objstore_env().join("bin/python"))
            .arg(repo().join("tests/objstore/store.py"))
            .args([kind, &self.endpoint(self.port), &self.bucket])
            .args(args)
            .output()
            .expect("run store.py")
    }

    /// Writes `bytes` at `key` directly, as a hostile or broken writer would.
    pub fn put_raw(&self, key: &str, bytes: &[u8]) {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), bytes).unwrap();
        let out = self.raw(&["put", key, f.path().to_str().unwrap()]);
        assert!(
            out.status.success(),
            "store.py put: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `--registry` for this store, under `prefix`.
    pub fn registry(&self, prefix: &str) -> String {
        match self.kind {
            Kind::S3 => format!("s3://{}/{prefix}", self.bucket),
            Kind::Azure => format!("az://{}/{prefix}", self.bucket),
        }
    }

    /// The environment that points treeserve at the store through the proxy (`direct`:
    /// bypassing it, so the store is reachable while the proxy is cut).
    pub fn env(&self, direct: bool) -> Vec<(String, String)> {
        let port = if direct { self.port } else { self.proxy.port };
        let e = self.endpoint(port);
        let pairs: Vec<(&str, String)> = match self.kind {
            Kind::S3 => vec![
                ("AWS_ENDPOINT_URL", e),
                ("AWS_ALLOW_HTTP", "true".into()),
                ("AWS_ACCESS_KEY_ID", "test".into()),
                ("AWS_SECRET_ACCESS_KEY", "test".into()),
                ("AWS_REGION", "us-east-1".into()),
            ],
            Kind::Azure => vec![
                ("AZURE_STORAGE_ACCOUNT_NAME", "devstoreaccount1".into()),
                ("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY.into()),
                ("AZURE_STORAGE_ENDPOINT", format!("{e}/devstoreaccount1")),
                ("AZURE_ALLOW_HTTP", "true".into()),
            ],
        };
        pairs.into_iter().map(|(k, v)| (k.into(), v)).collect()
    }

    /// `treeserve ARGS` with the store's environment (through the proxy).
    pub fn command(&self, args: &[&str], direct: bool) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env_remove("TREESERVE_REGISTRY")
            .envs(self.env(direct));
        c
    }

    /// Runs `treeserve ARGS` directly against the store, asserting success.
    pub fn treeserve_ok(&self, args: &[&str]) -> String {
        let out = self.command(args, true).output().unwrap();
        assert!(
            out.status.success(),
            "treeserve {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Makes the store unreachable (`true`) or reachable again through the proxy.
    pub fn set_down(&self, down: bool) {
        self.proxy.set_down(down);
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy to the store; while down it closes every connection at once.
struct Proxy {
    port: u16,
    down: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (d, o) = (down.clone(), open.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                if d.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                {
                    let mut o = o.lock().unwrap();
                    o.push(client.try_clone().unwrap());
                    o.push(server.try_clone().unwrap());
                }
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pipe(client, server));
                std::thread::spawn(move || pipe(s2, c2));
            }
        });
        Self { port, down, open }
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            for s in self.open.lock().unwrap().drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

/// A running `treeserve serve` against a store, killed on drop.
pub struct Replica {
    child: Child,
    /// The bound address.
    pub addr: SocketAddr,
    /// A keep-alive HTTP client.
    pub client: reqwest::Client,
}

impl Replica {
    /// Starts `treeserve serve --listen 127.0.0.1:0 ARGS` with the store's environment.
    pub fn spawn(store: &Store, args: &[&str]) -> Self {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut child = store
            .command(&all, false)
            .env("TREESERVE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn treeserve serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Self {
            child,
            addr,
            client: crate::common::http_client().no_proxy().build().unwrap(),
        }
    }

    /// The version `/score` answers with, `None` on any failure.
    pub async fn served_version(&self) -> Option<u64> {
        let r = self
            .client
            .post(format!("http://{}/score", self.addr))
            .header("content-type", "application/json")
            .body(crate::common::VERSICOLOR)
            .send()
            .await
            .ok()?;
        if r.status() != 200 {
            return None;
        }
        r.headers()["x-model-version"].to_str().ok()?.parse().ok()
    }

    /// The value of an unlabelled metric line `name`.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self
            .client
            .get(format!("http://{}/metrics", self.addr))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let key = format!("{name} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.trim().parse().ok())
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A trained IRIS artifact in `dir`.
pub fn iris_artifact(dir: &Path) -> PathBuf {
    trained_artifact(dir, "iris.tsm", &[])
}

/// An IRIS model trained with `extra` flags, written to `dir/file`.
pub fn trained_artifact(dir: &Path, file: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(file);
    let csv = crate::common::iris_csv();
    let mut args = vec!["train", "--data", csv.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--output", out.to_str().unwrap()]);
    crate::common::treeserve_ok(&args);
    out
}
