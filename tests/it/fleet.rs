//! What a registry can hold that must not take `/score` away, break discovery or hang the
//! reload task: a second model, a ghost model, corrupt or hostile files, a bad alias
//! target, leftovers of killed commands — through the real binary.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use treeserve::registry::{FsRegistry, Registry};

use crate::common::*;

async fn json_of(resp: reqwest::Response) -> Value {
    resp.json().await.expect("JSON body")
}

/// The model and version that answered `/score`, if it answered 200.
async fn score_answer(app: &App) -> Option<(String, u64)> {
    let r = app.post("/score", VERSICOLOR).await;
    if r.status() != 200 {
        return None;
    }
    let h = |n: &str| r.headers()[n].to_str().unwrap().to_owned();
    Some((h("x-model-name"), h("x-model-version").parse().unwrap()))
}

/// Runs `treeserve ARGS` with a deadline: a command that hangs is killed and fails the
/// test.
fn treeserve_within(args: &[&str], limit: Duration) -> std::process::Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("treeserve {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// A corrupt artifact of `iris` (one flipped bit in a good one).
fn corrupt_artifact(reg: &TestRegistry) -> Vec<u8> {
    let mut bytes = std::fs::read(reg.train("corrupt.tsm", &["--max-depth", "2"])).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x40;
    bytes
}

fn write_alias(reg: &TestRegistry, model: &str, alias: &str, version: u64) {
    let dir = reg.path().join(model).join("aliases");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(alias), format!(r#"{{"version": {version}}}"#)).unwrap();
}

fn backdate(path: &Path, by: Duration) {
    let t = SystemTime::now() - by;
    std::fs::File::open(path).unwrap().set_modified(t).unwrap();
}

#[tokio::test]
async fn a_second_model_published_later_never_takes_score_away() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &["--poll-interval", "50ms"]);
    assert_eq!(score_answer(&app).await, Some(("iris".into(), 1)));
    let other = reg.train("other.tsm", &["--name", "iris-stump", "--max-depth", "1"]);
    reg.publish(&other, Some("production"));
    wait_for(Duration::from_secs(5), || async {
        json_of(app.get("/models").await).await["models"]
            .as_array()
            .is_some_and(|m| m.len() == 2 && m.iter().all(|m| m["ready"] == true))
    })
    .await;
    // /score still answers with the model it had at start.
    assert_eq!(score_answer(&app).await, Some(("iris".into(), 1)));
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 200);
    let ready = json_of(ready).await;
    assert_eq!(ready["score"]["model"], "iris", "{ready}");
    let url = app.url("");
    let smoke = tokio::task::spawn_blocking(move || treeserve(&["smoke", &url]))
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&smoke.stdout);
    assert!(smoke.status.success(), "{report}");
    assert!(
        report.contains("ok   POST /score the canonical request"),
        "{report}"
    );
}

#[tokio::test]
async fn a_ghost_model_with_an_alias_and_no_versions_changes_nothing() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &["--poll-interval", "50ms"]);
    std::fs::create_dir_all(reg.path().join("ghost/versions")).unwrap();
    write_alias(&reg, "ghost", "production", 1);
    wait_for(Duration::from_secs(5), || async {
        json_of(app.get("/models").await).await["models"]
            .as_array()
            .is_some_and(|m| m.len() == 2)
    })
    .await;
    assert_eq!(score_answer(&app).await, Some(("iris".into(), 1)));
    assert_eq!(app.get("/health/ready").await.status(), 200);
    // A server started with the ghost there: the only model loaded answers /score.
    let fresh = App::spawn(reg.path(), &["--poll-interval", "50ms"]);
    assert_eq!(score_answer(&fresh).await, Some(("iris".into(), 1)));
    let ready = json_of(fresh.get("/health/ready").await).await;
    assert_eq!(ready["score"]["model"], "iris", "{ready}");
}

#[tokio::test]
async fn corrupt_alias_files_spoil_only_themselves() {
    let reg = TestRegistry::with_iris();
    let fs = FsRegistry::new(reg.path());
    for name in ["third", "broken"] {
        let a = reg.train(
            &format!("{name}.tsm"),
            &["--name", name, "--max-depth", "2"],
        );
        reg.publish(&a, Some("production"));
    }
    // An operator's backup, a non-followed alias, and one model's followed alias, corrupt.
    std::fs::write(reg.path().join("iris/aliases/production.bak"), b"{oops").unwrap();
    std::fs::write(reg.path().join("third/aliases/candidate"), b"").unwrap();
    std::fs::write(reg.path().join("broken/aliases/production"), b"\x00\x01").unwrap();
    assert_eq!(fs.resolve("iris", "production").unwrap(), 1);

    let app = App::spawn(reg.path(), &["--poll-interval", "50ms"]);
    assert_eq!(app.get("/health/ready").await.status(), 200);
    let models = json_of(app.get("/models").await).await;
    let state: Vec<(String, bool)> = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_owned(), m["ready"] == true))
        .collect();
    assert_eq!(
        state,
        [
            ("broken".to_owned(), false),
            ("iris".to_owned(), true),
            ("third".to_owned(), true)
        ]
    );
    let r = app.post("/models/third/score", VERSICOLOR).await;
    assert_eq!(r.status(), 200);

    let out = treeserve(&["models", "--registry", reg.arg()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "alias production.bak unreadable",
        "alias candidate unreadable",
        "alias production unreadable",
        "third",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from\n{text}");
    }
}

