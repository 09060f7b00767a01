//! Regressors trained from a CSV, end to end through the real binary: `train --task
//! regression` through the gate, served over /score, V2 and `predict`, described by
//! /models, `models` and `report`; worse candidates, a change of task and a non-numeric
//! target are refused with reasons.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::*;

/// The known function behind the synthetic data.
fn truth(a: f64, b: f64, c: f64) -> f64 {
    3.0 * a.sin() + b * b / 4.0 - 2.0 * c
}

/// Deterministic pseudo-random values in [0, 1).
fn uniform(state: &mut u64) -> f64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

/// Writes `rows` rows of `a,b,c,y` with `y = target(a, b, c, noise)`.
fn write_csv(
    dir: &Path,
    name: &str,
    rows: usize,
    target: impl Fn(f64, f64, f64, f64) -> f64,
) -> PathBuf {
    let mut s = 17u64;
    let mut csv = String::from("a,b,c,y\n");
    for _ in 0..rows {
        let a = uniform(&mut s) * 6.0 - 3.0;
        let b = uniform(&mut s) * 4.0 - 2.0;
        let c = uniform(&mut s);
        let noise = (uniform(&mut s) - 0.5) * 0.2;
        csv.push_str(&format!("{a},{b},{c},{}\n", target(a, b, c, noise)));
    }
    let path = dir.join(name);
    std::fs::write(&path, csv).unwrap();
    path
}

