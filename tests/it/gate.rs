//! The validation gate through the binary: what it must refuse (label-shuffled candidates,
//! schema changes, chance-level first models), the rows it judges on (never rows either
//! model trained on), and finishing the gate of a version published without a decision.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::*;

/// IRIS with its labels permuted (a fixed permutation; the features untouched).
fn shuffled_iris(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(iris_csv()).unwrap();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().unwrap().to_owned();
    let rows: Vec<(&str, &str)> = lines.map(|l| l.rsplit_once(',').unwrap()).collect();
    let mut labels: Vec<&str> = rows.iter().map(|r| r.1).collect();
    let mut s = 7u64;
    for i in (1..labels.len()).rev() {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        labels.swap(i, ((s >> 33) % (i as u64 + 1)) as usize);
    }
    let body: Vec<String> = rows
        .iter()
        .zip(&labels)
        .map(|((features, _), label)| format!("{features},{label}"))
        .collect();
    let path = dir.join("shuffled.csv");
    std::fs::write(&path, format!("{header}\n{}\n", body.join("\n"))).unwrap();
    path
}

/// A copy of the shipped registry (models/: IRIS version 1, production, no rows record).
fn shipped_registry() -> TestRegistry {
    let reg = TestRegistry::new();
    let src = repo().join("models/iris");
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    };
    for f in ["versions/1/model.tsm", "aliases/production"] {
        copy(&src.join(f), &reg.path().join("iris").join(f));
    }
    reg
}

