//! The command line: train, publish, models, promote, rollback, score.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::common::*;

#[test]
fn train_reports_sane_metrics_on_iris() {
    let reg = TestRegistry::new();
    let out = reg.dir.path().join("iris.tsm");
    let json = treeserve_ok(&[
        "train",
        "--data",
        iris_csv().to_str().unwrap(),
        "--test-size",
        "0.4",
        "--seed",
        "1984",
        "--output",
        out.to_str().unwrap(),
        "--json",
    ]);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert!(v["metrics"]["accuracy"].as_f64().unwrap() >= 0.9, "{v}");
    assert_eq!(v["training"]["test_rows"], 60);
    assert_eq!(v["training"]["train_rows"], 90);
    let per_class = v["metrics"]["per_class"].as_array().unwrap();
    assert_eq!(per_class.len(), 3);
    for c in per_class {
        for k in ["precision", "recall", "f1"] {
            let x = c[k].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&x) && x > 0.5, "{c}");
        }
    }
    let confusion: Vec<Vec<u64>> =
        serde_json::from_value(v["metrics"]["confusion"].clone()).unwrap();
    assert_eq!(confusion.iter().flatten().sum::<u64>(), 60);
    // The human table.
    let table = treeserve_ok(&[
        "train",
        "--data",
        iris_csv().to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    for needle in [
        "accuracy",
        "precision",
        "recall",
        "f1",
        "confusion matrix",
        "Iris-virginica",
    ] {
        assert!(table.contains(needle), "{table}");
    }
    // The same seed gives the same model and metrics.
    let again = treeserve_ok(&[
        "train",
        "--data",
        iris_csv().to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--json",
    ]);
    let w: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(v["metrics"], w["metrics"]);
}

#[test]
fn random_forest_trains_and_serves_probabilities() {
    let reg = TestRegistry::new();
    let artifact = reg.train(
        "forest.tsm",
        &[
            "--algorithm",
            "random-forest",
            "--n-trees",
            "25",
            "--name",
            "iris",
        ],
    );
    let bytes = std::fs::read(&artifact).unwrap();
    let model = treeserve::Model::from_bytes(&bytes, 0, &Default::default()).unwrap();
    assert_eq!(model.num_trees(), 25);
    assert!(model.manifest().metrics.accuracy >= 0.9);
    assert_eq!(reg.publish(&artifact, Some("production")), 1);
}

fn train_csv(csv: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(&path, csv).unwrap();
    let out = treeserve(&[
        "train",
        "--data",
        path.to_str().unwrap(),
        "--output",
        dir.path().join("m.tsm").to_str().unwrap(),
    ]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_training_data_names_line_and_column() {
    let head = "Id,A,B,Species\n";
    let good = "1,1,2,x\n2,3,4,y\n3,1,2,x\n4,3,4,y\n5,1,2,x\n";
    assert!(
        train_csv(&format!("{head}{good}")).0,
        "the good file trains"
    );
    let cases = [
        (
            format!("{head}1,1,2,x\n2,,4,y\n"),
            vec!["line 3", "\"A\"", "missing value"],
        ),
        (
            format!("{head}1,1,2,x\n2,3,abc,y\n"),
            vec!["line 3", "\"B\"", "not a number"],
        ),
        (
            format!("{head}1,1,2,x\n2,3,inf,y\n"),
            vec!["line 3", "\"B\"", "not finite"],
        ),
        (
            format!("{head}1,1,2,x\n2,3,4,y,9\n"),
            vec!["line 3", "5 fields"],
        ),
        (
            format!("{head}1,1,2,x\n2,3,4\n"),
            vec!["line 3", "3 fields"],
        ),
        (
            format!("{head}1,1,2,x\n2,3,4,\n"),
            vec!["line 3", "Species", "missing label"],
        ),
        (format!("{head}1,1,2,x\n2,3,4,x\n"), vec!["only one class"]),
        (String::new(), vec!["empty"]),
        (head.to_string(), vec!["no data rows"]),
        (
            "Id,A,B\n1,2,3\n".to_string(),
            vec!["no target column \"Species\""],
        ),
    ];
    for (csv, needles) in cases {
        let (ok, err) = train_csv(&csv);
        assert!(!ok, "{csv:?} should fail");
        for n in needles {
            assert!(err.contains(n), "{csv:?}: {err:?} lacks {n:?}");
        }
    }
}

#[test]
fn publish_models_promote_rollback() {
    let reg = TestRegistry::new();
    let a = reg.train("a.tsm", &[]);
    let b = reg.train("b.tsm", &["--max-depth", "2"]);
    assert_eq!(reg.publish(&a, Some("production")), 1);
    assert_eq!(reg.publish(&b, None), 2);
    assert_eq!(reg.publish(&b, Some("staging")), 3);

    let listing: Value = serde_json::from_str(&treeserve_ok(&[
        "models",
        "--registry",
        reg.arg(),
        "--json",
    ]))
    .unwrap();
    let m = &listing[0];
    assert_eq!(m["name"], "iris");
    assert_eq!(m["aliases"]["production"]["version"], 1);
    assert_eq!(m["aliases"]["staging"]["version"], 3);
    let versions = m["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 3);
    assert!(versions[0]["accuracy"].as_f64().unwrap() >= 0.9);
    assert_eq!(versions[0]["aliases"], serde_json::json!(["production"]));
    // A directory registry verifies every version it lists, with --verify or without.
    assert!(versions.iter().all(|v| v["verified"] == true), "{listing}");
    let table = treeserve_ok(&["models", "--registry", reg.arg()]);
    assert!(
        table.contains("production") && table.contains("decision_tree"),
        "{table}"
    );
    assert!(!table.contains("checksums not verified"), "{table}");
    let verified = treeserve_ok(&["models", "--registry", reg.arg(), "--verify", "--json"]);
    assert_eq!(serde_json::from_str::<Value>(&verified).unwrap(), listing);

    treeserve_ok(&[
        "promote",
        "iris",
        "2",
        "--alias",
        "production",
        "--registry",
        reg.arg(),
    ]);
    treeserve_ok(&[
        "promote",
        "iris",
        "3",
        "--alias",
        "production",
        "--registry",
        reg.arg(),
    ]);
    let resolve = || {
        let l: Value = serde_json::from_str(&treeserve_ok(&[
            "models",
            "--registry",
            reg.arg(),
            "--json",
        ]))
        .unwrap();
        l[0]["aliases"]["production"]["version"].as_u64().unwrap()
    };
    assert_eq!(resolve(), 3);
    treeserve_ok(&[
        "rollback",
        "iris",
        "--alias",
        "production",
        "--registry",
        reg.arg(),
    ]);
    assert_eq!(resolve(), 2);
    treeserve_ok(&[
        "rollback",
        "iris",
        "--alias",
        "production",
        "--registry",
        reg.arg(),
    ]);
    assert_eq!(resolve(), 1);
    let out = treeserve(&[
        "rollback",
        "iris",
        "--alias",
        "production",
        "--registry",
        reg.arg(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no earlier version"));

    for (args, needle) in [
        (
            vec!["promote", "iris", "9", "--alias", "production"],
            "no version 9",
        ),
        (
            vec!["promote", "nosuch", "1", "--alias", "production"],
            "not in the registry",
        ),
        (
            vec!["promote", "iris", "1", "--alias", "../evil"],
            "invalid name",
        ),
        (vec!["rollback", "iris", "--alias", "never"], "no alias"),
    ] {
        let mut args = args.clone();
        args.extend_from_slice(&["--registry", reg.arg()]);
        let out = treeserve(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn publish_refuses_a_bad_artifact() {
    let reg = TestRegistry::new();
    let a = reg.train("a.tsm", &[]);
    let mut bytes = std::fs::read(&a).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0x55;
    let bad = reg.dir.path().join("bad.tsm");
    std::fs::write(&bad, &bytes).unwrap();
    let out = treeserve(&["publish", bad.to_str().unwrap(), "--registry", reg.arg()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("checksum"));
    assert!(!reg.path().join("iris").exists());
}

#[test]
fn concurrent_publisher_processes_get_distinct_versions() {
    let reg = TestRegistry::new();
    let a = reg.train("a.tsm", &[]);
    let children: Vec<_> = (0..8)
        .map(|_| {
            std::process::Command::new(BIN)
                .args(["publish", a.to_str().unwrap(), "--registry", reg.arg()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let versions: BTreeSet<u64> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success());
            String::from_utf8(out.stdout)
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(versions, (1..=8).collect());
}

#[tokio::test]
async fn score_client_posts_csv_rows_and_single_rows() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    let url = app.url("");
    let url2 = url.clone();
    let out = tokio::task::spawn_blocking(move || {
        treeserve_ok(&[
            "score",
            &url2,
            "--csv",
            iris_csv().to_str().unwrap(),
            "--batch-size",
            "40",
        ])
    })
    .await
    .unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 151, "{out}");
    assert!(
        lines[0].starts_with("1\tIris-setosa\tIris-setosa"),
        "{}",
        lines[0]
    );
    let acc: f64 = lines[150]
        .strip_prefix("accuracy ")
        .and_then(|s| s.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(acc >= 0.9, "{}", lines[150]);

    let u = url.clone();
    let out = tokio::task::spawn_blocking(move || {
        treeserve_ok(&[
            "score",
            &u,
            "--row",
            "SepalLengthCm=6.6,SepalWidthCm=3,PetalLengthCm=4.4,PetalWidthCm=1.4",
        ])
    })
    .await
    .unwrap();
    assert_eq!(
        out.trim(),
        r#"{"output":{"predicted_species":"Iris-versicolor"}}"#
    );

    let u = url.clone();
    let out = tokio::task::spawn_blocking(move || treeserve(&["score", &u, "--json", "{}"]))
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing_feature"));
}

#[tokio::test]
async fn train_can_publish_and_score_can_ask_for_probabilities() {
    let reg = TestRegistry::new();
    let out = reg.path().join("iris.tsm");
    let (csv, out_s) = (iris_csv(), out.to_str().unwrap().to_owned());
    treeserve_ok(&[
        "train",
        "--data",
        csv.to_str().unwrap(),
        "--output",
        &out_s,
        "--publish",
        reg.arg(),
        "--alias",
        "production",
    ]);
    let listing: Value = serde_json::from_str(&treeserve_ok(&[
        "models",
        "--registry",
        reg.arg(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(listing[0]["aliases"]["production"]["version"], 1);
    let app = App::spawn(reg.path(), &[]);
    let url = app.url("");
    let out = tokio::task::spawn_blocking(move || {
        treeserve_ok(&[
            "score",
            &url,
            "--probabilities",
            "--row",
            "SepalLengthCm=5.1,SepalWidthCm=3.5,PetalLengthCm=1.4,PetalWidthCm=0.2",
        ])
    })
    .await
    .unwrap();
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["output"]["predicted_species"], "Iris-setosa");
    assert_eq!(v["output"]["probabilities"]["Iris-setosa"], 1.0);
    // --alias without --publish is a usage error.
    let bad = treeserve(&[
        "train",
        "--data",
        csv.to_str().unwrap(),
        "--output",
        &out_s,
        "--alias",
        "production",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--publish"));
}

#[tokio::test]
async fn health_and_smoke_check_a_running_server() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    let url = app.url("");
    let junit = reg.path().join("smoke.xml");
    let (u, j) = (url.clone(), junit.clone());
    let (health, smoke) = tokio::task::spawn_blocking(move || {
        (
            treeserve(&["health", "--url", &u]),
            treeserve(&["smoke", &u, "--junit", j.to_str().unwrap()]),
        )
    })
    .await
    .unwrap();
    assert!(health.status.success(), "{health:?}");
    let report = String::from_utf8_lossy(&smoke.stdout);
    assert!(
        smoke.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&smoke.stderr)
    );
    for line in [
        "GET /health/ready answers 200",
        "POST /score the canonical request",
        "iris: golden rows via /models/iris/score",
        "iris: golden rows via /v2/models/iris/infer",
        "GET /metrics parses",
        "0 failed",
    ] {
        assert!(report.contains(line), "{line:?} missing from\n{report}");
    }
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(r#"tests="6" failures="0""#), "{xml}");

    // A server with no model: not ready, and the smoke test fails with a report.
    let empty = TestRegistry::new();
    let bare = App::spawn(empty.path(), &["--wait-for-model"]);
    let url = bare.url("");
    let junit = empty.path().join("smoke.xml");
    let j = junit.clone();
    let (health, smoke) = tokio::task::spawn_blocking(move || {
        (
            treeserve(&["health", "--url", &url, "--timeout", "1s"]),
            treeserve(&["smoke", &url, "--junit", j.to_str().unwrap()]),
        )
    })
    .await
    .unwrap();
    assert!(!health.status.success());
    assert!(String::from_utf8_lossy(&health.stderr).contains("not ready"));
    assert!(!smoke.status.success());
    let report = String::from_utf8_lossy(&smoke.stdout);
    assert!(report.contains("FAIL GET /health/ready"), "{report}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<failure message="), "{xml}");
    // Nothing listening: health fails fast.
    let closed = treeserve(&["health", "--url", "http://127.0.0.1:9", "--timeout", "1s"]);
    assert!(!closed.status.success());
}

#[test]
fn publish_if_empty_seeds_once() {
    let reg = TestRegistry::new();
    let artifact = reg.train("iris.tsm", &[]);
    let args = |extra: &[&'static str]| {
        let mut a = vec![
            "publish",
            artifact.to_str().unwrap(),
            "--registry",
            reg.arg(),
        ];
        a.extend_from_slice(extra);
        a
    };
    let first = treeserve_ok(&args(&["--alias", "production", "--if-empty"]));
    assert_eq!(first.trim(), "1");
    let again = treeserve(&args(&["--alias", "production", "--if-empty"]));
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already has version 1"));
    assert_eq!(
        treeserve_ok(&args(&[])).trim(),
        "2",
        "without --if-empty it publishes"
    );
}
