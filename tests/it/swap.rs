//! Hot swap: the server follows its registry's alias, through the real binary.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use treeserve::registry::{FsRegistry, Registry};

use crate::common::*;

/// Polls `f` every 10 ms until it is true or `limit` passes; returns the time it took.
async fn served_version(app: &App) -> Option<u64> {
    let r = app.post("/score", VERSICOLOR).await;
    if r.status() != 200 {
        return None;
    }
    r.headers()["x-model-version"].to_str().ok()?.parse().ok()
}

fn publish(reg: &TestRegistry, bytes: &[u8]) -> u64 {
    let fs = FsRegistry::new(reg.path());
    let v = fs.publish("iris", bytes).unwrap();
    fs.set_alias("iris", "production", v).unwrap();
    v
}

#[tokio::test]
async fn a_published_version_is_served_with_the_watcher_alone() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &["--poll-interval", "0s"]);
    assert_eq!(served_version(&app).await, Some(1));
    let bytes = std::fs::read(reg.train("v2.tsm", &["--max-depth", "2"])).unwrap();
    assert_eq!(publish(&reg, &bytes), 2);
    let took = wait_for(Duration::from_secs(1), || async {
        served_version(&app).await == Some(2)
    })
    .await;
    eprintln!("watcher swap took {took:?}");
    let m: Value = app.get("/models").await.json().await.unwrap();
    assert_eq!(m["models"][0]["version"], 2);
    assert_eq!(app.loads("success").await, 2);
}

#[tokio::test]
async fn polling_alone_picks_up_a_new_version_and_sighup_reconciles() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &["--no-watch", "--poll-interval", "100ms"]);
    let bytes = std::fs::read(reg.train("v2.tsm", &["--max-depth", "2"])).unwrap();
    publish(&reg, &bytes);
    wait_for(Duration::from_secs(2), || async {
        served_version(&app).await == Some(2)
    })
    .await;

    // Neither watching nor polling: only SIGHUP reconciles.
    let app2 = App::spawn(reg.path(), &["--no-watch", "--poll-interval", "0s"]);
    assert_eq!(served_version(&app2).await, Some(2));
    publish(&reg, &bytes);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        served_version(&app2).await,
        Some(2),
        "nothing should reload it"
    );
    app2.signal("HUP");
    wait_for(Duration::from_secs(2), || async {
        served_version(&app2).await == Some(3)
    })
    .await;
}

#[tokio::test]
async fn bad_artifacts_never_replace_the_served_model() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &["--poll-interval", "50ms"]);
    let good = std::fs::read(reg.train("good.tsm", &["--max-depth", "3"])).unwrap();
    let mut flipped = good.clone();
    let n = flipped.len();
    flipped[n / 2] ^= 0x40;
    let mut wrong_version = good.clone();
    wrong_version[8] = 9;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("checksum", flipped),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("unsupported_version", wrong_version),
        ("bad_magic", b"not a model at all".to_vec()),
    ];
    for (outcome, bytes) in cases {
        let v = publish(&reg, &bytes);
        wait_for(Duration::from_secs(2), || async {
            app.loads(outcome).await == 1
        })
        .await;
        // Still serving version 1, ready, and the failure is not retried for the same bytes.
        assert_eq!(served_version(&app).await, Some(1), "after bad version {v}");
        assert_eq!(app.get("/health/ready").await.status(), 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            app.loads(outcome).await,
            1,
            "{outcome} retried without a change"
        );
    }
    // A version directory whose artifact is missing, and one that is unreadable.
    let fs = FsRegistry::new(reg.path());
    let v = fs.publish("iris", &good).unwrap();
    std::fs::remove_file(reg.path().join(format!("iris/versions/{v}/model.tsm"))).unwrap();
    fs.set_alias("iris", "production", v).ok();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(served_version(&app).await, Some(1));
    // A good publish afterwards is picked up.
    let v = publish(&reg, &good);
    wait_for(Duration::from_secs(2), || async {
        served_version(&app).await == Some(v)
    })
    .await;
}

