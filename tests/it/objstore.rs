//! Registries in object stores (S3 on moto, Azure Blob on azurite), through the binary:
//! publish, promote and rollback followed by a fleet of replicas under load, outages,
//! the cache, hostile objects and racing writers. Every test runs against each store.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::TestRegistry;
use crate::stores::{Kind, Replica, Store, iris_artifact, trained_artifact};

macro_rules! for_each_store {
    ($($name:ident),* $(,)?) => {
        mod s3 {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Kind::S3).await })*
        }
        mod azure {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Kind::Azure).await })*
        }
    };
}

for_each_store!(
    replicas_follow_promote_and_rollback_under_load_without_a_failed_request,
    an_outage_is_served_through_and_a_replica_starts_from_its_cache,
    corrupt_and_oversized_objects_never_replace_the_served_model,
    racing_publishers_and_promoters_lose_nothing,
    every_registry_command_works_on_the_store,
);

/// Waits until `f` holds, polling every 20 ms; fails after `limit`. Returns the time.
async fn until<F, Fut>(limit: Duration, what: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

/// Sends requests to every replica until stopped; counts answers that were not 200.
fn load(
    replicas: &[Arc<Replica>],
) -> (Arc<AtomicU64>, Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (o, f, reps) = (ok.clone(), failed.clone(), replicas.to_vec());
    let task = tokio::spawn(async move {
        loop {
            for r in &reps {
                match r.served_version().await {
                    Some(_) => o.fetch_add(1, Ordering::Relaxed),
                    None => f.fetch_add(1, Ordering::Relaxed),
                };
            }
        }
    });
    (ok, failed, task)
}

async fn replicas_follow_promote_and_rollback_under_load_without_a_failed_request(kind: Kind) {
    let store = Store::start(kind);
    let local = TestRegistry::new();
    let artifact = iris_artifact(local.path());
    let a = artifact.to_str().unwrap();
    let reg = store.registry("models");
    store.treeserve_ok(&["publish", a, "--registry", &reg, "--alias", "production"]);
    store.treeserve_ok(&["publish", a, "--registry", &reg]);
    let replicas: Vec<Arc<Replica>> = (0..3)
        .map(|_| {
            Arc::new(Replica::spawn(
                &store,
                &["--registry", &reg, "--poll-interval", "1s"],
            ))
        })
        .collect();
    for r in &replicas {
        assert_eq!(r.served_version().await, Some(1));
    }
    let (ok, failed, task) = load(&replicas);
    for (cmd, to) in [("promote", 2), ("rollback", 1)] {
        let args: Vec<&str> = match cmd {
            "promote" => vec![
                "promote",
                "iris",
                "2",
                "--registry",
                &reg,
                "--alias",
                "production",
            ],
            _ => vec![
                "rollback",
                "iris",
                "--registry",
                &reg,
                "--alias",
                "production",
            ],
        };
        store.treeserve_ok(&args);
        // Every replica within the poll interval (1 s, +10% jitter) and a second to load,
        // with room for a loaded CI machine.
        for r in &replicas {
            until(
                Duration::from_secs(4),
                &format!("{cmd} to {to}"),
                || async { r.served_version().await == Some(to) },
            )
            .await;
        }
    }
    task.abort();
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed requests");
    assert!(ok.load(Ordering::Relaxed) > 10);
    // The alias remembers its history in the store.
    let listed = store.treeserve_ok(&["models", "--registry", &reg, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(v[0]["aliases"]["production"]["version"], 1);
}

async fn an_outage_is_served_through_and_a_replica_starts_from_its_cache(kind: Kind) {
    let store = Store::start(kind);
    let local = TestRegistry::new();
    let artifact = iris_artifact(local.path());
    let a = artifact.to_str().unwrap();
    let reg = store.registry("team/models");
    store.treeserve_ok(&["publish", a, "--registry", &reg, "--alias", "production"]);
    let cache = local.path().join("cache");
    let c = cache.to_str().unwrap();
    let first = Arc::new(Replica::spawn(
        &store,
        &[
            "--registry",
            &reg,
            "--poll-interval",
            "1s",
            "--cache-dir",
            c,
        ],
    ));
    assert_eq!(first.served_version().await, Some(1));
    assert_eq!(first.metric("treeserve_registry_up").await, Some(1.0));
    let (ok, failed, task) = load(std::slice::from_ref(&first));
    // The alias moved by a writer that bypassed treeserve to a damaged version, refused:
    // the outage starts with the alias on a version the cache never kept.
    alias_a_damaged_version(&store, "team/models", &artifact, &first).await;

    store.set_down(true);
    until(Duration::from_secs(5), "registry_up 0", || async {
        first.metric("treeserve_registry_up").await == Some(0.0)
    })
    .await;
    // A replica that starts during the outage serves what the cache verified (version 1,
    // not the alias's damaged 2)...
    let second = Replica::spawn(
        &store,
        &[
            "--registry",
            &reg,
            "--poll-interval",
            "1s",
            "--cache-dir",
            c,
        ],
    );
    assert_eq!(second.served_version().await, Some(1));
    // ...and one without a cache says why it cannot start.
    let out = store
        .command(
            &["serve", "--listen", "127.0.0.1:0", "--registry", &reg],
            false,
        )
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("unreachable") || err.contains("cannot be reached"),
        "{err}"
    );
    assert!(!err.contains("stack backtrace"), "{err}");

    // A version promoted while the replicas cannot see it is caught up with afterwards.
    let published =
        store.treeserve_ok(&["publish", a, "--registry", &reg, "--alias", "production"]);
    assert_eq!(published.trim(), "3", "{published}");
    store.set_down(false);
    for r in [&*first, &second] {
        until(Duration::from_secs(20), "catch up to 3", || async {
            r.served_version().await == Some(3)
        })
        .await;
        assert_eq!(r.metric("treeserve_registry_up").await, Some(1.0));
    }
    task.abort();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "failed requests during the outage"
    );
    assert!(ok.load(Ordering::Relaxed) > 10);
}

/// Writes a damaged copy of `artifact` as version 2 of `iris` under `prefix` and moves the
/// alias to it, as a writer that bypassed treeserve would; waits until `replica` refused it.
async fn alias_a_damaged_version(
    store: &Store,
    prefix: &str,
    artifact: &std::path::Path,
    replica: &Replica,
) {
    let mut bad = std::fs::read(artifact).unwrap();
    let n = bad.len();
    bad[n - 10] ^= 0xff;
    store.put_raw(&format!("{prefix}/iris/versions/2/model.tsm"), &bad);
    store.put_raw(
        &format!("{prefix}/iris/aliases/production"),
        br#"{"version": 2, "history": [1]}"#,
    );
    until(
        Duration::from_secs(5),
        "the damaged version refused",
        || async {
            replica
                .metric("treeserve_model_loads_total{outcome=\"checksum\"}")
                .await
                .is_some_and(|v| v >= 1.0)
        },
    )
    .await;
}

async fn corrupt_and_oversized_objects_never_replace_the_served_model(kind: Kind) {
    let store = Store::start(kind);
    let local = TestRegistry::new();
    let artifact = iris_artifact(local.path());
    let reg = store.registry("r");
    store.treeserve_ok(&[
        "publish",
        artifact.to_str().unwrap(),
        "--registry",
        &reg,
        "--alias",
        "production",
    ]);
    let r = Replica::spawn(&store, &["--registry", &reg, "--poll-interval", "1s"]);
    assert_eq!(r.served_version().await, Some(1));
    // A corrupt version, aliased by a writer that bypassed treeserve.
    alias_a_damaged_version(&store, "r", &artifact, &r).await;
    assert_eq!(r.served_version().await, Some(1));
    // Polls that find the alias still there do not validate the same bytes again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let checksum = r
        .metric("treeserve_model_loads_total{outcome=\"checksum\"}")
        .await;
    assert_eq!(checksum, Some(1.0));
    // `models` lists a version larger than its ranged read (a 100-tree forest) from the
    // manifest alone; --verify downloads it whole and finds the damage.
    let forest = trained_artifact(
        local.path(),
        "forest.tsm",
        &["--algorithm", "random-forest", "--n-trees", "100"],
    );
    let mut forest = std::fs::read(&forest).unwrap();
    assert!(forest.len() > 2 * 65536, "{}", forest.len());
    let n = forest.len();
    forest[n - 10] ^= 0xff;
    store.put_raw("r/iris/versions/3/model.tsm", &forest);
    // A version cut short in the store, smaller than the ranged read: read whole, told.
    let iris = std::fs::read(&artifact).unwrap();
    store.put_raw("r/iris/versions/4/model.tsm", &iris[..iris.len() - 10]);
    let models = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["models", "iris", "--registry", &reg, "--json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&store.treeserve_ok(&args)).unwrap()
    };
    let listed = models(&[]);
    let versions = &listed[0]["versions"];
    assert_eq!(versions[0]["verified"], true, "{listed}"); // IRIS is smaller: read whole
    assert!(
        versions[1]["error"].as_str().unwrap().contains("checksum"),
        "{listed}"
    );
    assert_eq!(versions[2]["verified"], false, "{listed}");
    assert_eq!(versions[2]["algorithm"], "random_forest", "{listed}");
    assert!(
        versions[3]["error"].as_str().unwrap().contains("truncated"),
        "{listed}"
    );
    let verified = models(&["--verify"]);
    let v3 = &verified[0]["versions"][2];
    assert!(
        v3["error"].as_str().unwrap().contains("checksum"),
        "{verified}"
    );
    let text = store.treeserve_ok(&["models", "iris", "--registry", &reg]);
    assert!(
        text.contains("1 version listed from its manifest only"),
        "{text}"
    );
    // An alias object over its size cap is refused before its body is read.
    store.put_raw("r/iris/aliases/production", &vec![b' '; 100 * 1024]);
    let listed = store.treeserve_ok(&["models", "--registry", &reg, "--json"]);
    assert!(listed.contains("over the 65536-byte limit"), "{listed}");
    tokio::time::sleep(Duration::from_millis(1500)).await; // a poll sees it, and changes nothing
    assert_eq!(r.served_version().await, Some(1));
}

async fn racing_publishers_and_promoters_lose_nothing(kind: Kind) {
    let store = Arc::new(Store::start(kind));
    let local = TestRegistry::new();
    let artifact = iris_artifact(local.path());
    let reg = store.registry("race");
    let per = 6;
    let publish = |_| {
        let (store, reg, a) = (store.clone(), reg.clone(), artifact.clone());
        std::thread::spawn(move || {
            for _ in 0..per {
                store.treeserve_ok(&["publish", a.to_str().unwrap(), "--registry", &reg]);
            }
            per
        })
    };
    let threads: Vec<_> = (0..2).map(publish).collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), per);
    }
    let listed: serde_json::Value =
        serde_json::from_str(&store.treeserve_ok(&["models", "--registry", &reg, "--json"]))
            .unwrap();
    let versions: Vec<u64> = listed[0]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(
        versions,
        (1..=2 * per as u64).collect::<Vec<_>>(),
        "two publishers, distinct versions"
    );

    // Two promoters, each moving the alias to its own versions: every move is in the
    // history (a lost conditional update would drop one).
    let promote = |range: std::ops::RangeInclusive<u64>| {
        let (store, reg) = (store.clone(), reg.clone());
        std::thread::spawn(move || {
            for v in range {
                store.treeserve_ok(&[
                    "promote",
                    "iris",
                    &v.to_string(),
                    "--registry",
                    &reg,
                    "--alias",
                    "production",
                ]);
            }
        })
    };
    let a = promote(1..=per as u64);
    let b = promote(per as u64 + 1..=2 * per as u64);
    a.join().unwrap();
    b.join().unwrap();
    let listed: serde_json::Value =
        serde_json::from_str(&store.treeserve_ok(&["models", "--registry", &reg, "--json"]))
            .unwrap();
    let alias = &listed[0]["aliases"]["production"];
    let mut seen: Vec<u64> = alias["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    seen.push(alias["version"].as_u64().unwrap());
    seen.sort_unstable();
    assert_eq!(seen, (1..=2 * per as u64).collect::<Vec<_>>(), "{alias}");
}

