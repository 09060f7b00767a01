//! The MLflow Model Registry backend through the binary, against the real `mlflow server`
//! (the run's shared one when `.ci/run` names it, else one per test process, started on
//! first use on a free port with a sqlite backend and proxied artifacts in a temporary
//! directory, stopped when the process exits), with models logged by MLflow's own flavors
//! and XGBoost's and LightGBM's own predictions as the oracle. The venv:
//! `$TREESERVE_MLFLOW_ENV`, default `target/mlflow-env`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

mod flavors;
mod measure;
mod replicas;

/// How long a follower may take to serve a moved alias at `--poll-interval 1s`.
const FOLLOW_WITHIN: Duration = Duration::from_secs(15);

/// The venv with `mlflow` and the frameworks.
fn mlflow_env() -> PathBuf {
    let root = std::env::var_os("TREESERVE_MLFLOW_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/mlflow-env"));
    assert!(
        root.join("bin/mlflow").exists(),
        "no MLflow venv at {} (TREESERVE_MLFLOW_ENV): run `bash .ci/run`, which creates it, or \
         python3 -m venv target/mlflow-env && target/mlflow-env/bin/pip install -r \
         tests/mlflow/requirements.txt",
        root.display()
    );
    root
}

fn python() -> PathBuf {
    mlflow_env().join("bin/python")
}

/// An `mlflow server` run by tests/mlflow/server.py.
struct Server {
    url: String,
    /// Its directory (`server.log` holds one line per request).
    dir: PathBuf,
    /// Closing it stops the server (server.py then exits): on [`Server::stop`], or when
    /// the test process exits, however it exits.
    stdin: Option<ChildStdin>,
    /// None for the run's shared server, which its starter stops.
    process: Option<std::process::Child>,
}

impl Server {
    /// The server a whole test run shares, when its starter names it
    /// (`TREESERVE_MLFLOW_URL` and `TREESERVE_MLFLOW_DIR`; `.ci/run` starts one): nextest
    /// runs each test in a process of its own, and a server each costs ~17 s of CPU. The
    /// tests share a server under `cargo test` as well (their model names differ).
    fn shared() -> Option<Self> {
        let url = std::env::var("TREESERVE_MLFLOW_URL").ok()?;
        let dir = std::env::var_os("TREESERVE_MLFLOW_DIR")
            .expect("TREESERVE_MLFLOW_URL needs TREESERVE_MLFLOW_DIR (the server's directory)");
        Some(Self {
            url,
            dir: dir.into(),
            stdin: None,
            process: None,
        })
    }

    /// Starts a server on a free port in a fresh directory; waits until it answers.
    fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("treeserve-mlflow-")
            .tempdir()
            .expect("temp dir")
            .keep(); // server.py removes it when it stops
        let mut process = Command::new(python())
            .arg(repo().join("tests/mlflow/server.py"))
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start tests/mlflow/server.py");
        let mut line = String::new();
        BufReader::new(process.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read server.py's first line");
        let url = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("mlflow server did not start: {line:?}"))
            .to_owned();
        Self {
            url,
            dir,
            stdin: process.stdin.take(),
            process: Some(process),
        }
    }

    /// Stops the server and waits until it is gone.
    fn stop(mut self) {
        drop(self.stdin.take());
        if let Some(mut p) = self.process.take() {
            p.wait().expect("wait for server.py");
        }
    }
}

/// The test process's MLflow server, started on first use: its `http://` URL.
fn mlflow() -> &'static str {
    &server().url
}

/// The MLflow server's log: one line per request it answered.
fn mlflow_log() -> String {
    std::fs::read_to_string(server().dir.join("server.log")).unwrap_or_default()
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| Server::shared().unwrap_or_else(Server::start))
}

/// `--registry` for the test server.
fn registry() -> String {
    format!("mlflow+{}", mlflow())
}

