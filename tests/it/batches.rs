//! Large batches (predicted in blocks, split over the cores) answer exactly as the same
//! rows sent one by one: `/score`, V2 and `treeserve predict`, with imported models made
//! by the real frameworks (wide evaluator) and the IRIS tree; a bad row still gets its
//! clear error.

use serde_json::{Value, json};

use crate::common::*;

/// Rows of each large batch: several thousand, all different.
const ROWS: usize = 4000;

/// A served model and the rows sent to it.
struct Case {
    name: String,
    features: Vec<String>,
    /// Class labels (empty: a regressor).
    classes: Vec<String>,
    key: String,
    rows: Vec<Vec<f64>>,
    /// The framework's outputs on the first rows (the fixture's reference rows).
    framework: Vec<Vec<f64>>,
}

/// `given` rows, then rows whose every value comes from another random given row, up to
/// [`ROWS`]: all different, in the data's ranges.
fn rows_from(given: Vec<Vec<f64>>, seed: u64) -> Vec<Vec<f64>> {
    let mut state = seed;
    let mut next = move |n: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) % n as u64) as usize
    };
    let f = given[0].len();
    let mut rows = given.clone();
    let mut seen: std::collections::HashSet<Vec<u64>> = rows
        .iter()
        .map(|r| r.iter().map(|v| v.to_bits()).collect())
        .collect();
    while rows.len() < ROWS {
        let row: Vec<f64> = (0..f).map(|j| given[next(given.len())][j]).collect();
        if seen.insert(row.iter().map(|v| v.to_bits()).collect()) {
            rows.push(row);
        }
    }
    rows
}

/// Imports the framework fixture `fixture` with `treeserve import` into `reg`.
fn import(reg: &TestRegistry, fixture: &str) -> Case {
    let dir = fixtures_dir();
    let list: Vec<Value> =
        serde_json::from_slice(&std::fs::read(dir.join("fixtures.json")).unwrap()).unwrap();
    let f = list
        .iter()
        .find(|f| f["name"] == fixture)
        .unwrap_or_else(|| panic!("no fixture {fixture}"));
    let strings = |k: &str| -> Vec<String> {
        f[k].as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    let (features, classes) = (strings("features"), strings("classes"));
    let target = f["target"].as_str().unwrap().to_owned();
    assert!(
        f["trees"].as_u64().unwrap() >= 32,
        "{fixture}: the wide evaluator"
    );
    let name = fixture.replace('_', "-");
    let reference = dir.join(format!("{fixture}.reference.csv"));
    let expected = dir.join(format!("{fixture}.expected.csv"));
    let file = dir.join(f["file"].as_str().unwrap());
    let mut args = vec![
        "import".to_string(),
        file.display().to_string(),
        "--name".into(),
        name.clone(),
        "--target".into(),
        target.clone(),
        "--reference".into(),
        reference.display().to_string(),
        "--expected".into(),
        expected.display().to_string(),
        "--publish".into(),
        reg.arg().into(),
        "--alias".into(),
        "production".into(),
    ];
    if !classes.is_empty() {
        args.extend(["--classes".into(), classes.join(",")]);
    }
    treeserve_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (header, given) = read_csv(&reference);
    let cols: Vec<usize> = features
        .iter()
        .map(|n| header.iter().position(|h| h == n).unwrap())
        .collect();
    let given: Vec<Vec<f64>> = given
        .iter()
        .map(|r| cols.iter().map(|&c| r[c].parse().unwrap()).collect())
        .collect();
    let (header, want) = read_csv(&expected);
    let key = format!("predicted_{}", target.to_lowercase());
    let out_cols: Vec<usize> = if classes.is_empty() {
        vec![header.iter().position(|h| *h == key).unwrap()]
    } else {
        classes
            .iter()
            .map(|c| header.iter().position(|h| *h == format!("p_{c}")).unwrap())
            .collect()
    };
    let framework = want
        .iter()
        .map(|r| out_cols.iter().map(|&c| r[c].parse().unwrap()).collect())
        .collect();
    Case {
        name,
        features,
        classes,
        key,
        rows: rows_from(given, 21),
        framework,
    }
}

fn iris(reg: &TestRegistry) -> Case {
    let artifact = reg.train("iris.tsm", &[]);
    reg.publish(&artifact, Some("production"));
    let (header, rows) = read_csv(&iris_csv());
    let features: Vec<String> = header[1..5].to_vec();
    let given = rows
        .iter()
        .map(|r| r[1..5].iter().map(|v| v.parse().unwrap()).collect())
        .collect();
    Case {
        name: "iris".into(),
        features,
        classes: vec![
            "Iris-setosa".into(),
            "Iris-versicolor".into(),
            "Iris-virginica".into(),
        ],
        key: "predicted_species".into(),
        rows: rows_from(given, 5),
        framework: Vec::new(),
    }
}

fn object(c: &Case, row: &[f64]) -> Value {
    Value::Object(
        c.features
            .iter()
            .zip(row)
            .map(|(n, v)| (n.clone(), json!(v)))
            .collect(),
    )
}

/// One answer: the label (`None` for a regressor) and the scores.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    label: Option<String>,
    scores: Vec<f64>,
}

