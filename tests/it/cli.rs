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

#[test]
fn predict_scores_a_csv_in_order_on_every_thread() {
    let reg = TestRegistry::with_iris();
    let out = reg.path().join("out.csv");
    let csv = iris_csv();
    let run = |extra: &[&str], out: &std::path::Path| {
        let mut args = vec![
            "predict",
            "--registry",
            reg.arg(),
            "--input",
            csv.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        treeserve(&args)
    };
    let one = run(&["--threads", "1", "--probabilities"], &out);
    assert!(one.status.success(), "{one:?}");
    assert!(String::from_utf8_lossy(&one.stderr).contains("predicted 150 rows"));
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "Id,predicted_species,p_Iris-setosa,p_Iris-versicolor,p_Iris-virginica"
    );
    // Every row agrees with the model, in input order.
    let bytes = std::fs::read(reg.path().join("iris/versions/1/model.tsm")).unwrap();
    let model = treeserve::Model::from_bytes(&bytes, 1, &Default::default()).unwrap();
    let data = std::fs::read_to_string(iris_csv()).unwrap();
    for (row, line) in data.lines().skip(1).zip(lines) {
        let cells: Vec<&str> = row.split(',').collect();
        let values: Vec<f64> = cells[1..5].iter().map(|c| c.parse().unwrap()).collect();
        let got: Vec<&str> = line.split(',').collect();
        assert_eq!(got[0], cells[0], "id");
        assert_eq!(
            got[1],
            model.classes()[model.predict(&values)],
            "row {}",
            cells[0]
        );
    }
    // Many threads and tiny chunks give the same file.
    let many = reg.path().join("many.csv");
    assert!(
        run(
            &["--threads", "4", "--chunk-rows", "7", "--probabilities"],
            &many
        )
        .status
        .success()
    );
    assert_eq!(std::fs::read_to_string(&many).unwrap(), text);

    // Bad input: a clear error, exit 1, no output file left behind.
    let bad = reg.path().join("bad.csv");
    std::fs::write(
        &bad,
        "SepalLengthCm,SepalWidthCm,PetalLengthCm,PetalWidthCm\n1,2,3,4\n5,x,1,1\n",
    )
    .unwrap();
    let failed = reg.path().join("failed.csv");
    let args = [
        "predict",
        "--registry",
        reg.arg(),
        "--input",
        bad.to_str().unwrap(),
    ];
    let out = treeserve(&[&args[..], &["--output", failed.to_str().unwrap()]].concat());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(r#"line 3, column "SepalWidthCm": "x""#),
        "{out:?}"
    );
    assert!(!failed.exists() && !reg.path().join("failed.csv.partial").exists());
    std::fs::write(&bad, "SepalLengthCm,PetalWidthCm\n1,2\n").unwrap();
    let out = treeserve(&[&args[..], &["--output", failed.to_str().unwrap()]].concat());
    assert!(String::from_utf8_lossy(&out.stderr).contains(r#"no column "SepalWidthCm""#));

    // A model that fails its checks (it loads while the CSV is read and parsed): its
    // error alone, and nothing written, to a file or to stdout.
    let tsm = reg.path().join("iris/versions/1/model.tsm");
    let mut b = std::fs::read(&tsm).unwrap();
    let n = b.len();
    b[n - 5] ^= 1;
    let mut perm = std::fs::metadata(&tsm).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(&tsm, perm).unwrap();
    std::fs::write(&tsm, b).unwrap();
    for output in [failed.to_str().unwrap(), "-"] {
        let args = [
            "predict",
            "--registry",
            reg.arg(),
            "--input",
            csv.to_str().unwrap(),
        ];
        let out = treeserve(&[&args[..], &["--output", output]].concat());
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("iris version 1: checksum mismatch: body") && err.lines().count() == 1,
            "{err}"
        );
        assert!(out.stdout.is_empty(), "{out:?}");
        assert!(!failed.exists() && !reg.path().join("failed.csv.partial").exists());
    }
}

#[test]
fn predict_cuts_blocks_only_between_records() {
    // Quoted ids with commas, quotes and newlines, over many small blocks.
    let reg = TestRegistry::with_iris();
    let input = reg.path().join("quoted.csv");
    let mut text = String::from("Id,SepalLengthCm,SepalWidthCm,PetalLengthCm,PetalWidthCm\n");
    for i in 0..300 {
        text.push_str(&format!("\"row {i},\n\"\"quoted\"\"\",5.1,3.5,1.4,0.2\n"));
    }
    std::fs::write(&input, &text).unwrap();
    let out = reg.path().join("out.csv");
    let run = treeserve(&[
        "predict",
        "--registry",
        reg.arg(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--chunk-rows",
        "1",
        "--threads",
        "3",
    ]);
    assert!(run.status.success(), "{run:?}");
    let mut reader = csv_rows(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(reader.remove(0), ["Id", "predicted_species"]);
    assert_eq!(reader.len(), 300);
    for (i, row) in reader.iter().enumerate() {
        assert_eq!(row[0], format!("row {i},\n\"quoted\""));
        assert_eq!(row[1], "Iris-setosa");
    }
}

/// A tiny CSV reader for the tests: quoted fields with commas, quotes and newlines.
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (c, _) => field.push(c),
        }
    }
    rows
}