/// Logs `versions` models of `flavor` as `name` with tests/mlflow/log_models.py (aliasing
/// the first one `alias`); what the script wrote.
fn log_models(flavor: &str, name: &str, versions: u32, alias: Option<&str>) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let mut cmd = Command::new(python());
    cmd.arg(repo().join("tests/mlflow/log_models.py"))
        .args([mlflow(), flavor, name, &versions.to_string()])
        .arg(&out);
    if let Some(a) = alias {
        cmd.arg(a);
    }
    let o = cmd.output().expect("run log_models.py");
    assert!(
        o.status.success(),
        "log_models.py {flavor} {name} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap()
}

/// The params, metrics and tags of the run behind `name`'s version `v`, read with
/// MLflow's own client: `{"params": {...}, "metrics": {...}, "tags": {...}}`.
fn mlflow_run_of(name: &str, v: u64) -> Value {
    let script = "import json, sys\n\
        from mlflow import MlflowClient\n\
        c = MlflowClient(sys.argv[1])\n\
        run = c.get_run(c.get_model_version(sys.argv[2], sys.argv[3]).run_id)\n\
        print(json.dumps({'params': run.data.params, 'metrics': run.data.metrics, 'tags': run.data.tags}))";
    let o = Command::new(python())
        .args(["-c", script, mlflow(), name, &v.to_string()])
        .output()
        .expect("run python");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("the run as JSON")
}

/// Moves an alias in MLflow itself (what `MlflowClient().set_registered_model_alias` sends).
async fn move_alias_in_mlflow(name: &str, alias: &str, version: u64) {
    move_alias_in_mlflow_at(mlflow(), name, alias, version).await
}