#[test]
fn promote_and_rollback_refuse_a_corrupt_version() {
    let reg = TestRegistry::with_iris();
    let fs = FsRegistry::new(reg.path());
    let v = fs.publish("iris", &corrupt_artifact(&reg)).unwrap();
    let out = treeserve(&["promote", "iris", &v.to_string(), "--registry", reg.arg()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("refusing to point iris's alias production at version 2")
            && err.contains("checksum"),
        "{err}"
    );
    assert!(!err.contains("Backtrace"), "{err}");
    assert_eq!(fs.resolve("iris", "production").unwrap(), 1);
    // Rollback to it is refused the same way.
    fs.set_alias("iris", "production", v).unwrap();
    fs.set_alias("iris", "production", 1).unwrap();
    let out = treeserve(&["rollback", "iris", "--registry", reg.arg()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing"));
    assert_eq!(fs.resolve("iris", "production").unwrap(), 1);
}

#[tokio::test]
async fn a_fresh_server_whose_alias_points_at_a_bad_version_serves_the_previous_one() {
    let reg = TestRegistry::with_iris();
    let fs = FsRegistry::new(reg.path());
    let v = fs.publish("iris", &corrupt_artifact(&reg)).unwrap();
    fs.set_alias("iris", "production", v).unwrap();
    let app = App::spawn(reg.path(), &["--poll-interval", "50ms"]);
    assert_eq!(score_answer(&app).await, Some(("iris".into(), 1)));
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 200);
    let ready = json_of(ready).await;
    let why = ready["models"][0]["fallback"].as_str().unwrap_or_default();
    assert!(
        why.contains("points at version 2") && why.contains("serving version 1"),
        "{ready}"
    );
    // The alias moving to a good version ends the fallback.
    let good = std::fs::read(reg.train("good.tsm", &["--max-depth", "3"])).unwrap();
    let v3 = fs.publish("iris", &good).unwrap();
    fs.set_alias("iris", "production", v3).unwrap();
    wait_for(Duration::from_secs(5), || async {
        score_answer(&app).await == Some(("iris".into(), v3))
    })
    .await;
    let ready = json_of(app.get("/health/ready").await).await;
    assert!(ready["models"][0].get("fallback").is_none(), "{ready}");

    // No earlier version: not ready, and the log says why.
    let lone = TestRegistry::new();
    let lfs = FsRegistry::new(lone.path());
    let v = lfs.publish("iris", &corrupt_artifact(&lone)).unwrap();
    lfs.set_alias("iris", "production", v).unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("stderr.log");
    let (mut child, addr) = start(
        &[
            "serve",
            "--registry",
            lone.arg(),
            "--listen",
            "127.0.0.1:0",
            "--wait-for-model",
        ],
        std::fs::File::create(&log).unwrap().into(),
    );
    let ready = crate::common::http_get(format!("http://{addr}/health/ready"))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    child.kill().unwrap();
    child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("no earlier version of the alias loads"),
        "{text}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn hostile_registry_files_are_refused_without_blocking_the_reload_task() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &["--poll-interval", "50ms"]);
    let good = std::fs::read(reg.train("good.tsm", &["--max-depth", "2"])).unwrap();
    // An artifact that is a FIFO: opening it would wait for a writer forever.
    let dir = reg.path().join("iris/versions/2");
    std::fs::create_dir_all(&dir).unwrap();
    let made = Command::new("mkfifo")
        .arg(dir.join("model.tsm"))
        .status()
        .unwrap();
    assert!(made.success());
    write_alias(&reg, "iris", "production", 2);
    wait_for(Duration::from_secs(5), || async {
        app.loads("registry_io").await >= 1
    })
    .await;
    assert_eq!(score_answer(&app).await, Some(("iris".into(), 1)));
    // The reload task is free: a later promotion is served.
    let v = FsRegistry::new(reg.path()).publish("iris", &good).unwrap();
    let arg = reg.arg().to_owned();
    tokio::task::spawn_blocking(move || {
        treeserve_ok(&["promote", "iris", &v.to_string(), "--registry", &arg])
    })
    .await
    .unwrap();
    wait_for(Duration::from_secs(5), || async {
        score_answer(&app).await == Some(("iris".into(), v))
    })
    .await;
    // An artifact that is a symlink to /dev/zero, and an alias file that is a FIFO:
    // refused at once, by the CLI too.
    let dir = reg.path().join("iris/versions/4");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("model.tsm")).unwrap();
    let before = app.loads("registry_io").await;
    write_alias(&reg, "iris", "production", 4);
    let out = treeserve_within(
        &["promote", "iris", "4", "--registry", reg.arg()],
        Duration::from_secs(20),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("a device, not a regular file"), "{err}");
    wait_for(Duration::from_secs(5), || async {
        app.loads("registry_io").await > before
    })
    .await;
    assert_eq!(score_answer(&app).await, Some(("iris".into(), v)));
    let made = Command::new("mkfifo")
        .arg(reg.path().join("iris/aliases/staging"))
        .status()
        .unwrap();
    assert!(made.success());
    let out = treeserve_within(
        &["models", "--registry", reg.arg()],
        Duration::from_secs(20),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("alias staging unreadable") && text.contains("a FIFO, not a regular file"),
        "{text}"
    );
}

#[test]
fn an_oversized_alias_file_is_refused_from_its_size() {
    let reg = TestRegistry::with_iris();
    let path = reg.path().join("iris/aliases/candidate");
    // 104 MB (sparse): refused before a byte is read.
    std::fs::File::create(&path)
        .unwrap()
        .set_len(104 * 1024 * 1024)
        .unwrap();
    let out = treeserve_within(
        &["models", "--registry", reg.arg()],
        Duration::from_secs(20),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("alias candidate unreadable")
            && text.contains("over the limit of 65536 bytes"),
        "{text}"
    );
}

#[test]
fn stale_leftovers_of_killed_commands_are_cleaned_and_fresh_ones_kept() {
    let reg = TestRegistry::with_iris();
    let iris = reg.path().join("iris");
    let old_stage = iris.join(".staging/4242-1-0");
    let fresh_stage = iris.join(".staging/4243-1-0");
    for d in [&old_stage, &fresh_stage] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("model.tsm"), b"half").unwrap();
    }
    let old_tmp = iris.join("aliases/.production.tmp-4242-1-0");
    let fresh_tmp = iris.join("aliases/.production.tmp-4243-1-0");
    std::fs::write(&old_tmp, b"{").unwrap();
    std::fs::write(&fresh_tmp, b"{").unwrap();
    let two_hours = Duration::from_secs(2 * 60 * 60);
    backdate(&old_stage.join("model.tsm"), two_hours);
    backdate(&old_stage, two_hours);
    backdate(&old_tmp, two_hours);
    treeserve_ok(&["promote", "iris", "1", "--registry", reg.arg()]);
    assert!(
        !old_stage.exists() && !old_tmp.exists(),
        "stale leftovers kept"
    );
    assert!(
        fresh_stage.exists() && fresh_tmp.exists(),
        "fresh ones removed"
    );
}