#[tokio::test]
async fn health_finds_the_port_in_treeserve_listen_and_predict_streams() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    let listen = format!("0.0.0.0:{}", app.addr.port());
    let health = tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            .arg("health")
            .env("TREESERVE_LISTEN", listen)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(health.status.success(), "{health:?}");

    // `-` reads stdin and writes stdout.
    let mut child = std::process::Command::new(BIN)
        .args([
            "predict",
            "--registry",
            reg.arg(),
            "--input",
            "-",
            "--output",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SepalLengthCm,SepalWidthCm,PetalLengthCm,PetalWidthCm\n6.6,3,4.4,1.4\n5.1,3.5,1.4,0.2\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "predicted_species\nIris-versicolor\nIris-setosa\n"
    );
}

/// Runs `treeserve ARGS` with `RUST_BACKTRACE=1` (as many developers' shells set it),
/// expecting a user error: exit 1, one `Error:` line, no backtrace. Returns stderr.
fn user_error(args: &[&str]) -> String {
    let out = std::process::Command::new(BIN)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    let errors = stderr.lines().filter(|l| l.starts_with("Error: ")).count();
    assert_eq!(errors, 1, "{args:?}: {stderr}");
    assert!(
        !stderr.contains("acktrace") && !stderr.contains("Error {"),
        "{stderr}"
    );
    stderr
}

/// A user's mistake is one line on stderr, without a backtrace, even where the shell sets
/// `RUST_BACKTRACE=1` (as many developers' shells do).
#[test]
fn user_errors_are_one_line_without_a_backtrace() {
    let reg = tempfile::tempdir().unwrap();
    let reg = reg.path().to_str().unwrap();
    for args in [
        &["promote", "iris", "7", "--registry", reg][..],
        &["publish", "/nonexistent/model.tsm", "--registry", reg],
        &["serve", "--registry", reg, "--model", "not a name!"],
        &[
            "predict",
            "--registry",
            reg,
            "--input",
            "-",
            "--output",
            "-",
        ],
    ] {
        let stderr = user_error(args);
        let lines = stderr.lines().filter(|l| !l.trim().is_empty()).count();
        assert_eq!(lines, 1, "{args:?}: {stderr}");
    }
}

/// A busy port and an absent server are said in one line, with what to do.
#[test]
fn a_busy_port_and_an_absent_server_say_what_to_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();
    let free = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let models = repo().join("models");
    let cases: [(&[&str], &str); 3] = [
        (
            &[
                "serve",
                "--registry",
                models.to_str().unwrap(),
                "--listen",
                &busy,
            ],
            "--listen",
        ),
        (
            &[
                "score",
                &format!("http://{free}"),
                "--row",
                "SepalLengthCm=1",
            ],
            "treeserve serve",
        ),
        (
            &["health", "--url", &format!("http://{free}")],
            "treeserve serve",
        ),
    ];
    for (args, hint) in cases {
        assert!(user_error(args).contains(hint), "{args:?}");
    }
    drop(taken);
}

/// Shell completions and a man page from the same definitions as `--help`; `--help` lists
/// the exit codes; `publish` without `--alias` says the version is not served yet.
#[test]
fn completions_man_page_exit_codes_and_the_publish_hint() {
    let dir = tempfile::tempdir().unwrap();
    let bash = treeserve_ok(&["completions", "bash"]);
    assert!(
        bash.contains("_treeserve()") && bash.contains("--registry"),
        "{bash}"
    );
    let script = dir.path().join("treeserve.bash");
    std::fs::write(&script, &bash).unwrap();
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    for shell in ["zsh", "fish"] {
        assert!(
            treeserve_ok(&["completions", shell]).contains("serve"),
            "{shell}"
        );
    }
    let man = treeserve_ok(&["man"]);
    assert!(
        man.contains(".TH treeserve 1") && man.contains("predict"),
        "{man}"
    );
    assert!(treeserve_ok(&["--help"]).contains("Exit codes:\n  0    success"));

    let registry = dir.path().join("registry");
    let artifact = repo().join("models/iris/versions/1/model.tsm");
    let out = treeserve(&[
        "publish",
        artifact.to_str().unwrap(),
        "--registry",
        registry.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("treeserve promote iris 1 --alias production"),
        "{stderr}"
    );
}

/// `treeserve train ... | head -1`: a reader that goes away stops the command quietly,
/// with SIGPIPE's status (141), not a panic and a backtrace.
#[test]
fn a_closed_stdout_stops_a_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("iris.tsm");
    // The pipe's reader is gone before the command starts: its first line meets a closed
    // pipe whatever the scheduling (a reader dropped after the spawn raced the command's
    // first line on a busy machine).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = std::process::Command::new(BIN)
        .args(["train", "--data", iris_csv().to_str().unwrap()])
        .args(["--output", out.to_str().unwrap()])
        .env("RUST_BACKTRACE", "1")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}