/// [`move_alias_in_mlflow`] on the MLflow server at `url`.
async fn move_alias_in_mlflow_at(url: &str, name: &str, alias: &str, version: u64) {
    let r = crate::common::http_client()
        .build()
        .unwrap()
        .post(format!("{url}/api/2.0/mlflow/registered-models/alias"))
        .json(&json!({"name": name, "alias": alias, "version": version.to_string()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// A server following `name`'s `alias` in the test MLflow, polling every second.
fn serve(name: &str, alias: &str) -> App {
    let reg = registry();
    App::spawn(
        Path::new(&reg),
        &["--model", name, "--alias", alias, "--poll-interval", "1s"],
    )
}

async fn served_version(app: &App, body: &str) -> Option<u64> {
    let r = app.post("/score", body).await;
    if r.status() != 200 {
        return None;
    }
    r.headers()["x-model-version"].to_str().ok()?.parse().ok()
}

/// `/score` requests in a loop until stopped: (requests, failures).
struct Load {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(u64, u64)>,
}

impl Load {
    fn start(app: &App, body: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (s, client, url, body) = (
            stop.clone(),
            app.client.clone(),
            app.url("/score"),
            body.to_owned(),
        );
        let task = tokio::spawn(async move {
            let (mut sent, mut failed) = (0, 0);
            // Bounded: at most 10 minutes of requests even if never stopped.
            let until = std::time::Instant::now() + Duration::from_secs(600);
            while !s.load(Ordering::Relaxed) && std::time::Instant::now() < until {
                sent += 1;
                let ok = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                failed += u64::from(!ok);
            }
            (sent, failed)
        });
        Self { stop, task }
    }

    async fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_promote_rollback_through_mlflow_and_a_server_follows_with_no_failed_request() {
    let reg = registry();
    let work = TestRegistry::new();
    let name = "it-publish";
    let v1 = work.train("v1.tsm", &["--name", name]);
    let v2 = work.train("v2.tsm", &["--name", name, "--max-depth", "2"]);
    let publish = |a: &Path, alias: &[&str]| -> u64 {
        let mut args = vec!["publish", a.to_str().unwrap(), "--registry", &reg];
        args.extend_from_slice(alias);
        treeserve_ok(&args)
            .trim()
            .parse()
            .expect("a version number")
    };
    assert_eq!(publish(&v1, &["--alias", "production"]), 1);
    assert_eq!(publish(&v2, &[]), 2);

    let app = serve(name, "production");
    assert_eq!(served_version(&app, VERSICOLOR).await, Some(1));
    let load = Load::start(&app, VERSICOLOR);

    treeserve_ok(&["promote", name, "2", "--registry", &reg]);
    let took = wait_for(FOLLOW_WITHIN, || async {
        served_version(&app, VERSICOLOR).await == Some(2)
    })
    .await;
    eprintln!("promote → served in {took:?}");
    let listed: Value = models_json(&reg, name);
    let listed = &listed[0];
    assert_eq!(listed["name"], name);
    assert_eq!(listed["aliases"]["production"]["version"], 2);
    assert_eq!(listed["aliases"]["production"]["history"], json!([1]));
    let versions: Vec<u64> = listed["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2]);

    treeserve_ok(&["rollback", name, "--registry", &reg]);
    wait_for(FOLLOW_WITHIN, || async {
        served_version(&app, VERSICOLOR).await == Some(1)
    })
    .await;
    let (sent, failed) = load.finish().await;
    eprintln!("{sent} requests during the promote and the rollback, {failed} failed");
    assert!(sent > 10, "the load loop ran: {sent}");
    assert_eq!(failed, 0);

    // Nothing earlier to roll back to now; and MLflow itself sees the alias.
    let out = treeserve(&["rollback", name, "--registry", &reg]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no earlier version"), "{err}");
    let alias: Value = crate::common::http_get(format!(
        "{}/api/2.0/mlflow/registered-models/alias?name={name}&alias=production",
        mlflow()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(alias["model_version"]["version"], "1");
}

#[test]
fn an_unreachable_mlflow_registry_is_one_clear_line_and_a_failure_without_backtrace() {
    // A closed port: what a stopped tracking server looks like to a client.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let reg = format!("mlflow+http://127.0.0.1:{port}");
    let work = TestRegistry::new();
    let artifact = work.train("m.tsm", &[]);
    for args in [
        vec!["models", "--registry", &reg],
        vec!["models", "iris", "--registry", &reg],
        vec!["publish", artifact.to_str().unwrap(), "--registry", &reg],
        vec!["promote", "iris", "1", "--registry", &reg],
        vec!["rollback", "iris", "--registry", &reg],
    ] {
        let out = Command::new(BIN)
            .args(&args)
            .env("RUST_BACKTRACE", "1")
            .env_remove("TREESERVE_REGISTRY")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("Error: "), "{args:?}: {err}");
        assert!(
            err.contains(&format!("127.0.0.1:{port}"))
                && err.contains("cannot connect")
                && err.contains("mlflow server"),
            "{args:?}: {err}"
        );
        assert!(
            !err.contains("backtrace") && !err.contains("panicked"),
            "{err}"
        );
    }
}

#[test]
fn train_publish_goes_through_the_gate_with_its_records_kept_in_mlflow() {
    let reg = registry();
    let name = "it-gated";
    let csv = iris_csv();
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            csv.to_str().unwrap(),
            "--name",
            name,
            "--publish",
            &reg,
        ];
        args.extend_from_slice(extra);
        treeserve(&args)
    };
    let first = train(&[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // A much worse candidate: the gate reads the champion's record and refuses it.
    let worse = train(&["--max-depth", "2"]);
    assert_eq!(
        worse.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&worse.stderr)
    );
    let listed: Value = models_json(&reg, name);
    assert_eq!(listed[0]["aliases"]["production"]["version"], 1);
    assert_eq!(listed[0]["aliases"]["staging"]["version"], 2);
    // Each version's run shows the model's parameters and test metrics, as MLflow's own
    // client reads them.
    for (v, depth) in [(1, None), (2, Some("2"))] {
        let run = mlflow_run_of(name, v);
        let p = &run["params"];
        assert_eq!(p["algorithm"], "decision_tree", "{run}");
        assert_eq!(p["target"], "Species", "{run}");
        assert_eq!(p["n_features"], "4", "{run}");
        assert_eq!(p["max_depth"].as_str(), depth, "{run}");
        assert_eq!(run["tags"]["treeserve.model"], name, "{run}");
        let listed_accuracy = listed[0]["versions"][v as usize - 1]["accuracy"].as_f64();
        assert_eq!(
            run["metrics"]["accuracy"].as_f64(),
            listed_accuracy,
            "{run}"
        );
        assert!(run["metrics"]["f1/Iris-setosa"].as_f64().is_some(), "{run}");
    }
    // The gate's records are artifacts of each version's run, and the report reads them.
    let out = tempfile::tempdir().unwrap();
    let html = out.path().join("report.html");
    treeserve_ok(&[
        "report",
        name,
        "--registry",
        &reg,
        "--out",
        html.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(
        text.contains("not promoted"),
        "the report shows the gate's decision"
    );
}

#[test]
fn promoters_racing_on_mlflow_are_told_when_another_overtook_them() {
    let reg = registry();
    let work = TestRegistry::new();
    let name = "it-race";
    let model = work.train("m.tsm", &["--name", name]);
    for v in 1..=4u64 {
        let out = treeserve_ok(&["publish", model.to_str().unwrap(), "--registry", &reg]);
        assert_eq!(out.trim(), v.to_string());
    }
    let (mut won, mut told) = (0, 0);
    for round in 0..8 {
        let (w, t) = race_promoters(&reg, name, &round.to_string());
        (won, told) = (won + w, told + t);
    }
    // A model's first race also creates its alias's history tag: two writers creating it
    // at once made one fail with MLflow's database error (a unique constraint) instead of
    // landing or being told, about one first race in ten. Fresh models, raced once each.
    for k in 0..8 {
        let fresh = format!("it-race-first-{k}");
        let model = work.train(&format!("{fresh}.tsm"), &["--name", &fresh]);
        for _ in 1..=4u64 {
            treeserve_ok(&["publish", model.to_str().unwrap(), "--registry", &reg]);
        }
        let (w, t) = race_promoters(&reg, &fresh, &format!("first race of {fresh}"));
        (won, told) = (won + w, told + t);
    }
    eprintln!("{won} promotes landed, {told} were told another writer overtook them");
    assert!(
        told > 0,
        "64 promoters racing, none overtaken: the race was not run"
    );
}

/// Four promoters of `name` at once, each to its own version (1 to 4): each lands or is
/// told another writer overtook it, and the alias ends at a landed version with its own
/// history tag. How many landed and were told.
fn race_promoters(reg: &str, name: &str, round: &str) -> (usize, usize) {
    let (mut won, mut told) = (0, 0);
    // Four promoters at once, each to its own version.
    let children: Vec<_> = (1..=4u64)
        .map(|v| {
            let child = Command::new(BIN)
                .args(["promote", name, &v.to_string(), "--registry", reg])
                .env("RUST_BACKTRACE", "1")
                .env_remove("TREESERVE_REGISTRY")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn treeserve promote");
            (v, child)
        })
        .collect();
    let mut landed = Vec::new();
    for (v, child) in children {
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            landed.push(v);
            won += 1;
        } else {
            assert_eq!(out.status.code(), Some(1), "round {round}, {v}: {err}");
            assert!(
                err.contains("by another writer"),
                "round {round}, {v}: {err}"
            );
            assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
            assert!(!err.contains("backtrace"), "{err}");
            told += 1;
        }
    }
    // The alias ends at a version whose promoter was told it landed.
    let listed: Value = models_json(reg, name);
    let now = listed[0]["aliases"]["production"]["version"]
        .as_u64()
        .unwrap();
    assert!(
        landed.contains(&now),
        "round {round}: at {now}, landed {landed:?}"
    );
    // Its history tag is the one written for that version, not a loser's: `updated`
    // is empty only when the tag is out of step with the alias.
    let record = &listed[0]["aliases"]["production"];
    assert_ne!(
        record["updated"].as_str().unwrap_or_default(),
        "",
        "round {round}: the history tag is out of step with the alias: {record}"
    );
    let history = record["history"].as_array().unwrap();
    assert!(
        history.last().and_then(Value::as_u64) != Some(now),
        "round {round}: {record}"
    );
    (won, told)
}
