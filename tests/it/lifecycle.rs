//! The model lifecycle through the binary: datasets, data checks, the validation gate,
//! continuous training from a drop folder with a running server, run comparison (the HTML
//! report and the memory budget: `lifecycle_report.rs`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

/// The IRIS CSV's lines: header, then 150 rows (50 per class, in class order).
fn iris_lines() -> (String, Vec<String>) {
    let text = std::fs::read_to_string(iris_csv()).unwrap();
    let mut lines = text.lines().map(str::to_owned);
    let header = lines.next().unwrap();
    (header, lines.filter(|l| !l.trim().is_empty()).collect())
}

/// Writes `header` + `rows` to `dir/name` the way a producer should: to a hidden file,
/// then renamed in.
fn drop_file(dir: &Path, name: &str, header: &str, rows: &[String]) {
    let tmp = dir.join(format!(".{name}.part"));
    std::fs::write(&tmp, format!("{header}\n{}\n", rows.join("\n"))).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn write_csv(dir: &Path, name: &str, header: &str, rows: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{header}\n{}\n", rows.join("\n"))).unwrap();
    path
}

fn alias(reg: &Path, alias: &str) -> Option<u64> {
    let listing: Value = serde_json::from_str(&treeserve_ok(&[
        "models",
        "iris",
        "--registry",
        reg.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    listing[0]["aliases"][alias]["version"].as_u64()
}

fn versions(reg: &Path) -> usize {
    let listing: Value = serde_json::from_str(&treeserve_ok(&[
        "models",
        "--registry",
        reg.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    listing
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["versions"].as_array().unwrap().len())
        .sum()
}

fn gate_record(reg: &Path, version: u64) -> Value {
    let path = reg.join(format!("iris/records/{version}.gate.json"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// 150 rows with features spread over IRIS's ranges and labels drawn at random: data
/// that can only make a model worse.
fn noise_rows(start_id: usize) -> Vec<String> {
    let mut s = 42u64;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let classes = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"];
    (0..150)
        .map(|i| {
            let f = [
                4.3 + next() * 3.6,
                2.0 + next() * 2.4,
                1.0 + next() * 5.9,
                0.1 + next() * 2.4,
            ];
            let c = classes[(next() * 3.0) as usize % 3];
            format!(
                "{},{:.1},{:.1},{:.1},{:.1},{c}",
                start_id + i,
                f[0],
                f[1],
                f[2],
                f[3]
            )
        })
        .collect()
}

#[test]
fn datasets_are_checked_immutable_content_addressed_and_trainable() {
    let reg = TestRegistry::new();
    let (header, rows) = iris_lines();
    let csv = iris_csv();
    let add = |file: &Path, extra: &[&str]| {
        let mut args = vec![
            "data",
            "add",
            file.to_str().unwrap(),
            "--name",
            "iris",
            "--registry",
            reg.arg(),
        ];
        args.extend_from_slice(extra);
        treeserve(&args)
    };
    let first = add(&csv, &["--json"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let v: Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(v["new"], true);
    assert_eq!(v["dataset"]["version"], 1);
    assert_eq!(v["dataset"]["rows"], 150);
    let sha = v["dataset"]["sha256"].as_str().unwrap().to_owned();
    assert_eq!(v["dataset"]["classes"][0]["rows"], 50);
    assert_eq!(
        v["dataset"]["schema"]["features"],
        serde_json::json!([
            "SepalLengthCm",
            "SepalWidthCm",
            "PetalLengthCm",
            "PetalWidthCm"
        ])
    );
    // The same content again: the same version, nothing new.
    let again = String::from_utf8(add(&csv, &[]).stdout).unwrap();
    assert!(again.contains("already stored as iris:1"), "{again}");
    // Critical problems: exit 4, a readable report, nothing stored.
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, String, &str); 5] = [
        (
            "wrong_column.csv",
            "Id,SepalLengthCm,SepalWidthCm,PetalLengthCm,PetalSize,Species\n1,5.1,3.5,1.4,0.2,Iris-setosa".into(),
            "[columns]",
        ),
        (
            "missing.csv",
            format!("{header}\n1,5.1,,1.4,0.2,Iris-setosa"),
            "[missing]",
        ),
        (
            "text.csv",
            format!("{header}\n1,5.1,wide,1.4,0.2,Iris-setosa"),
            "[types]",
        ),
        (
            "unknown_label.csv",
            format!("{header}\n1,5.1,3.5,1.4,0.2,Iris-setosaa"),
            "[labels]",
        ),
        (
            "far.csv",
            format!("{header}\n1,51,3.5,1.4,0.2,Iris-setosa"),
            "[range]",
        ),
    ];
    for (name, body, needle) in &cases {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        for cmd in ["check", "add"] {
            let out = treeserve(&[
                "data",
                cmd,
                path.to_str().unwrap(),
                "--name",
                "iris",
                "--registry",
                reg.arg(),
                "--append",
            ]);
            assert_eq!(out.status.code(), Some(4), "{name} {cmd}");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains("CRITICAL") && text.contains(needle),
                "{name}: {text}"
            );
            assert!(text.contains("REJECTED"), "{text}");
        }
    }
    // A whole new version without a class: the label vanished.
    let no_virginica = write_csv(dir.path(), "two.csv", &header, &rows[..100]);
    let out = add(&no_virginica, &[]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stdout).contains("vanished"));
    // Rows the dataset has already: nothing new.
    let same = write_csv(dir.path(), "same.csv", &header, &rows[..3]);
    let out = String::from_utf8(add(&same, &["--append"]).stdout).unwrap();
    assert!(out.contains("already stored as iris:1"), "{out}");
    // Warnings do not stop it: duplicated rows appended.
    // (new ids, features and labels of existing rows: duplicates apart from the id)
    let again: Vec<String> = rows[..3]
        .iter()
        .enumerate()
        .map(|(i, r)| format!("{}{}", 500 + i, &r[r.find(',').unwrap()..]))
        .collect();
    let dup = write_csv(dir.path(), "dup.csv", &header, &again);
    let out = String::from_utf8(add(&dup, &["--append"]).stdout).unwrap();
    assert!(
        out.contains("warning") && out.contains("[duplicates]"),
        "{out}"
    );
    assert!(out.contains("stored iris:2 (153 rows"), "{out}");
    let list = treeserve_ok(&["data", "list", "iris", "--registry", reg.arg()]);
    assert_eq!(
        list.lines().filter(|l| l.contains(" rows ")).count(),
        2,
        "{list}"
    );
    // Immutable: version 1's rows are still the original file's.
    let stored = std::fs::read(reg.path().join("_datasets/iris/versions/1/data.csv")).unwrap();
    assert_eq!(treeserve_sha(&stored), sha);
    // Training names a dataset version; the manifest records it.
    let out = treeserve(&[
        "train",
        "--dataset",
        &format!("iris@{}", &sha[..10]),
        "--publish",
        "--registry",
        reg.arg(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["training"]["dataset"]["name"], "iris");
    assert_eq!(v["training"]["dataset"]["version"], 1);
    assert_eq!(v["training"]["dataset"]["sha256"], sha.as_str());
    assert_eq!(v["training"]["split"], "content");
    assert_eq!(v["training"]["rows"], 150);
    assert_eq!(alias(reg.path(), "production"), Some(1));
    assert_eq!(alias(reg.path(), "staging"), Some(1));
    let bad = treeserve(&["train", "--dataset", "iris:9", "--registry", reg.arg()]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not in the registry"));
}

fn treeserve_sha(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn the_gate_promotes_only_what_passes_and_says_so_in_its_exit_code() {
    let reg = TestRegistry::new();
    let csv = iris_csv();
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            csv.to_str().unwrap(),
            "--publish",
            "--registry",
            reg.arg(),
        ];
        args.extend_from_slice(extra);
        treeserve(&args)
    };
    // A threshold the model cannot meet: published as staging only, exit 3.
    let out = train(&["--min-accuracy", "0.999"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[FAIL] accuracy") && err.contains("NOT PROMOTED"),
        "{err}"
    );
    assert_eq!(alias(reg.path(), "staging"), Some(1));
    assert_eq!(alias(reg.path(), "production"), None);
    assert_eq!(gate_record(reg.path(), 1)["promoted"], false);
    // Thresholds met, no champion: promoted.
    let out = train(&["--min-accuracy", "0.8", "--min-recall", "0.8"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("PROMOTED: production -> version 2"));
    assert_eq!(alias(reg.path(), "production"), Some(2));
    // A much weaker model (a stump) is worse than the champion on the same rows: refused.
    let out = train(&["--max-depth", "1"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[FAIL] accuracy") && err.contains("champion"),
        "{err}"
    );
    assert_eq!(alias(reg.path(), "production"), Some(2));
    assert_eq!(alias(reg.path(), "staging"), Some(3));
    let d = gate_record(reg.path(), 3);
    assert_eq!(d["champion"]["version"], 2);
    assert!(
        d["candidate"]["metrics"]["accuracy"].as_f64()
            < d["champion"]["metrics"]["accuracy"].as_f64()
    );
    // A tolerance that covers the gap lets a model through that still beats always
    // answering one class (a depth-1 tree is that constant: refused by the baseline).
    let out = train(&["--max-depth", "2", "--tolerance", "1"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(alias(reg.path(), "production"), Some(4));
    // A gate file; flags override it.
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("gate.json");
    std::fs::write(&gate, r#"{"min_recall": 0.999, "tolerance": 0.5}"#).unwrap();
    assert_eq!(
        train(&["--gate", gate.to_str().unwrap()]).status.code(),
        Some(3)
    );
    let out = train(&["--gate", gate.to_str().unwrap(), "--min-recall", "0.5"]);
    assert_eq!(out.status.code(), Some(0));
    // A bad gate file or threshold is a usage error (1), nothing published.
    std::fs::write(&gate, r#"{"min_acuracy": 0.9}"#).unwrap();
    let before = versions(reg.path());
    let out = train(&["--gate", gate.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field"));
    assert_eq!(train(&["--min-accuracy", "1.5"]).status.code(), Some(1));
    assert_eq!(versions(reg.path()), before);
    // Every version side by side.
    let cmp = treeserve_ok(&["models", "iris", "--compare", "--registry", reg.arg()]);
    for needle in [
        "v1",
        "v6",
        "accuracy",
        "recall Iris-virginica",
        "not promoted",
        "promoted",
        "production",
    ] {
        assert!(cmp.contains(needle), "{needle}: {cmp}");
    }
    assert_eq!(
        cmp.lines()
            .find(|l| l.trim_start().starts_with("gate "))
            .unwrap()
            .matches("not promoted")
            .count(),
        3,
        "{cmp}"
    );
}

/// `treeserve retrain --watch`, killed when dropped.
struct Retrainer(Child);

impl Drop for Retrainer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn processed(drop: &Path, sub: &str, name: &str) {
    let path = drop.join(sub).join(name);
    wait_for(Duration::from_secs(60), || {
        let exists = path.exists();
        async move { exists }
    })
    .await;
}

async fn served_version(app: &App) -> String {
    let resp = app.post("/score", VERSICOLOR).await;
    assert_eq!(resp.status(), 200);
    resp.headers()["x-model-version"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn retrain_watch_promotes_better_data_rejects_bad_files_and_stages_worse_models() {
    let reg = TestRegistry::new();
    let (header, rows) = iris_lines();
    let work = tempfile::tempdir().unwrap();
    // The starting dataset: five rows of each class. Its model is the first champion.
    let start: Vec<String> = [0, 50, 100]
        .iter()
        .flat_map(|&c| rows[c..c + 5].iter().cloned())
        .collect();
    let start_csv = write_csv(work.path(), "start.csv", &header, &start);
    reg.add_iris_dataset(&start_csv);
    let out = reg.train_iris_dataset(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let app = App::spawn(reg.path(), &[]);
    assert_eq!(served_version(&app).await, "1");

    let drop = work.path().join("drop");
    std::fs::create_dir(&drop).unwrap();
    let _retrainer = Retrainer(
        Command::new(BIN)
            .args([
                "retrain",
                "--name",
                "iris",
                "--registry",
                reg.arg(),
                "--watch",
            ])
            .arg(&drop)
            .args(["--poll-interval", "200ms"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );

    // Better data: the rest of the clean rows. A new version is promoted and served.
    let rest: Vec<String> = rows
        .iter()
        .filter(|r| !start.contains(r))
        .cloned()
        .collect();
    drop_file(&drop, "more.csv", &header, &rest);
    processed(&drop, "processed", "more.csv").await;
    let report = std::fs::read_to_string(drop.join("processed/more.csv.report.txt")).unwrap();
    assert!(
        report.contains("PROMOTED: production -> version 2"),
        "{report}"
    );
    let d = gate_record(reg.path(), 2);
    assert!(
        d["candidate"]["metrics"]["accuracy"].as_f64()
            >= d["champion"]["metrics"]["accuracy"].as_f64(),
        "{d}"
    );
    assert_eq!(d["dataset"]["version"], 2);
    assert_eq!(alias(reg.path(), "production"), Some(2));
    wait_for(Duration::from_secs(10), || async {
        served_version(&app).await == "2"
    })
    .await;

    // The same file dropped again adds nothing.
    drop_file(&drop, "more-again.csv", &header, &rest);
    processed(&drop, "processed", "more-again.csv").await;
    let report = std::fs::read_to_string(drop.join("processed/more-again.csv.report.txt")).unwrap();
    assert!(report.contains("no new rows"), "{report}");
    assert_eq!(versions(reg.path()), 2);

    // A file with a wrong column: rejected with a report, nothing published, the server
    // keeps its model.
    let bad_header = header.replace("PetalWidthCm", "PetalWidthMm");
    drop_file(&drop, "bad.csv", &bad_header, &rest[..10]);
    processed(&drop, "rejected", "bad.csv").await;
    let report = std::fs::read_to_string(drop.join("rejected/bad.csv.report.txt")).unwrap();
    assert!(
        report.contains("CRITICAL [columns]") && report.contains("PetalWidthMm"),
        "{report}"
    );
    assert_eq!(versions(reg.path()), 2);
    let datasets = treeserve_ok(&["data", "list", "iris", "--registry", reg.arg()]);
    assert_eq!(
        datasets.lines().filter(|l| l.contains(" rows ")).count(),
        2,
        "{datasets}"
    );

    // Rows that make a worse model: published as staging only.
    drop_file(&drop, "noisy.csv", &header, &noise_rows(1000));
    processed(&drop, "processed", "noisy.csv").await;
    let report = std::fs::read_to_string(drop.join("processed/noisy.csv.report.txt")).unwrap();
    assert!(
        report.contains("NOT PROMOTED: production stays at version 2"),
        "{report}"
    );
    assert_eq!(alias(reg.path(), "staging"), Some(3));
    assert_eq!(alias(reg.path(), "production"), Some(2));
    // Hidden and non-CSV files are left alone.
    std::fs::write(drop.join(".half-written.csv"), "Id,").unwrap();
    std::fs::write(drop.join("notes.txt"), "hello").unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(drop.join(".half-written.csv").exists() && drop.join("notes.txt").exists());
    assert_eq!(served_version(&app).await, "2");

    // The server's report page shows the whole history.
    let resp = app.get("/models/iris/report").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let html = resp.text().await.unwrap();
    for needle in [
        "Gate decisions",
        "not promoted",
        "promoted to production",
        "Dataset iris",
        "v3",
        "more.csv",
    ] {
        assert!(html.contains(needle), "{needle}");
    }
    assert_error(
        app.get("/models/nope/report").await,
        404,
        "model_not_found",
        "nope",
    )
    .await;

    // One-shot mode for cron: exit code says what happened.
    let once = work.path().join("once");
    std::fs::create_dir(&once).unwrap();
    drop_file(&once, "bad.csv", &bad_header, &rest[..3]);
    let once_arg = once.to_str().unwrap();
    let retrain_once = || {
        treeserve(&[
            "retrain",
            "--name",
            "iris",
            "--registry",
            reg.arg(),
            "--once",
            once_arg,
        ])
    };
    let out = retrain_once();
    assert_eq!(out.status.code(), Some(4));
    assert!(once.join("rejected/bad.csv").exists());
    let out = retrain_once();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no CSV files"));
}