/// `treeserve train --task regression` on `csv` published through the gate to `reg`.
fn train(reg: &TestRegistry, csv: &Path, name: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "train",
        "--task",
        "regression",
        "--data",
        csv.to_str().unwrap(),
        "--target",
        "y",
        "--id-column",
        "",
        "--name",
        name,
        "--publish",
        reg.arg(),
    ];
    args.extend_from_slice(extra);
    treeserve(&args)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn a_regressor_trains_passes_the_gate_serves_numbers_and_is_reported() {
    let reg = TestRegistry::new();
    let csv = write_csv(reg.path(), "reg.csv", 800, |a, b, c, n| truth(a, b, c) + n);
    let out = train(
        &reg,
        &csv,
        "reg",
        &["--algorithm", "random-forest", "--n-trees", "30"],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("regression of y") && stdout.contains("RMSE"),
        "{stdout}"
    );
    assert!(
        stderr.contains("[pass] R²") && stderr.contains("PROMOTED"),
        "{stderr}"
    );

    let app = App::spawn(reg.path(), &[]);
    // /score: numbers close to the function.
    for (a, b, c) in [(1.0, 0.5, 0.2), (-2.0, 1.5, 0.9), (0.3, -1.0, 0.5)] {
        let body = format!(r#"{{"a": {a}, "b": {b}, "c": {c}}}"#);
        let v: Value = app.post("/score", &body).await.json().await.unwrap();
        let got = v["output"]["predicted_y"].as_f64().expect("a number");
        assert!(
            (got - truth(a, b, c)).abs() < 0.8,
            "{a},{b},{c}: {got} vs {}",
            truth(a, b, c)
        );
    }
    // V2: an FP64 tensor named predict.
    let body = r#"{"inputs":[{"name":"input","shape":[2,3],"datatype":"FP64","data":[1,0.5,0.2,-2,1.5,0.9]}]}"#;
    let v: Value = app
        .post("/v2/models/reg/infer", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["outputs"][0]["name"], "predict", "{v}");
    assert_eq!(v["outputs"][0]["datatype"], "FP64", "{v}");
    let data = v["outputs"][0]["data"].as_array().unwrap();
    assert!(
        (data[0].as_f64().unwrap() - truth(1.0, 0.5, 0.2)).abs() < 0.8,
        "{v}"
    );
    // /models: task and held-out metrics.
    let info: Value = app.get("/models/reg").await.json().await.unwrap();
    assert_eq!(info["task"], "regression", "{info}");
    let r2 = info["regression_metrics"]["r2"].as_f64().unwrap();
    let rmse = info["regression_metrics"]["rmse"].as_f64().unwrap();
    assert!(r2 > 0.8 && rmse > 0.0 && rmse < 1.0, "{info}");
    assert_eq!(info["regression_metrics"]["rows"], 320, "{info}");

    // predict: one number per row.
    let input = reg.path().join("rows.csv");
    std::fs::write(&input, "a,b,c\n1,0.5,0.2\n-2,1.5,0.9\n").unwrap();
    let out = treeserve_ok(&[
        "predict",
        "--registry",
        reg.arg(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        "-",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "predicted_y", "{out}");
    let first: f64 = lines[1].parse().unwrap();
    assert!((first - truth(1.0, 0.5, 0.2)).abs() < 0.8, "{out}");
    assert_eq!(lines.len(), 3, "{out}");

    // A worse candidate (a stump on a wavy function) is refused on RMSE.
    let out = train(&reg, &csv, "reg", &["--max-depth", "1"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("[FAIL] RMSE") && stderr.contains("champion's"),
        "{stderr}"
    );
    assert!(stderr.contains("NOT PROMOTED"), "{stderr}");

    // A classifier cannot replace a regressor through the gate.
    let iris = iris_csv();
    let out = treeserve(&[
        "train",
        "--data",
        iris.to_str().unwrap(),
        "--name",
        "reg",
        "--publish",
        reg.arg(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("[FAIL] task: the candidate is a classifier"),
        "{stderr}"
    );

    // models: the regression metrics, in text and JSON; no NaN anywhere.
    let listing = treeserve_ok(&["models", "--registry", reg.arg()]);
    assert!(
        listing.contains("regressor: RMSE") && listing.contains("R²"),
        "{listing}"
    );
    assert!(!listing.contains("NaN"), "{listing}");
    let json: Value = serde_json::from_str(&treeserve_ok(&[
        "models",
        "--registry",
        reg.arg(),
        "--json",
    ]))
    .unwrap();
    let v1 = &json[0]["versions"][0];
    assert_eq!(v1["task"], "regression", "{json}");
    assert!(
        v1["regression_metrics"]["r2"].as_f64().unwrap() > 0.8,
        "{json}"
    );
    let compare = treeserve_ok(&["models", "reg", "--compare", "--registry", reg.arg()]);
    assert!(
        compare.contains("RMSE") && compare.contains("gate held-out RMSE"),
        "{compare}"
    );
    assert!(!compare.contains("NaN"), "{compare}");

    // The HTML report: an R² chart, the regression metrics and the gate's reasons.
    let html = reg.path().join("report.html");
    treeserve_ok(&[
        "report",
        "reg",
        "--registry",
        reg.arg(),
        "--out",
        html.to_str().unwrap(),
    ]);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("chart-r2") && page.contains("Regression metrics"),
        "{page}"
    );
    assert!(page.contains("RMSE") && page.contains("task: the candidate"));
    assert!(!page.contains("NaN"), "NaN in the report");
}

#[test]
fn a_regressor_no_better_than_the_mean_is_refused_and_a_text_target_is_named() {
    let reg = TestRegistry::new();
    // A target that is pure noise: an unpruned tree does worse than the mean.
    let csv = write_csv(reg.path(), "noise.csv", 600, |_, _, _, n| n);
    let out = train(&reg, &csv, "noise", &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("[FAIL] R²") && stderr.contains("predicting the mean"),
        "{stderr}"
    );

    // A target that is not a number: one line naming the line and the value.
    let bad = reg.path().join("bad.csv");
    std::fs::write(&bad, "a,y\n1,2.5\n2,3.5\n3,tall\n").unwrap();
    let out = train(&reg, &bad, "bad", &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("line 4") && stderr.contains("\"tall\" is not a number"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // Registry datasets hold class labels: a regressor trains from a file.
    let out = treeserve(&[
        "train",
        "--task",
        "regression",
        "--dataset",
        "anything",
        "--registry",
        reg.arg(),
    ]);
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("--data FILE.csv"),
        "{stderr}"
    );
}
