//! Models made by the real frameworks (XGBoost, LightGBM, scikit-learn through skl2onnx
//! and onnxmltools; `tests/import/make_fixtures.py`, run by `.ci/run` into
//! `target/import-fixtures`), imported with `treeserve import` and served: `/score`, V2 and
//! `predict` must give the framework's own outputs within 1e-6 relative.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::common::*;

/// `|ours - theirs| <= 1e-6 · max(|theirs|, 1e-3)`, the import's parity rule.
fn close(ours: f64, theirs: f64) -> bool {
    (ours - theirs).abs() <= 1e-6 * theirs.abs().max(1e-3)
}

struct Fixture {
    name: String,
    file: PathBuf,
    format: String,
    classification: bool,
    classes: Vec<String>,
    features: Vec<String>,
    target: String,
    reference: PathBuf,
    expected: PathBuf,
}

fn fixtures() -> Vec<Fixture> {
    let dir = fixtures_dir();
    let list: Vec<Value> =
        serde_json::from_slice(&std::fs::read(dir.join("fixtures.json")).unwrap()).unwrap();
    list.iter()
        .map(|f| {
            let s = |k: &str| {
                f[k].as_str()
                    .unwrap_or_else(|| panic!("{k} in {f}"))
                    .to_owned()
            };
            let strings = |k: &str| -> Vec<String> {
                f[k].as_array()
                    .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
                    .unwrap_or_default()
            };
            let name = s("name");
            Fixture {
                file: dir.join(s("file")),
                format: s("format"),
                classification: s("task") == "classification",
                classes: strings("classes"),
                features: strings("features"),
                target: s("target"),
                reference: dir.join(format!("{name}.reference.csv")),
                expected: dir.join(format!("{name}.expected.csv")),
                name,
            }
        })
        .collect()
}

/// Model names in the registry: fixture names may hold characters names may not.
fn model_name(f: &Fixture) -> String {
    f.name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect::<String>()
        .to_lowercase()
}

/// Expected outputs per row: the label (or value) and probabilities.
struct Expected {
    labels: Vec<String>,
    values: Vec<Vec<f64>>,
}

fn expected(f: &Fixture) -> Expected {
    let (header, rows) = read_csv(&f.expected);
    let key = format!("predicted_{}", f.target.to_lowercase());
    let k = header
        .iter()
        .position(|h| *h == key)
        .expect("predicted column");
    let cols: Vec<usize> = if f.classification {
        f.classes
            .iter()
            .map(|c| {
                header
                    .iter()
                    .position(|h| *h == format!("p_{c}"))
                    .expect("p_ column")
            })
            .collect()
    } else {
        vec![k]
    };
    Expected {
        labels: rows.iter().map(|r| r[k].clone()).collect(),
        values: rows
            .iter()
            .map(|r| cols.iter().map(|&c| r[c].parse().unwrap()).collect())
            .collect(),
    }
}

/// Largest absolute and relative differences, and the rows that differ.
#[derive(Default)]
struct Diff {
    max_abs: f64,
    max_rel: f64,
    bad: Vec<String>,
}

impl Diff {
    fn value(&mut self, row: usize, ours: f64, theirs: f64) {
        let abs = (ours - theirs).abs();
        self.max_abs = self.max_abs.max(abs);
        self.max_rel = self.max_rel.max(abs / theirs.abs().max(1e-3));
        if !close(ours, theirs) && self.bad.len() < 5 {
            self.bad
                .push(format!("row {row}: ours {ours:?}, theirs {theirs:?}"));
        }
    }

    fn label(
        &mut self,
        row: usize,
        ours: &str,
        theirs: &str,
        probabilities: &[f64],
        classes: &[String],
    ) {
        if ours == theirs {
            return;
        }
        let p = |l: &str| {
            classes
                .iter()
                .position(|c| c == l)
                .map(|i| probabilities[i])
        };
        let tie = matches!((p(ours), p(theirs)), (Some(a), Some(b)) if close(a, b));
        if !tie && self.bad.len() < 5 {
            self.bad
                .push(format!("row {row}: class {ours:?}, theirs {theirs:?}"));
        }
    }
}