fn answer(c: &Case, o: &Value) -> Answer {
    if c.classes.is_empty() {
        return Answer {
            label: None,
            scores: vec![o[&c.key].as_f64().unwrap()],
        };
    }
    Answer {
        label: Some(o[&c.key].as_str().unwrap().to_owned()),
        scores: c
            .classes
            .iter()
            .map(|l| o["probabilities"][l].as_f64().unwrap())
            .collect(),
    }
}

async fn post_json(app: &App, path: &str, body: &Value) -> Value {
    let resp = app.post(path, &body.to_string()).await;
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

/// Every row's answer, one `/score` request per row.
async fn one_by_one(app: &App, c: &Case) -> Vec<Answer> {
    let path = format!("/models/{}/score?probabilities=true", c.name);
    let mut out = Vec::with_capacity(c.rows.len());
    for row in &c.rows {
        let v = post_json(app, &path, &object(c, row)).await;
        out.push(answer(c, &v["output"]));
    }
    out
}

/// The large `/score` batch, V2 batch and `predict` CSV answer as `single`, exactly.
async fn check_batches(app: &App, reg: &TestRegistry, c: &Case, single: &[Answer]) {
    let name = &c.name;
    let batch = Value::Array(c.rows.iter().map(|r| object(c, r)).collect());
    // /score, with probabilities and (classifiers) without.
    let v = post_json(
        app,
        &format!("/models/{name}/score?probabilities=true"),
        &batch,
    )
    .await;
    let out = v["output"].as_array().unwrap();
    assert_eq!(out.len(), c.rows.len());
    for (i, o) in out.iter().enumerate() {
        assert_eq!(answer(c, o), single[i], "{name} /score row {i}");
    }
    if !c.classes.is_empty() {
        let v = post_json(app, &format!("/models/{name}/score"), &batch).await;
        for (i, o) in v["output"].as_array().unwrap().iter().enumerate() {
            assert_eq!(
                o[&c.key].as_str(),
                single[i].label.as_deref(),
                "{name} row {i}"
            );
        }
    }
    // V2: FP64 rows; probabilities are FP32 on the wire.
    let data: Vec<f64> = c.rows.iter().flatten().copied().collect();
    let body = json!({"inputs": [{"name": "input", "shape": [c.rows.len(), c.features.len()], "datatype": "FP64", "data": data}]});
    let v = post_json(app, &format!("/v2/models/{name}/infer"), &body).await;
    let k = c.classes.len();
    for o in v["outputs"].as_array().unwrap() {
        let data = o["data"].as_array().unwrap();
        match o["name"].as_str().unwrap() {
            "predict" => {
                for (i, x) in data.iter().enumerate() {
                    assert_eq!(
                        x.as_f64().unwrap(),
                        single[i].scores[0],
                        "{name} V2 row {i}"
                    );
                }
            }
            "probabilities" => {
                assert_eq!(data.len(), c.rows.len() * k);
                for (j, x) in data.iter().enumerate() {
                    let want = single[j / k].scores[j % k] as f32;
                    assert_eq!(x.as_f64().unwrap() as f32, want, "{name} V2 row {}", j / k);
                }
            }
            "label" => {
                assert_eq!(data.len(), c.rows.len());
                for (i, l) in data.iter().enumerate() {
                    assert_eq!(l.as_str(), single[i].label.as_deref(), "{name} V2 row {i}");
                }
            }
            other => panic!("{name}: output {other}"),
        }
    }
    // predict: the rows as a CSV with an Id column.
    let input = reg.path().join(format!("{name}.csv"));
    let mut text = format!("Id,{}\n", c.features.join(","));
    for (i, r) in c.rows.iter().enumerate() {
        let cells: Vec<String> = r.iter().map(|v| v.to_string()).collect();
        text.push_str(&format!("{i},{}\n", cells.join(",")));
    }
    std::fs::write(&input, text).unwrap();
    let output = reg.path().join(format!("{name}.out.csv"));
    let mut args = vec![
        "predict",
        "--registry",
        reg.arg(),
        "--model",
        name,
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--chunk-rows",
        "1000",
    ];
    if !c.classes.is_empty() {
        args.push("--probabilities");
    }
    treeserve_ok(&args);
    // The scalar walk of the same groups (the vector walk turned off), the vector walk
    // fetching nodes by gathers and by loads, and the walks of CPUs without AVX-512 (AVX2),
    // write the same bytes.
    for walk in ["off", "gather", "loads", "avx2"] {
        let other = reg.path().join(format!("{name}.{walk}.csv"));
        let mut set = args.clone();
        let at = set.iter().position(|a| *a == "--output").unwrap() + 1;
        set[at] = other.to_str().unwrap();
        treeserve_ok_env(&set, &[("TREESERVE_VECTOR_WALK", walk)]);
        assert!(
            std::fs::read(&other).unwrap() == std::fs::read(&output).unwrap(),
            "{name}: predict with TREESERVE_VECTOR_WALK={walk}"
        );
    }
    let (header, got) = read_csv(&output);
    assert_eq!(header[0], "Id");
    assert_eq!(got.len(), c.rows.len(), "{name}: predict rows");
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r[0], i.to_string());
        let scores: Vec<f64> = if c.classes.is_empty() {
            vec![r[1].parse().unwrap()]
        } else {
            assert_eq!(
                Some(&r[1]),
                single[i].label.as_ref(),
                "{name} predict row {i}"
            );
            r[2..].iter().map(|v| v.parse().unwrap()).collect()
        };
        assert_eq!(scores, single[i].scores, "{name} predict row {i}");
    }
}