#[tokio::test]
async fn a_schema_change_is_refused_unless_allowed() {
    let reg = TestRegistry::with_iris();
    // Same model name, other features: the CSV without PetalWidthCm.
    let csv: String = std::fs::read_to_string(iris_csv())
        .unwrap()
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(',').collect();
            f.remove(4);
            f.join(",") + "\n"
        })
        .collect();
    let path = reg.path().join("iris3.csv");
    std::fs::write(&path, csv).unwrap();
    let out = reg.path().join("narrow.tsm");
    treeserve_ok(&[
        "train",
        "--data",
        path.to_str().unwrap(),
        "--name",
        "iris",
        "--output",
        out.to_str().unwrap(),
    ]);
    let narrow = std::fs::read(&out).unwrap();

    let app = App::spawn(reg.path(), &["--poll-interval", "50ms"]);
    publish(&reg, &narrow);
    wait_for(Duration::from_secs(2), || async {
        app.loads("schema_change").await == 1
    })
    .await;
    assert_eq!(served_version(&app).await, Some(1));

    let open = App::spawn(
        reg.path(),
        &[
            "--poll-interval",
            "50ms",
            "--allow-schema-change",
            "--alias",
            "staging",
            "--wait-for-model",
        ],
    );
    let fs = FsRegistry::new(reg.path());
    fs.set_alias("iris", "staging", 1).unwrap();
    wait_for(Duration::from_secs(2), || async {
        served_version(&open).await == Some(1)
    })
    .await;
    fs.set_alias("iris", "staging", 2).unwrap();
    wait_for(Duration::from_secs(2), || async {
        let r = open
            .post(
                "/score",
                r#"{"SepalLengthCm": 6.6, "SepalWidthCm": 3, "PetalLengthCm": 4.4}"#,
            )
            .await;
        r.status() == 200 && r.headers()["x-model-version"] == "2"
    })
    .await;
}

#[tokio::test]
async fn not_ready_until_the_first_valid_model_then_ready() {
    let reg = TestRegistry::new();
    let app = App::spawn(
        reg.path(),
        &["--poll-interval", "100ms", "--wait-for-model"],
    );
    assert_eq!(app.get("/health/ready").await.status(), 503);
    let bytes = std::fs::read(reg.train("a.tsm", &[])).unwrap();
    // A bad first version: still not ready.
    publish(&reg, b"garbage");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.get("/health/ready").await.status(), 503);
    publish(&reg, &bytes);
    wait_for(Duration::from_secs(2), || async {
        app.get("/health/ready").await.status() == 200
    })
    .await;
    assert_eq!(served_version(&app).await, Some(2));
}

#[tokio::test]
async fn the_registry_removed_and_recreated_keeps_serving() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &["--poll-interval", "50ms"]);
    let aside = reg.path().with_extension("aside");
    std::fs::rename(reg.path(), &aside).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(served_version(&app).await, Some(1));
    assert_eq!(app.get("/health/ready").await.status(), 200);
    // Recreated empty, then filled again: the model stays until a valid version appears.
    std::fs::create_dir(reg.path()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(served_version(&app).await, Some(1));
    std::fs::remove_dir(reg.path()).unwrap();
    std::fs::rename(&aside, reg.path()).unwrap();
    let bytes = std::fs::read(reg.train("b.tsm", &["--max-depth", "2"])).unwrap();
    let v = publish(&reg, &bytes);
    wait_for(Duration::from_secs(2), || async {
        served_version(&app).await == Some(v)
    })
    .await;
}

#[tokio::test]
async fn swaps_under_load_lose_no_request() {
    let reg = TestRegistry::with_iris();
    let app = Arc::new(App::spawn(reg.path(), &["--poll-interval", "500ms"]));
    let bytes = std::fs::read(reg.train("v.tsm", &["--max-depth", "3"])).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // Clients that have had their first answer (version 1, before any publish).
    let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (app, stop, started) = (app.clone(), stop.clone(), started.clone());
            tokio::spawn(async move {
                // One keep-alive connection per task.
                let client = crate::common::http_client()
                    .no_proxy()
                    .pool_max_idle_per_host(1)
                    .build()
                    .unwrap();
                let mut seen: Vec<u64> = Vec::new();
                let mut failures = 0;
                // Until stopped, and at least 25 answers each: the count of requests
                // depends on the machine's load, never the test's verdict.
                while !stop.load(Ordering::Relaxed) || seen.len() + failures < 25 {
                    match client
                        .post(app.url("/score"))
                        .header("content-type", "application/json")
                        .body(VERSICOLOR)
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == 200 => {
                            seen.push(
                                r.headers()["x-model-version"]
                                    .to_str()
                                    .unwrap()
                                    .parse()
                                    .unwrap(),
                            );
                            if seen.len() == 1 {
                                started.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        _ => failures += 1,
                    }
                }
                (seen, failures)
            })
        })
        .collect();
    wait_for(Duration::from_secs(10), || async {
        started.load(Ordering::Relaxed) == 4
    })
    .await;
    let mut published = vec![1u64];
    for _ in 0..50 {
        published.push(publish(&reg, &bytes));
    }
    let last = *published.last().unwrap();
    let took = wait_for(Duration::from_secs(1), || async {
        served_version(&app).await == Some(last)
    })
    .await;
    eprintln!("last of 50 publishes served after {took:?}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    let mut versions: HashMap<u64, usize> = HashMap::new();
    for c in clients {
        let (seen, failures) = c.await.unwrap();
        assert_eq!(failures, 0);
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "versions went backwards on a connection"
        );
        for v in &seen {
            assert!(published.contains(v), "unpublished version {v}");
            *versions.entry(*v).or_default() += 1;
        }
        total += seen.len();
    }
    assert!(total >= 100, "{total} requests");
    // Clients ran before the first publish and after the last was served: they saw swaps.
    assert!(versions.len() >= 2, "one version seen: {versions:?}");
    eprintln!("{total} requests over {} versions", versions.len());
}