async fn every_registry_command_works_on_the_store(kind: Kind) {
    let store = Store::start(kind);
    let work = tempfile::tempdir().unwrap();
    let reg = store.registry("lifecycle");
    let csv = crate::common::iris_csv();
    let csv = csv.to_str().unwrap();
    // Datasets: add, append, list.
    let (head, rows) = {
        let text = std::fs::read_to_string(csv).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let head = lines.remove(0);
        (head, lines)
    };
    let part = |name: &str, rows: &[String]| {
        let p = work.path().join(name);
        std::fs::write(&p, format!("{head}\n{}\n", rows.join("\n"))).unwrap();
        p
    };
    let first = part("first.csv", &rows[..120]);
    store.treeserve_ok(&[
        "data",
        "add",
        first.to_str().unwrap(),
        "--name",
        "iris",
        "--registry",
        &reg,
    ]);
    let more = part("more.csv", &rows[120..]);
    store.treeserve_ok(&[
        "data",
        "add",
        more.to_str().unwrap(),
        "--name",
        "iris",
        "--registry",
        &reg,
        "--append",
    ]);
    let listed = store.treeserve_ok(&["data", "list", "--registry", &reg]);
    assert!(listed.contains("iris"), "{listed}");
    if kind == Kind::Azure {
        // A key the emulator refuses (moto takes any): one line naming the credentials.
        let out = store
            .command(&["data", "list", "--registry", &reg], true)
            .env(
                "AZURE_STORAGE_ACCOUNT_KEY",
                "d3Jvbmcga2V5IGZvciB0aGUgdGVzdA==",
            )
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("check the store's credentials"), "{err}");
    }
    // Train on the dataset through the gate, publish, promote.
    let out = store
        .command(
            &[
                "train",
                "--dataset",
                "iris",
                "--publish",
                "--registry",
                &reg,
            ],
            true,
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let models: serde_json::Value =
        serde_json::from_str(&store.treeserve_ok(&["models", "--registry", &reg, "--json"]))
            .unwrap();
    assert_eq!(models[0]["name"], "iris");
    assert_eq!(models[0]["aliases"]["production"]["version"], 1, "{models}");
    // The gate's record, the comparison and the report read the store.
    let compare = store.treeserve_ok(&["models", "iris", "--compare", "--registry", &reg]);
    assert!(compare.contains("accuracy"), "{compare}");
    let html = work.path().join("report.html");
    store.treeserve_ok(&[
        "report",
        "iris",
        "--registry",
        &reg,
        "--out",
        html.to_str().unwrap(),
    ]);
    assert!(std::fs::read_to_string(&html).unwrap().contains("<html"));
    // Continuous training, once: new rows become a dataset version and a gated model.
    let incoming = work.path().join("incoming");
    std::fs::create_dir(&incoming).unwrap();
    // Rows not seen before: new ids, the sepal length moved by 0.05.
    let fresh: Vec<String> = rows[..30]
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut f: Vec<String> = r.split(',').map(str::to_owned).collect();
            f[0] = (1000 + i).to_string();
            f[1] = format!("{:.2}", f[1].parse::<f64>().unwrap() + 0.05);
            f.join(",")
        })
        .collect();
    std::fs::write(
        incoming.join("new.csv"),
        format!("{head}\n{}\n", fresh.join("\n")),
    )
    .unwrap();
    let out = store
        .command(
            &[
                "retrain",
                "--name",
                "iris",
                "--registry",
                &reg,
                "--once",
                incoming.to_str().unwrap(),
            ],
            true,
        )
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let versions: serde_json::Value =
        serde_json::from_str(&store.treeserve_ok(&["models", "--registry", &reg, "--json"]))
            .unwrap();
    assert_eq!(
        versions[0]["versions"].as_array().unwrap().len(),
        2,
        "{versions}"
    );
}

#[test]
fn unknown_schemes_and_unreachable_stores_get_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(crate::common::BIN)
        .current_dir(dir.path())
        .args(["models", "--registry", "s4://bucket/x"])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("unknown scheme \"s4\""), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing created"
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    drop(std::net::TcpListener::bind(closed)); // a port nothing listens on
    let out = std::process::Command::new(crate::common::BIN)
        .args(["models", "--registry", "s3://bucket/x"])
        .env("AWS_ENDPOINT_URL", format!("http://{closed}"))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "k")
        .env("AWS_SECRET_ACCESS_KEY", "s")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("unreachable"), "{err}");
}