#[tokio::test]
async fn large_batches_answer_exactly_as_the_rows_one_by_one_and_as_the_framework() {
    let reg = TestRegistry::new();
    // lgb_categorical: category splits, grouped and (with the vector walk off, or on CPUs
    // without AVX-512) walked as keys.
    let cases = [
        import(&reg, "lgb_multiclass"),
        import(&reg, "lgb_categorical"),
        import(&reg, "xgb_regression_500"),
        iris(&reg),
    ];
    let app = App::spawn(reg.path(), &["--max-body-bytes", "16777216"]);
    for c in &cases {
        assert!(c.rows.len() == ROWS && c.rows.len() > c.framework.len());
        let single = one_by_one(&app, c).await;
        // The one-row answers are the framework's (the import's parity rule).
        for (i, (ours, theirs)) in single.iter().zip(&c.framework).enumerate() {
            for (a, b) in ours.scores.iter().zip(theirs) {
                assert!(
                    (a - b).abs() <= 1e-6 * b.abs().max(1e-3),
                    "{} row {i}: ours {a}, the framework's {b}",
                    c.name
                );
            }
        }
        check_batches(&app, &reg, c, &single).await;
    }
}

#[tokio::test]
async fn a_bad_row_in_a_large_batch_gets_its_clear_error() {
    let reg = TestRegistry::new();
    let c = import(&reg, "xgb_regression_500");
    let app = App::spawn(reg.path(), &["--max-body-bytes", "16777216"]);
    let bad = ROWS - 7;
    // /score: a row without a feature, a value that is not a number.
    let mut rows: Vec<Value> = c.rows.iter().map(|r| object(&c, r)).collect();
    rows[bad].as_object_mut().unwrap().remove(&c.features[2]);
    let resp = app
        .post(
            &format!("/models/{}/score", c.name),
            &Value::Array(rows).to_string(),
        )
        .await;
    assert_error(resp, 400, "missing_feature", &format!("row {bad}")).await;
    let mut rows: Vec<Value> = c.rows.iter().map(|r| object(&c, r)).collect();
    rows[bad][&c.features[1]] = json!("abc");
    let resp = app
        .post(
            &format!("/models/{}/score", c.name),
            &Value::Array(rows).to_string(),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    let msg = v["error"].as_str().unwrap();
    assert!(msg.contains(&format!("row {bad}")), "{msg}");
    // The same bad row alone in a two-row batch gets the same error, but for its index.
    let two = json!([object(&c, &c.rows[0]), rows_with(&c, bad)]);
    let resp = app
        .post(&format!("/models/{}/score", c.name), &two.to_string())
        .await;
    let small: Value = resp.json().await.unwrap();
    assert_eq!(small["error_type"], v["error_type"]);
    assert_eq!(
        small["error"]
            .as_str()
            .unwrap()
            .replace("row 1", &format!("row {bad}")),
        msg
    );
    // V2: a value that is not a number.
    let mut data: Vec<Value> = c.rows.iter().flatten().map(|v| json!(v)).collect();
    data[bad * c.features.len() + 1] = json!("abc");
    let body = json!({"inputs": [{"name": "input", "shape": [c.rows.len(), c.features.len()], "datatype": "FP64", "data": data}]});
    let resp = app
        .post(&format!("/v2/models/{}/infer", c.name), &body.to_string())
        .await;
    assert_error(
        resp,
        400,
        "invalid_body",
        "data must be numbers, or arrays of numbers: invalid type: string \"abc\"",
    )
    .await;
    // predict: a cell that is not a number, one line naming its line and column.
    let input = reg.path().join("bad.csv");
    let mut text = format!("{}\n", c.features.join(","));
    for (i, r) in c.rows.iter().enumerate() {
        let mut cells: Vec<String> = r.iter().map(|v| v.to_string()).collect();
        if i == bad {
            cells[1] = "abc".into();
        }
        text.push_str(&cells.join(","));
        text.push('\n');
    }
    std::fs::write(&input, text).unwrap();
    let out = treeserve(&[
        "predict",
        "--registry",
        reg.arg(),
        "--model",
        &c.name,
        "--input",
        input.to_str().unwrap(),
        "--output",
        reg.path().join("bad.out.csv").to_str().unwrap(),
        "--chunk-rows",
        "500",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "line {}, column {:?}: \"abc\" is not a finite number",
        bad + 2,
        c.features[1]
    );
    assert!(
        err.contains(&want) && err.trim().lines().count() == 1,
        "{err}"
    );
}

/// The row `i` of `c` with its second feature `"abc"`.
fn rows_with(c: &Case, i: usize) -> Value {
    let mut o = object(c, &c.rows[i]);
    o[&c.features[1]] = json!("abc");
    o
}

#[tokio::test]
async fn one_row_of_a_large_model_is_scored_inline_and_a_large_batch_is_not() {
    let reg = TestRegistry::new();
    let c = import(&reg, "xgb_regression_500");
    // No blocking thread at all: what is scored inline is served, the rest refused.
    let app = App::spawn(reg.path(), &["--max-blocking-requests", "0"]);
    let path = format!("/models/{}/score", c.name);
    for row in c.rows.iter().take(20) {
        // Pretty-printed, as some clients send it: still one row.
        let body = serde_json::to_string_pretty(&object(&c, row)).unwrap();
        assert_eq!(app.post(&path, &body).await.status(), 200, "{body}");
    }
    let batch = Value::Array(c.rows[..100].iter().map(|r| object(&c, r)).collect());
    let resp = app.post(&path, &batch.to_string()).await;
    assert_eq!(
        resp.status(),
        503,
        "100 rows × 500 trees: a blocking thread's work"
    );
}
