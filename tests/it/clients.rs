//! Real Python clients against the real binary: NVIDIA's `tritonclient[http]` and
//! schemathesis (property-based conformance to `/openapi.json`). `.ci/run` installs them
//! (pinned, `tests/clients/requirements.txt`) into `target/pyenv`.

use std::path::PathBuf;
use std::process::Command;

use crate::common::*;

/// The venv's `bin/` directory (`TREESERVE_PYENV`, default `target/pyenv`).
fn pyenv_bin() -> PathBuf {
    let root = std::env::var_os("TREESERVE_PYENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/pyenv"));
    let bin = root.join("bin");
    assert!(
        bin.join("python").exists(),
        "no Python venv with the test clients at {}: run `bash .ci/run`, which creates it \
         (python3 -m venv target/pyenv && target/pyenv/bin/pip install -r tests/clients/requirements.txt)",
        root.display()
    );
    bin
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run a Python client");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// IRIS at version 1 and a depth-1 stump at version 2, the alias on 2.
fn two_versions() -> TestRegistry {
    let reg = TestRegistry::with_iris();
    let stump = reg.train("stump.tsm", &["--max-depth", "1"]);
    assert_eq!(reg.publish(&stump, Some("production")), 2);
    reg
}

#[tokio::test]
async fn tritonclient_speaks_the_open_inference_protocol() {
    let bin = pyenv_bin();
    let reg = two_versions();
    let app = App::spawn(reg.path(), &[]);
    let addr = app.addr.to_string();
    tokio::task::spawn_blocking(move || {
        run(Command::new(bin.join("python")).current_dir(repo()).args([
            "tests/clients/triton_client.py",
            &addr,
            "iris",
            "1",
        ]))
    })
    .await
    .unwrap();
}

/// Runs `tests/clients/triton_grpc.py` against a server of [`two_versions`] with gRPC on
/// (and `extra` flags); with `key`, the server requires it. Returns the server.
async fn triton_grpc(reg: &TestRegistry, extra: &[&str], key: Option<&str>) -> App {
    let bin = pyenv_bin();
    let mut args = vec!["--grpc-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let app = App::spawn(reg.path(), &args);
    let mut script = vec![
        "tests/clients/triton_grpc.py".to_owned(),
        app.grpc.expect("a gRPC address").to_string(),
        app.addr.to_string(),
        "iris".into(),
        "1".into(),
        iris_csv().display().to_string(),
    ];
    script.extend(key.map(str::to_owned));
    tokio::task::spawn_blocking(move || {
        run(Command::new(bin.join("python"))
            .current_dir(repo())
            .args(script))
    })
    .await
    .unwrap();
    app
}

#[tokio::test]
async fn tritonclient_grpc_speaks_the_open_inference_protocol() {
    let reg = two_versions();
    let app = triton_grpc(&reg, &[], None).await;
    // Each RPC is a route of the request metrics, errors under their HTTP statuses.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for (rpc, status) in [
        ("ModelInfer", 200),
        ("ModelInfer", 400),
        ("ModelInfer", 404),
        ("ServerLive", 200),
    ] {
        let series = format!(
            "treeserve_http_requests_total{{method=\"POST\",route=\"/inference.GRPCInferenceService/{rpc}\",status=\"{status}\"}}"
        );
        assert!(metrics.contains(&series), "no {series} in\n{metrics}");
    }
}

#[tokio::test]
async fn tritonclient_grpc_needs_a_key_but_probes_do_not() {
    let reg = two_versions();
    let keys = reg.path().join("keys.txt");
    let key = "grpc-secret-key-0123456789";
    std::fs::write(&keys, format!("{key} score\n")).unwrap();
    triton_grpc(
        &reg,
        &["--api-keys-file", keys.to_str().unwrap()],
        Some(key),
    )
    .await;
}

#[tokio::test]
async fn schemathesis_finds_no_5xx_and_no_response_off_the_document() {
    let bin = pyenv_bin();
    let reg = two_versions();
    let app = App::spawn(reg.path(), &[]);
    let url = app.url("/openapi.json");
    let report = reg.path().join("schemathesis.xml");
    let dir = reg.path().to_owned();
    tokio::task::spawn_blocking(move || {
        // Every check but positive_data_acceptance: JSON Schema cannot say that a V2
        // tensor's data length is the product of its shape, so schema-valid tensors can
        // rightly be refused.
        // Run in the temp registry: schemathesis keeps a cache in its working directory.
        run(Command::new(bin.join("schemathesis"))
            .current_dir(&dir)
            .args(["run", &url, "--checks", "all"])
            .args(["--exclude-checks", "positive_data_acceptance"])
            // One worker: hypothesis parses lambdas' source with `ast.parse`, which is not
            // thread-safe in CPython 3.11 ("AST constructor recursion depth mismatch").
            .args(["--max-examples", "40", "--seed", "1984", "--workers", "1"])
            .args(["--report", "junit", "--report-junit-path"])
            .arg(&report)
            .env("NO_COLOR", "1"))
    })
    .await
    .unwrap();
}