#[cfg(unix)]
#[tokio::test]
async fn the_configmap_symlink_flip_layout_is_followed_by_polling() {
    use std::os::unix::fs::symlink;
    // Kubernetes ConfigMap volumes: ROOT/iris -> ..data/iris, ..data -> ..TIMESTAMP/, and an
    // update writes a new ..TIMESTAMP2/ then renames a new ..data symlink over the old.
    let src = TestRegistry::with_iris();
    let root = tempfile::tempdir().unwrap();
    let copy = |to: &std::path::Path| {
        let out = Command::new("cp")
            .arg("-a")
            .arg(src.path())
            .arg(to)
            .status()
            .unwrap();
        assert!(out.success());
    };
    copy(&root.path().join("..2026_11_27_1"));
    symlink("..2026_11_27_1", root.path().join("..data")).unwrap();
    symlink("..data/iris", root.path().join("iris")).unwrap();
    let app = App::spawn(root.path(), &["--no-watch", "--poll-interval", "100ms"]);
    assert_eq!(served_version(&app).await, Some(1));

    let bytes = std::fs::read(src.train("v2.tsm", &["--max-depth", "2"])).unwrap();
    assert_eq!(publish(&src, &bytes), 2);
    copy(&root.path().join("..2026_11_27_2"));
    symlink("..2026_11_27_2", root.path().join("..data_tmp")).unwrap();
    std::fs::rename(root.path().join("..data_tmp"), root.path().join("..data")).unwrap();
    wait_for(Duration::from_secs(2), || async {
        served_version(&app).await == Some(2)
    })
    .await;
}

#[tokio::test]
async fn a_half_written_artifact_is_retried_when_it_is_complete() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &["--poll-interval", "50ms"]);
    let good = std::fs::read(reg.train("good.tsm", &["--max-depth", "2"])).unwrap();
    // A writer that does not publish atomically: the version appears half written.
    let dir = reg.path().join("iris/versions/2");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("model.tsm"), &good[..good.len() / 3]).unwrap();
    FsRegistry::new(reg.path())
        .set_alias("iris", "production", 2)
        .unwrap();
    wait_for(Duration::from_secs(2), || async {
        app.loads("truncated").await == 1
    })
    .await;
    assert_eq!(served_version(&app).await, Some(1));
    std::fs::write(dir.join("model.tsm"), &good).unwrap();
    wait_for(Duration::from_secs(2), || async {
        served_version(&app).await == Some(2)
    })
    .await;
}

#[tokio::test]
async fn an_artifact_failing_its_golden_rows_is_refused() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &["--poll-interval", "50ms"]);
    let good = std::fs::read(reg.train("good.tsm", &[])).unwrap();
    let (mut manifest, payload) = treeserve::model::read_parts(&good).unwrap();
    for g in &mut manifest.golden {
        g.class = (g.class + 1) % 3;
    }
    publish(&reg, &treeserve::model::encode_artifact(&manifest, payload));
    wait_for(Duration::from_secs(2), || async {
        app.loads("golden_rows").await == 1
    })
    .await;
    assert_eq!(served_version(&app).await, Some(1));
}

