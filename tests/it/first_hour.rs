//! A new user's first hour: `serve` with nothing to serve stops at once with a hint
//! (unless `--wait-for-model`), waiting says what to do once, the client commands say
//! when nothing answers, `score` stops quietly when its reader goes away, and
//! `--verbose` adds an error's causes.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// Runs `treeserve ARGS` with `RUST_BACKTRACE=1`; returns (exit code, stderr).
fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env_remove("TREESERVE_REGISTRY")
        .env_remove("TREESERVE_WAIT_FOR_MODEL")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A misspelled registry, an empty one and one whose model has no alias: exit 2, one
/// line, what to do (publish, promote, or --wait-for-model), no backtrace.
#[test]
fn serve_with_nothing_to_serve_exits_2_with_a_hint() {
    let reg = TestRegistry::new();
    let missing = reg.path().join("misspelled");
    let no_alias = TestRegistry::new();
    let artifact = no_alias.train("iris.tsm", &[]);
    no_alias.publish(&artifact, None);
    let cases: [(&str, &[&str]); 3] = [
        (missing.to_str().unwrap(), &["does not exist", "--registry"]),
        (reg.arg(), &["has alias production", "treeserve publish"]),
        (
            no_alias.arg(),
            &["has alias production", "treeserve promote NAME VERSION"],
        ),
    ];
    for (registry, needles) in cases {
        let started = Instant::now();
        let (code, stderr) = run(&["serve", "--listen", "127.0.0.1:0", "--registry", registry]);
        assert_eq!(code, Some(2), "{registry}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].starts_with("Error: "), "{stderr}");
        for needle in needles.iter().chain(&["--wait-for-model"]) {
            assert!(stderr.contains(needle), "{needle:?} in {stderr}");
        }
        assert!(!stderr.contains("acktrace"), "{stderr}");
        // Fails fast: well before a poll or a watcher tick could matter.
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}

/// `--wait-for-model` on a registry that does not exist yet: the server starts, says once
/// that it waits and what to publish, and becomes ready when a model appears; the
/// watcher's "cannot watch" warning is not repeated every second meanwhile.
#[tokio::test]
async fn wait_for_model_waits_saying_so_once_then_serves() {
    let holder = TestRegistry::new();
    let registry = holder.path().join("later");
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--wait-for-model"])
        .args(["--poll-interval", "100ms", "--registry"])
        .arg(&registry)
        .env("TREESERVE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line.trim().rsplit("http://").next().unwrap().to_owned();
    let client = crate::common::http_client().no_proxy().build().unwrap();
    let ready = || async {
        client
            .get(format!("http://{addr}/health/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    };
    assert!(!ready().await);
    // Several watcher ticks (one a second) pass with the registry missing: training the
    // model to publish takes that long in a debug build, and the wait below makes sure.
    let started = Instant::now();
    let artifact = holder.train("iris.tsm", &[]);
    wait_for(Duration::from_secs(10), || async {
        started.elapsed() > Duration::from_millis(2500)
    })
    .await;
    let out = treeserve(&[
        "publish",
        artifact.to_str().unwrap(),
        "--registry",
        registry.to_str().unwrap(),
        "--alias",
        "production",
    ]);
    assert!(out.status.success());
    wait_for(Duration::from_secs(10), ready).await;
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("cannot watch the registry").count(),
        1,
        "{stderr}"
    );
    assert_eq!(stderr.matches("waiting for a model").count(), 1, "{stderr}");
    assert!(stderr.contains("treeserve publish FILE.tsm"), "{stderr}");
}

/// No server at the URL: one line naming the URL and the cause, and what to do.
#[test]
fn client_commands_with_no_server_say_so_in_one_line() {
    let free = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let url = format!("http://{free}");
    for args in [
        &["score", &url, "--row", "SepalLengthCm=1"][..],
        &["health", "--url", &url],
        &["smoke", &url],
    ] {
        let (code, stderr) = run(args);
        assert_eq!(code, Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(&format!(
                "no treeserve at {url}: connection refused; start one"
            )),
            "{stderr}"
        );
        assert!(!stderr.contains("os error"), "{stderr}");
    }
}

/// `treeserve score --csv ... | head -1`: the reader going away stops `score` quietly
/// with SIGPIPE's status, instead of scoring on and reporting success.
#[test]
fn score_stops_quietly_when_its_reader_goes_away() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    let out = Command::new(BIN)
        .args(["score", &app.url("/"), "--batch-size", "1", "--csv"])
        .arg(iris_csv())
        .stdout(reader_gone())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

/// `--verbose` and `TREESERVE_BACKTRACE=1` add the error's causes for a bug report;
/// without them the error is one line.
#[test]
fn verbose_prints_the_causes_otherwise_one_line() {
    let reg = TestRegistry::new();
    let publish = ["publish", "/nonexistent/model.tsm", "--registry", reg.arg()];
    let (code, quiet) = run(&publish);
    assert_eq!((code, quiet.lines().count()), (Some(1), 1), "{quiet}");
    let (code, verbose) = run(&[&["--verbose"][..], &publish].concat());
    assert_eq!(code, Some(1));
    assert!(verbose.starts_with(quiet.trim_end()), "{verbose}");
    assert!(
        verbose.contains("cause 1: No such file or directory"),
        "{verbose}"
    );
    assert!(verbose.contains("kind: NotFound"), "{verbose}");
    let out = Command::new(BIN)
        .args(publish)
        .env("TREESERVE_BACKTRACE", "1")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), verbose);
}