fn production(reg: &Path) -> Option<u64> {
    let listing: Value = serde_json::from_str(&treeserve_ok(&[
        "models",
        "iris",
        "--registry",
        reg.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    listing[0]["aliases"]["production"]["version"].as_u64()
}

fn gate_record(reg: &Path, version: u64) -> Option<Value> {
    let bytes = std::fs::read(reg.join(format!("iris/records/{version}.gate.json"))).ok()?;
    Some(serde_json::from_slice(&bytes).unwrap())
}

/// `train --data FILE --name iris --publish REG` plus `extra`.
fn publish(reg: &TestRegistry, file: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "train",
        "--data",
        file.to_str().unwrap(),
        "--name",
        "iris",
        "--publish",
        reg.arg(),
    ];
    args.extend_from_slice(extra);
    treeserve(&args)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn label_shuffled_candidates_never_replace_the_champion() {
    let work = tempfile::tempdir().unwrap();
    let shuffled = shuffled_iris(work.path());
    // A champion published through the gate (its rows recorded), then 20 candidates
    // trained on garbage labels: each is judged on the champion's held-out rows, with
    // the labels the champion was tested with, and refused.
    let reg = TestRegistry::new();
    let out = publish(&reg, &iris_csv(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for seed in 1..=20 {
        let out = publish(&reg, &shuffled, &["--seed", &seed.to_string()]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "seed {seed}: {err}");
        assert!(
            err.contains("[FAIL] on the champion's") && err.contains("held-out rows: accuracy"),
            "seed {seed}: {err}"
        );
        assert_eq!(production(reg.path()), Some(1), "seed {seed}");
    }
    // What made that possible: the rows the champion trained on and held out, recorded.
    assert!(reg.path().join("iris/records/1.rows.json").is_file());
    // The shipped registry's champion has no rows record and shuffled.csv is not its
    // data: no fair comparison is possible, so nothing is promoted, and it says why.
    let shipped = shipped_registry();
    for seed in 1..=5 {
        let out = publish(&shipped, &shuffled, &["--seed", &seed.to_string()]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "seed {seed}: {err}");
        assert!(
            err.contains("the champion's held-out rows: unknown"),
            "{err}"
        );
        assert_eq!(production(shipped.path()), Some(1));
    }
}

#[test]
fn the_quickstart_on_the_shipped_registry_is_judged_on_rows_neither_model_trained_on() {
    let reg = shipped_registry();
    let csv = iris_csv();
    reg.add_iris_dataset(&csv);
    let out = reg.train_iris_dataset(&["--json"]);
    let err = stderr(&out);
    // The champion's split of iris.csv is redone from its manifest (it has no record):
    // the rows it trained on are left out, so it no longer scores 1.0 on its own
    // training rows and a candidate as good as it passes.
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("reconstructed"), "{err}");
    let trained: Value = serde_json::from_slice(&out.stdout).unwrap();
    let test_rows = trained["training"]["test_rows"].as_u64().unwrap();
    let d = gate_record(reg.path(), 2).unwrap();
    let judged = d["held_out_rows"].as_u64().unwrap();
    let excluded = d["excluded_rows"].as_u64().unwrap();
    assert!(judged > 0 && excluded > 0, "{d}");
    assert_eq!(judged + excluded, test_rows, "{d}");
    assert_eq!(d["champion_held_out"]["rows"].as_u64(), Some(judged), "{d}");
    assert!(err.contains(&format!("on {judged} held-out rows")), "{err}");
    assert_eq!(d["promoted"], true);
    assert_eq!(production(reg.path()), Some(2));
}

#[test]
fn a_schema_change_is_refused_unless_allowed() {
    let reg = TestRegistry::new();
    assert_eq!(publish(&reg, &iris_csv(), &[]).status.code(), Some(0));
    let work = tempfile::tempdir().unwrap();
    let renamed = work.path().join("renamed.csv");
    let text = std::fs::read_to_string(iris_csv()).unwrap();
    std::fs::write(&renamed, text.replacen("PetalWidthCm", "PetalWidthMm", 1)).unwrap();
    let out = publish(&reg, &renamed, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("[FAIL] schema") && err.contains("--allow-schema-change"),
        "{err}"
    );
    assert_eq!(production(reg.path()), Some(1));
    let out = publish(&reg, &renamed, &["--allow-schema-change"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("[pass] schema"));
    assert_eq!(production(reg.path()), Some(3));
}

#[test]
fn without_a_champion_a_model_must_beat_the_baseline() {
    let work = tempfile::tempdir().unwrap();
    let shuffled = shuffled_iris(work.path());
    let reg = TestRegistry::new();
    let out = publish(&reg, &shuffled, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("[FAIL] accuracy") && err.contains("better than always answering"),
        "{err}"
    );
    assert_eq!(production(reg.path()), None);
    // A real model clears it; a margin of 1 (remove every error) is a usage error-free
    // way to demand perfection.
    let out = publish(&reg, &iris_csv(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("[pass] accuracy"));
    assert_eq!(
        publish(&reg, &iris_csv(), &["--baseline-margin", "1.5"])
            .status
            .code(),
        Some(1)
    );
    // A regressor on a target unrelated to its features: no better than the mean.
    let noise = work.path().join("noise.csv");
    let mut s = 11u64;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut body = String::from("a,b,y\n");
    for _ in 0..200 {
        body += &format!("{:.3},{:.3},{:.3}\n", next(), next(), next() * 100.0);
    }
    std::fs::write(&noise, body).unwrap();
    let out = treeserve(&[
        "train",
        "--task",
        "regression",
        "--target",
        "y",
        "--data",
        noise.to_str().unwrap(),
        "--publish",
        reg.arg(),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("[FAIL] MSE"), "{err}");
}

/// Makes the registry's record writes fail (its `records` directory replaced by a file,
/// as a full disk would): `train --publish` then stops after publishing, before the gate.
struct BrokenRecords(PathBuf);

impl BrokenRecords {
    fn new(reg: &Path) -> Self {
        let dir = reg.join("iris/records");
        std::fs::rename(&dir, reg.join("records.saved")).unwrap();
        std::fs::write(&dir, "").unwrap();
        BrokenRecords(reg.to_owned())
    }

    fn repair(self) {
        std::fs::remove_file(self.0.join("iris/records")).unwrap();
        std::fs::rename(self.0.join("records.saved"), self.0.join("iris/records")).unwrap();
    }
}

#[test]
fn a_publish_stopped_before_the_gate_is_gated_by_the_rerun() {
    // train --publish.
    let reg = TestRegistry::new();
    assert_eq!(
        publish(&reg, &iris_csv(), &["--max-depth", "2"])
            .status
            .code(),
        Some(0)
    );
    let broken = BrokenRecords::new(reg.path());
    let out = publish(&reg, &iris_csv(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    broken.repair();
    assert!(reg.path().join("iris/versions/2/model.tsm").is_file());
    assert!(gate_record(reg.path(), 2).is_none());
    // The rerun gates version 2 (the same model) instead of publishing another.
    let out = publish(&reg, &iris_csv(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("PROMOTED: production -> version 2"));
    assert!(!reg.path().join("iris/versions/3").exists());
    assert_eq!(gate_record(reg.path(), 2).unwrap()["promoted"], true);

    // retrain --once: the file stays, and the rerun finishes the gate.
    let reg = TestRegistry::new();
    let work = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(iris_csv()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let start: Vec<&str> = [1, 51, 101]
        .iter()
        .flat_map(|&c| lines[c..c + 10].iter().copied())
        .collect();
    let start_csv = work.path().join("start.csv");
    std::fs::write(&start_csv, format!("{}\n{}\n", lines[0], start.join("\n"))).unwrap();
    reg.add_iris_dataset(&start_csv);
    let out = reg.train_iris_dataset(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let drop = work.path().join("drop");
    std::fs::create_dir(&drop).unwrap();
    std::fs::write(drop.join("all.csv"), &text).unwrap();
    let retrain = || {
        treeserve(&[
            "retrain",
            "--name",
            "iris",
            "--registry",
            reg.arg(),
            "--once",
            drop.to_str().unwrap(),
        ])
    };
    let broken = BrokenRecords::new(reg.path());
    assert_eq!(retrain().status.code(), Some(1));
    broken.repair();
    assert!(drop.join("all.csv").is_file());
    assert!(gate_record(reg.path(), 2).is_none());
    let out = retrain();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("no new rows"), "{text}");
    assert!(text.contains("gate: iris version 2"), "{text}");
    assert!(gate_record(reg.path(), 2).is_some());
    assert!(!reg.path().join("iris/versions/3").exists());
    assert!(drop.join("processed/all.csv").is_file());
}