fn reference_json(f: &Fixture) -> Vec<Value> {
    let (header, rows) = read_csv(&f.reference);
    let cols: Vec<usize> = f
        .features
        .iter()
        .map(|n| header.iter().position(|h| h == n).expect("feature column"))
        .collect();
    rows.iter()
        .map(|r| {
            let mut o = serde_json::Map::new();
            for (n, &c) in f.features.iter().zip(&cols) {
                let v = if r[c].is_empty() {
                    Value::Null
                } else {
                    json!(r[c].parse::<f64>().unwrap())
                };
                o.insert(n.clone(), v);
            }
            Value::Object(o)
        })
        .collect()
}

/// Fixtures treeserve refuses, and what the refusal must name: onnxmltools writes a
/// LightGBM binary classifier as a regressor followed by arithmetic nodes (Mul, Sigmoid, …),
/// which treeserve does not evaluate (import the LightGBM file itself instead).
const REFUSED: &[(&str, &str)] = &[("lgb_binary_onnx", "ai.onnx.Mul")];

/// Imports `f`; `false` when it is one of [`REFUSED`] (and was refused as it must be).
fn import(f: &Fixture, reg: &TestRegistry) -> bool {
    let mut args = vec![
        "import".to_string(),
        f.file.display().to_string(),
        "--name".into(),
        model_name(f),
        "--target".into(),
        f.target.clone(),
        "--reference".into(),
        f.reference.display().to_string(),
        "--expected".into(),
        f.expected.display().to_string(),
        "--publish".into(),
        reg.arg().into(),
        "--alias".into(),
        "production".into(),
    ];
    if f.format == "onnx" {
        args.extend(["--features".into(), f.features.join(",")]);
    }
    if f.classification {
        args.extend(["--classes".into(), f.classes.join(",")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    if let Some((_, names)) = REFUSED.iter().find(|(n, _)| *n == f.name) {
        let out = treeserve(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{} imports now: take it off REFUSED",
            f.name
        );
        assert!(err.contains(names) && err.lines().count() == 1, "{err}");
        return false;
    }
    treeserve_ok(&args);
    true
}

#[tokio::test]
async fn framework_models_answer_like_their_framework_over_every_protocol() {
    let all = fixtures();
    for (format, task) in [
        ("xgboost", true),
        ("xgboost", false),
        ("lightgbm", true),
        ("lightgbm", false),
        ("onnx", true),
        ("onnx", false),
    ] {
        assert!(
            all.iter()
                .any(|f| f.format == format && f.classification == task),
            "no {format} {} fixture",
            if task { "classifier" } else { "regressor" }
        );
    }
    let reg = TestRegistry::new();
    let all: Vec<Fixture> = all.into_iter().filter(|f| import(f, &reg)).collect();
    let app = App::spawn(reg.path(), &[]);
    let mut report = vec![
        "| fixture | rows | /score max abs | max rel | V2 max rel | predict max rel |".to_string(),
        "|---|---|---|---|---|---|".into(),
    ];
    let mut failures = Vec::new();
    for f in &all {
        let name = model_name(f);
        let want = expected(f);
        let rows = reference_json(f);
        // /score, the whole reference as one batch, with probabilities.
        let resp = app
            .post(
                &format!("/models/{name}/score?probabilities=true"),
                &Value::Array(rows.clone()).to_string(),
            )
            .await;
        assert_eq!(resp.status(), 200, "{name}");
        let v: Value = resp.json().await.unwrap();
        let out = v["output"].as_array().unwrap();
        let key = format!("predicted_{}", f.target.to_lowercase());
        let mut score = Diff::default();
        for (i, o) in out.iter().enumerate() {
            if f.classification {
                let p: Vec<f64> = f
                    .classes
                    .iter()
                    .map(|c| o["probabilities"][c].as_f64().unwrap())
                    .collect();
                for (a, b) in p.iter().zip(&want.values[i]) {
                    score.value(i, *a, *b);
                }
                score.label(
                    i,
                    o[&key].as_str().unwrap(),
                    &want.labels[i],
                    &want.values[i],
                    &f.classes,
                );
            } else {
                score.value(i, o[&key].as_f64().unwrap(), want.values[i][0]);
            }
        }
        // V2: FP64 rows (null = missing).
        let data: Vec<Value> = rows
            .iter()
            .flat_map(|r| f.features.iter().map(|n| r[n].clone()).collect::<Vec<_>>())
            .collect();
        let body = json!({"inputs": [{"name": "input", "shape": [rows.len(), f.features.len()], "datatype": "FP64", "data": data}]});
        let resp = app
            .post(&format!("/v2/models/{name}/infer"), &body.to_string())
            .await;
        assert_eq!(resp.status(), 200, "{name} V2");
        let v: Value = resp.json().await.unwrap();
        let mut v2 = Diff::default();
        for o in v["outputs"].as_array().unwrap() {
            match o["name"].as_str().unwrap() {
                "predict" => {
                    for (i, x) in o["data"].as_array().unwrap().iter().enumerate() {
                        v2.value(i, x.as_f64().unwrap(), want.values[i][0]);
                    }
                }
                "probabilities" => {
                    // FP32 on the wire: compared as f32.
                    let k = f.classes.len();
                    for (j, x) in o["data"].as_array().unwrap().iter().enumerate() {
                        let theirs = want.values[j / k][j % k] as f32 as f64;
                        v2.value(j / k, x.as_f64().unwrap() as f32 as f64, theirs);
                    }
                }
                "label" => {
                    for (i, l) in o["data"].as_array().unwrap().iter().enumerate() {
                        v2.label(
                            i,
                            l.as_str().unwrap(),
                            &want.labels[i],
                            &want.values[i],
                            &f.classes,
                        );
                    }
                }
                other => panic!("{name}: output {other}"),
            }
        }
        // predict: the reference CSV as it is (empty cells are missing values).
        let out_csv = reg.path().join(format!("{name}.predicted.csv"));
        treeserve_ok(&[
            "predict",
            "--registry",
            reg.arg(),
            "--model",
            &name,
            "--input",
            f.reference.to_str().unwrap(),
            "--output",
            out_csv.to_str().unwrap(),
            "--probabilities",
        ]);
        let (header, got) = read_csv(&out_csv);
        let mut predict = Diff::default();
        for (i, r) in got.iter().enumerate() {
            if f.classification {
                for (c, label) in f.classes.iter().enumerate() {
                    let col = header
                        .iter()
                        .position(|h| *h == format!("p_{label}"))
                        .unwrap();
                    predict.value(i, r[col].parse().unwrap(), want.values[i][c]);
                }
                predict.label(i, &r[0], &want.labels[i], &want.values[i], &f.classes);
            } else {
                predict.value(i, r[0].parse().unwrap(), want.values[i][0]);
            }
        }
        assert_eq!(got.len(), want.labels.len(), "{name}: predict rows");
        for (what, d) in [("/score", &score), ("V2", &v2), ("predict", &predict)] {
            if !d.bad.is_empty() {
                failures.push(format!("{name} {what}: {}", d.bad.join("; ")));
            }
        }
        report.push(format!(
            "| {name} | {} | {:.3e} | {:.3e} | {:.3e} | {:.3e} |",
            rows.len(),
            score.max_abs,
            score.max_rel,
            v2.max_rel,
            predict.max_rel
        ));
    }
    // The release smoke test: every model's golden rows (NaN features are nulls) over
    // /score and V2.
    let smoke = treeserve(&["smoke", &app.url("")]);
    assert!(
        smoke.status.success(),
        "{}{}",
        String::from_utf8_lossy(&smoke.stdout),
        String::from_utf8_lossy(&smoke.stderr)
    );
    let table = report.join("\n");
    eprintln!("{table}");
    let _ = std::fs::write(repo().join("target/import-parity.md"), &table);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