#[tokio::test]
async fn the_watcher_follows_a_replaced_registry_root() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &["--poll-interval", "0s"]);
    let aside = reg.path().with_extension("old");
    let staged = reg.path().with_extension("new");
    // A new root, built elsewhere, renamed into place.
    Command::new("cp")
        .arg("-a")
        .arg(reg.path())
        .arg(&staged)
        .status()
        .unwrap();
    let bytes = std::fs::read(reg.train("v2.tsm", &["--max-depth", "2"])).unwrap();
    let fs = FsRegistry::new(&staged);
    let v = fs.publish("iris", &bytes).unwrap();
    fs.set_alias("iris", "production", v).unwrap();
    std::fs::rename(reg.path(), &aside).unwrap();
    std::fs::rename(&staged, reg.path()).unwrap();
    wait_for(Duration::from_secs(3), || async {
        served_version(&app).await == Some(v)
    })
    .await;
    // And keeps watching the new root.
    let v = publish(&reg, &bytes);
    wait_for(Duration::from_secs(2), || async {
        served_version(&app).await == Some(v)
    })
    .await;
    std::fs::remove_dir_all(&aside).unwrap();
}

#[tokio::test]
async fn promote_and_rollback_reach_a_running_server() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &["--poll-interval", "0s"]);
    let v2 = reg.publish(&reg.train("v2.tsm", &["--max-depth", "2"]), None);
    assert_eq!(
        served_version(&app).await,
        Some(1),
        "publishing without the alias changes nothing"
    );
    let arg = reg.arg().to_owned();
    let a = arg.clone();
    tokio::task::spawn_blocking(move || {
        treeserve_ok(&["promote", "iris", &v2.to_string(), "--registry", &a])
    })
    .await
    .unwrap();
    wait_for(Duration::from_secs(2), || async {
        served_version(&app).await == Some(v2)
    })
    .await;
    tokio::task::spawn_blocking(move || treeserve_ok(&["rollback", "iris", "--registry", &arg]))
        .await
        .unwrap();
    wait_for(Duration::from_secs(2), || async {
        served_version(&app).await == Some(1)
    })
    .await;
}

#[tokio::test]
async fn an_unreadable_artifact_keeps_the_current_model() {
    // Permission bits do not stop root (CI runs as root), so the artifact path is made a
    // directory: reading it fails the same way, with an I/O error.
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &["--poll-interval", "50ms"]);
    std::fs::create_dir_all(reg.path().join("iris/versions/2/model.tsm")).unwrap();
    std::fs::write(
        reg.path().join("iris/aliases/production"),
        br#"{"version": 2}"#,
    )
    .unwrap();
    wait_for(Duration::from_secs(2), || async {
        app.loads("registry_io").await >= 1
    })
    .await;
    assert_eq!(served_version(&app).await, Some(1));
    assert_eq!(app.get("/health/ready").await.status(), 200);
}

/// A failure that repeats at every poll (here: the followed alias does not exist) is
/// logged once, with what to do, and once more only when it changes or recovers.
#[tokio::test]
async fn a_repeating_reload_failure_is_logged_once_with_a_hint() {
    let reg = TestRegistry::new();
    let artifact = reg.train("iris.tsm", &[]);
    assert_eq!(reg.publish(&artifact, None), 1);
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("stderr.log");
    let (mut child, addr) = start(
        &[
            "serve",
            "--registry",
            reg.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--model",
            "iris",
            "--poll-interval",
            "20ms",
            "--no-watch",
            "--wait-for-model",
        ],
        std::fs::File::create(&log).unwrap().into(),
    );
    let metrics = format!("http://{addr}/metrics");
    // At least ten failed reloads (each is counted) ...
    wait_for(Duration::from_secs(10), || async {
        let text = crate::common::http_get(&metrics)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find(|l| l.starts_with(r#"treeserve_model_loads_total{outcome="registry"}"#))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .is_some_and(|n| n >= 10)
    })
    .await;
    // ... then the alias appears and the model is served.
    treeserve_ok(&[
        "promote",
        "iris",
        "1",
        "--registry",
        reg.path().to_str().unwrap(),
    ]);
    let ready = format!("http://{addr}/health/ready");
    wait_for(Duration::from_secs(10), || async {
        crate::common::http_get(&ready).await.unwrap().status() == 200
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let failures: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("reload failed"))
        .collect();
    assert_eq!(failures.len(), 1, "{text}");
    assert!(
        failures[0].contains("treeserve promote iris VERSION --alias production"),
        "{text}"
    );
}
