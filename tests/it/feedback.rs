//! Ground truth posted back (`--feedback-window`, `POST /feedback`): IRIS scored with
//! request ids, the true labels posted, the live accuracy read from `/metrics` equal to
//! what the answers and the labels say; duplicates, unknown and evicted ids, unknown
//! classes and missing rows counted and answered; bad bodies the usual JSON errors.

use serde_json::{Value, json};

use crate::common::*;

const FEATURES: [&str; 4] = [
    "SepalLengthCm",
    "SepalWidthCm",
    "PetalLengthCm",
    "PetalWidthCm",
];

/// The IRIS rows as `/score` objects, with their species.
pub(crate) fn iris_rows() -> Vec<(Value, String)> {
    let (_, rows) = read_csv(&iris_csv());
    rows.iter()
        .map(|r| {
            let obj: serde_json::Map<String, Value> = FEATURES
                .iter()
                .zip(&r[1..5])
                .map(|(f, v)| (f.to_string(), json!(v.parse::<f64>().unwrap())))
                .collect();
            (Value::Object(obj), r[5].clone())
        })
        .collect()
}

pub(crate) async fn score(app: &App, id: Option<&str>, body: &Value) -> (String, Value) {
    let mut req = app
        .client
        .post(app.url("/score"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(id) = id {
        req = req.header("x-request-id", id);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let echoed = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    (echoed, resp.json().await.unwrap())
}

pub(crate) async fn feedback(app: &App, path: &str, body: &Value) -> Value {
    let resp = app.post(path, &body.to_string()).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Posts every IRIS row's true species for the answers with ids `PREFIX0`..`PREFIX149`,
/// and checks that all joined.
pub(crate) async fn label_all(app: &App, prefix: &str) {
    let labels: Vec<Value> = iris_rows()
        .iter()
        .enumerate()
        .map(|(i, (_, s))| json!({"request_id": format!("{prefix}{i}"), "label": s}))
        .collect();
    assert_eq!(
        feedback(app, "/feedback", &Value::Array(labels)).await["joined"],
        150
    );
}

/// The value of the series `name{labels}` in a scrape.
pub(crate) fn series(metrics: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.parse().unwrap())
}

#[tokio::test]
async fn labels_join_their_answers_and_the_live_accuracy_is_what_they_say() {
    let reg = TestRegistry::with_iris();
    // A depth-1 stump: wrong on a third of IRIS, so the accuracy is not trivially 1.
    let stump = reg.train("stump.tsm", &["--max-depth", "1"]);
    assert_eq!(reg.publish(&stump, Some("production")), 2);
    let app = App::spawn(reg.path(), &["--feedback-window", "10000"]);
    let rows = iris_rows();
    let mut answers = Vec::new();
    for (i, (row, _)) in rows.iter().enumerate() {
        let id = format!("row-{i}");
        let (echoed, out) = score(&app, Some(&id), row).await;
        assert_eq!(echoed, id);
        answers.push(
            out["output"]["predicted_species"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // A batch, and an answer without a client id (one is generated and echoed).
    let batch = Value::Array(rows[..10].iter().map(|(r, _)| r.clone()).collect());
    let (_, batch_out) = score(&app, Some("batch-1"), &batch).await;
    assert_eq!(batch_out["output"].as_array().unwrap().len(), 10);
    let (generated, _) = score(&app, None, &rows[0].0).await;
    assert_eq!(generated.len(), 17, "{generated}");

    // Every label, in one post.
    let labels: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, (_, species))| json!({"request_id": format!("row-{i}"), "label": species}))
        .collect();
    let got = feedback(&app, "/feedback", &Value::Array(labels.clone())).await;
    assert_eq!(got["joined"], 150, "{got}");
    let right = answers
        .iter()
        .zip(&rows)
        .filter(|(a, (_, s))| *a == s)
        .count();
    assert!((1..150).contains(&right), "the stump got {right} right");

    // Again: duplicates. And each kind of label that does not join.
    let again = feedback(&app, "/feedback", &Value::Array(labels[..5].to_vec())).await;
    assert_eq!(again["duplicate"], 5);
    let odd = feedback(
        &app,
        "/feedback",
        &json!([
            {"request_id": "never-seen", "label": "Iris-setosa"},
            {"request_id": "batch-1", "label": "Iris-setosa"},
            {"request_id": "batch-1", "row": 10, "label": "Iris-setosa"},
            {"request_id": "batch-1", "row": 3, "label": "Iris-nonesuch"},
            {"request_id": "batch-1", "row": 3, "label": 2.5},
            {"request_id": "batch-1", "row": 3, "label": "Iris-setosa"},
            {"request_id": generated, "label": "Iris-setosa"},
        ]),
    )
    .await;
    assert_eq!(
        odd["outcomes"],
        json!([
            "unknown_id",
            "no_such_row",
            "no_such_row",
            "unknown_class",
            "wrong_kind",
            "joined",
            "joined"
        ])
    );
    // One label alone, by a named model; another model's path does not find it.
    let one = json!({"request_id": "batch-1", "row": 4, "label": "Iris-setosa"});
    assert_eq!(
        feedback(&app, "/models/iris/feedback", &one).await["joined"],
        1
    );
    assert_error(
        app.post("/models/nope/feedback", &one.to_string()).await,
        404,
        "model_not_found",
        "nope",
    )
    .await;

    // The live figures: what the answers and the labels say. Besides the 150, three
    // setosa labels joined: batch rows 3 and 4, and the generated id's answer (row 0).
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let mv = r#"model="iris",version="2""#;
    let labels_total = series(&metrics, "treeserve_live_labels_total", mv).unwrap();
    assert_eq!(labels_total, 153.0, "{metrics}");
    let batch_answers = batch_out["output"].as_array().unwrap();
    let extra_right = [0, 3, 4]
        .iter()
        .filter(|&&i| batch_answers[i]["predicted_species"] == "Iris-setosa")
        .count();
    let accuracy = series(&metrics, "treeserve_live_accuracy", mv).unwrap();
    let want = (right + extra_right) as f64 / labels_total;
    assert!((accuracy - want).abs() < 1e-12, "{accuracy} != {want}");
    let setosa_rows: Vec<usize> = (0..150).filter(|&i| rows[i].1 == "Iris-setosa").collect();
    let hits = setosa_rows
        .iter()
        .filter(|&&i| answers[i] == "Iris-setosa")
        .count();
    let recall = (hits + extra_right) as f64 / (setosa_rows.len() + 3) as f64;
    let class = format!(r#"class="Iris-setosa",{mv}"#);
    let setosa = series(&metrics, "treeserve_live_recall", &class);
    assert!(
        setosa.is_some_and(|r| (r - recall).abs() < 1e-12),
        "{setosa:?} != {recall}"
    );
    for (outcome, n) in [
        ("joined", 153),
        ("duplicate", 5),
        ("unknown_id", 1),
        ("no_such_row", 2),
    ] {
        let got = series(
            &metrics,
            "treeserve_feedback_labels_total",
            &format!(r#"outcome="{outcome}""#),
        );
        assert_eq!(got, Some(n as f64), "{outcome}");
    }
    assert!(
        // 150 rows, the batch, the answer with a generated id.
        metrics.contains("treeserve_feedback_remembered 152"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_record_is_bounded_and_bad_bodies_get_json_errors() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &["--feedback-window", "16"]);
    let row = &iris_rows()[0].0;
    for i in 0..200 {
        score(&app, Some(&format!("id-{i}")), row).await;
    }
    let got = feedback(
        &app,
        "/feedback",
        &json!([{"request_id": "id-0", "label": "Iris-setosa"}, {"request_id": "id-199", "label": "Iris-setosa"}]),
    )
    .await;
    assert_eq!(got["outcomes"], json!(["unknown_id", "joined"]));
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let remembered = metrics
        .lines()
        .find_map(|l| l.strip_prefix("treeserve_feedback_remembered "))
        .unwrap()
        .parse::<f64>()
        .unwrap();
    assert!(remembered <= 16.0, "{remembered}");

    assert_error(
        app.post("/feedback", "{").await,
        400,
        "malformed_json",
        "request_id",
    )
    .await;
    assert_error(
        app.post("/feedback", r#"{"id": 1}"#).await,
        400,
        "invalid_body",
        "request_id",
    )
    .await;
    assert_error(
        app.post("/feedback", r#"[{"request_id": "x"}]"#).await,
        400,
        "invalid_body",
        "label",
    )
    .await;
    assert_error(
        app.get("/feedback").await,
        405,
        "method_not_allowed",
        "POST",
    )
    .await;
}

#[tokio::test]
async fn without_a_window_feedback_is_off_and_says_how_to_turn_it_on() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    let one = json!({"request_id": "x", "label": "Iris-setosa"});
    assert_error(
        app.post("/feedback", &one.to_string()).await,
        404,
        "not_found",
        "--feedback-window",
    )
    .await;
    // No id generated for answers nobody can label.
    let resp = app.post("/score", VERSICOLOR).await;
    assert!(resp.headers().get("x-request-id").is_none());
}

/// Every file completed under `dir`, read as CSV: (header, rows).
fn feedback_files(dir: &std::path::Path) -> Vec<(Vec<String>, Vec<Vec<String>>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    paths.sort();
    paths.iter().map(|p| read_csv(p)).collect()
}

#[tokio::test]
async fn labelled_traffic_becomes_feedback_files_that_retrain_turns_into_a_gated_version() {
    // The champion was trained on five rows of each class.
    let reg = TestRegistry::new();
    let work = tempfile::tempdir().unwrap();
    let (header, all) = read_csv(&iris_csv());
    let start: Vec<String> = [0, 50, 100]
        .iter()
        .flat_map(|&c| all[c..c + 5].iter().map(|r| r.join(",")))
        .collect();
    let start_csv = work.path().join("start.csv");
    std::fs::write(
        &start_csv,
        format!("{}\n{}\n", header.join(","), start.join("\n")),
    )
    .unwrap();
    reg.add_iris_dataset(&start_csv);
    let out = reg.train_iris_dataset(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = work.path().join("feedback");
    let dir_arg = dir.to_str().unwrap();
    let app = App::spawn(
        reg.path(),
        &[
            "--feedback-window",
            "1000",
            "--feedback-dir",
            dir_arg,
            "--feedback-file-rows",
            "40",
            "--feedback-file-age",
            "300ms",
        ],
    );
    // All 150 rows answered with ids and labelled; 15 more rows labelled directly (new
    // measurements: the IRIS rows nudged), scored by the current version.
    let rows = iris_rows();
    for (i, (row, _)) in rows.iter().enumerate() {
        score(&app, Some(&format!("r{i}")), row).await;
    }
    label_all(&app, "r").await;
    let nudged: Vec<Value> = rows
        .iter()
        .step_by(10)
        .map(|(row, s)| {
            let features: serde_json::Map<String, Value> = row
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), json!(v.as_f64().unwrap() + 0.05)))
                .collect();
            json!({"features": features, "label": s})
        })
        .collect();
    let got = feedback(&app, "/models/iris/feedback", &Value::Array(nudged.clone())).await;
    assert_eq!(got["scored"], 15, "{got}");

    // 165 rows: four full files of 40, and 5 rows renamed in when the file is 300 ms old.
    let folder = dir.join("iris");
    wait_for(std::time::Duration::from_secs(20), || {
        let folder = folder.clone();
        async move {
            feedback_files(&folder)
                .iter()
                .map(|(_, r)| r.len())
                .sum::<usize>()
                == 165
        }
    })
    .await;
    let files = feedback_files(&folder);
    assert_eq!(files.len(), 5);
    let mut want_header: Vec<String> = FEATURES.iter().map(|f| f.to_string()).collect();
    want_header.push("Species".into());
    let mut written: Vec<String> = Vec::new();
    for (h, rows) in &files {
        assert_eq!(h, &want_header);
        written.extend(rows.iter().map(|r| r.join(",")));
    }
    // The joined rows are the IRIS rows (features, true species) in the order labelled.
    for (i, r) in all.iter().enumerate() {
        let want = r[1..].join(",");
        let got = &written[i];
        let same = got
            .split(',')
            .zip(want.split(','))
            .all(|(a, b)| a == b || a.parse::<f64>().ok() == b.parse::<f64>().ok());
        assert!(same, "row {i}: {got} != {want}");
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(
        series(
            &metrics,
            "treeserve_feedback_file_rows_total",
            r#"outcome="written""#
        ),
        Some(165.0)
    );
    assert_eq!(
        series(
            &metrics,
            "treeserve_feedback_labels_total",
            r#"outcome="scored""#
        ),
        Some(15.0)
    );
    assert!(
        metrics.contains("treeserve_feedback_files_total 5"),
        "{metrics}"
    );
    assert!(
        !std::fs::read_dir(&folder)
            .unwrap()
            .any(|e| { e.unwrap().file_name().to_string_lossy().ends_with(".part") })
    );

    // retrain --once on the folder: a new dataset version, trained, gated.
    let out = treeserve(&[
        "retrain",
        "--name",
        "iris",
        "--registry",
        reg.arg(),
        "--once",
        folder.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_dir(folder.join("processed"))
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|e| e == "csv"))
            .count(),
        5,
        "{stdout}"
    );
    let text = reg.models_json("iris").to_string();
    assert!(text.contains("\"version\":2"), "{text}");
    let data = treeserve_ok(&["data", "list", "iris", "--registry", reg.arg()]);
    assert!(data.contains("180"), "{data}");
}

#[tokio::test]
async fn labelled_rows_need_good_features_and_the_dir_needs_a_window() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &["--feedback-window", "10"]);
    let (row, species) = &iris_rows()[0];
    let mut bad = row.clone();
    bad.as_object_mut().unwrap().remove("PetalWidthCm");
    // A bad row fails the whole post: the good label before it is not counted.
    let body = json!([{"features": row, "label": species}, {"features": bad, "label": species}]);
    assert_error(
        app.post("/feedback", &body.to_string()).await,
        400,
        "missing_feature",
        "labelled row 1",
    )
    .await;
    let got = feedback(
        &app,
        "/feedback",
        &json!({"features": row, "label": species}),
    )
    .await;
    assert_eq!(got["outcomes"], json!(["scored"]));
    let got = feedback(
        &app,
        "/feedback",
        &json!({"features": row, "label": "Iris-nonesuch"}),
    )
    .await;
    assert_eq!(got["outcomes"], json!(["unknown_class"]));
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(
        series(
            &metrics,
            "treeserve_live_labels_total",
            r#"model="iris",version="1""#
        ),
        Some(1.0)
    );

    let out = treeserve(&["serve", "--registry", reg.arg(), "--feedback-dir", "/tmp/x"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--feedback-window"), "{err}");
    assert!(!err.contains("stack backtrace"), "{err}");
}

#[tokio::test]
async fn a_late_label_joins_with_its_delay_and_one_past_the_max_age_does_not() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(
        reg.path(),
        &["--feedback-window", "100", "--feedback-max-age", "1s"],
    );
    let (row, species) = &iris_rows()[0];
    let answered = std::time::Instant::now();
    score(&app, Some("late"), row).await;
    score(&app, Some("expired"), row).await;
    // The truth arrives later: the wait is the point of the test.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let got = feedback(
        &app,
        "/feedback",
        &json!({"request_id": "late", "label": species}),
    )
    .await;
    assert_eq!(got["outcomes"], json!(["joined"]));
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let mv = r#"model="iris",version="1""#;
    let delay = series(&metrics, "treeserve_live_label_delay_seconds_total", mv).unwrap();
    assert!(
        delay >= 0.3 && delay <= answered.elapsed().as_secs_f64(),
        "{delay}"
    );
    let live: Value = app.get("/models/iris/live").await.json().await.unwrap();
    assert!(
        live["live"][0]["mean_label_delay_seconds"]
            .as_f64()
            .unwrap()
            >= 0.3
    );
    // Past --feedback-max-age the answer cannot be labelled.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let got = feedback(
        &app,
        "/feedback",
        &json!({"request_id": "expired", "label": species}),
    )
    .await;
    assert_eq!(got["outcomes"], json!(["unknown_id"]));
}

#[tokio::test]
async fn answers_over_v2_invocations_and_kserve_v1_are_labelled_too() {
    let reg = TestRegistry::with_iris();
    // A depth-1 stump, so that some answers are wrong.
    let stump = reg.train("stump.tsm", &["--max-depth", "1"]);
    assert_eq!(reg.publish(&stump, Some("production")), 2);
    let app = App::spawn(reg.path(), &["--feedback-window", "10000"]);
    let rows = iris_rows();
    let numbers =
        |r: &Value| -> Vec<f64> { FEATURES.iter().map(|f| r[f].as_f64().unwrap()).collect() };
    // Rows 0, 50 and 100 (one of each species) in each protocol's form.
    let picked = [0, 50, 100];
    let data: Vec<f64> = picked.iter().flat_map(|&i| numbers(&rows[i].0)).collect();
    let lists: Vec<Vec<f64>> = picked.iter().map(|&i| numbers(&rows[i].0)).collect();
    let requests = [
        (
            "/v2/models/iris/infer",
            json!({"inputs": [{"name": "input", "shape": [3, 4], "datatype": "FP64", "data": data}]}),
        ),
        (
            "/invocations",
            json!({"dataframe_split": {"columns": FEATURES, "data": lists}}),
        ),
        ("/v1/models/iris:predict", json!({"instances": lists})),
    ];
    let mut labels = Vec::new();
    let mut predicted = Vec::new();
    for (path, body) in &requests {
        let resp = app.post(path, &body.to_string()).await;
        assert_eq!(resp.status(), 200, "{path}");
        let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        let out: Value = resp.json().await.unwrap();
        let answers = match *path {
            "/v2/models/iris/infer" => &out["outputs"][0]["data"],
            _ => &out["predictions"],
        };
        let answers: Vec<&str> = answers
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(answers.len(), 3, "{path}: {out}");
        for (row, &i) in picked.iter().enumerate() {
            labels.push(json!({"request_id": id, "row": row, "label": rows[i].1}));
            predicted.push(answers[row] == rows[i].1);
        }
    }
    let got = feedback(&app, "/feedback", &Value::Array(labels)).await;
    assert_eq!(got["joined"], 9, "{got}");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let mv = r#"model="iris",version="2""#;
    assert_eq!(
        series(&metrics, "treeserve_live_labels_total", mv),
        Some(9.0)
    );
    let right = predicted.iter().filter(|&&r| r).count() as f64;
    assert!((1.0..9.0).contains(&right), "the stump got {right} right");
    let accuracy = series(&metrics, "treeserve_live_accuracy", mv).unwrap();
    assert!((accuracy - right / 9.0).abs() < 1e-12, "{accuracy}");
}