#[cfg(unix)]
#[test]
fn a_promote_that_cannot_write_leaves_no_temporary_file() {
    let reg = TestRegistry::with_iris();
    let v = reg.publish(&reg.train("v2.tsm", &["--max-depth", "2"]), None);
    // Every write fails (EFBIG, as ENOSPC would): the file size limit at 0 blocks, with
    // SIGXFSZ ignored so the write returns an error.
    let script = format!(
        "trap '' XFSZ; ulimit -f 0; exec '{BIN}' promote iris {v} --registry '{}'",
        reg.arg()
    );
    let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
    assert!(!out.status.success(), "{out:?}");
    let left: Vec<String> = std::fs::read_dir(reg.path().join("iris/aliases"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert_eq!(
        FsRegistry::new(reg.path())
            .resolve("iris", "production")
            .unwrap(),
        1
    );
}

#[test]
fn version_numbers_do_not_wrap_and_non_canonical_names_are_not_versions() {
    let reg = TestRegistry::with_iris();
    let artifact = reg.path().join("iris.tsm");
    let versions = reg.path().join("iris/versions");
    let max = versions.join(u64::MAX.to_string());
    std::fs::create_dir_all(&max).unwrap();
    let out = treeserve(&[
        "publish",
        artifact.to_str().unwrap(),
        "--registry",
        reg.arg(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("18446744073709551615") && err.contains("largest possible"),
        "{err}"
    );
    assert!(!versions.join("0").exists());
    std::fs::remove_dir(&max).unwrap();
    // `+7` and `01` are not versions: neither listed nor counted when numbering.
    for stray in ["+7", "01"] {
        std::fs::create_dir_all(versions.join(stray)).unwrap();
        std::fs::copy(&artifact, versions.join(stray).join("model.tsm")).unwrap();
    }
    assert_eq!(FsRegistry::new(reg.path()).versions("iris").unwrap(), [1]);
    assert_eq!(reg.publish(&artifact, None), 2);
}
