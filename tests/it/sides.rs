//! Shadow and canary versions (`--shadow ALIAS`, `--canary ALIAS=PERCENT`): a shadow that
//! disagrees on known rows shows the agreement the rows say, and its live accuracy from
//! the same labels; a full queue drops and counts, the answer unchanged; a canary answers
//! its share of 10,000 requests, sticky per key.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;
use crate::feedback::{feedback, iris_rows, label_all, score, series};

/// The IRIS tree as version 1 (`production`), a depth-1 stump as version 2 (`staging`).
fn tree_and_stump() -> TestRegistry {
    let reg = TestRegistry::with_iris();
    let stump = reg.train("stump.tsm", &["--max-depth", "1"]);
    assert_eq!(reg.publish(&stump, Some("staging")), 2);
    reg
}

/// Version `version`'s class for every IRIS row, by V2 on the pinned version.
async fn classes_of(app: &App, version: u64) -> Vec<String> {
    let rows = iris_rows();
    let data: Vec<f64> = rows
        .iter()
        .flat_map(|(r, _)| {
            [
                "SepalLengthCm",
                "SepalWidthCm",
                "PetalLengthCm",
                "PetalWidthCm",
            ]
            .map(|f| r[f].as_f64().unwrap())
        })
        .collect();
    let body = json!({"inputs": [{"name": "input-0", "shape": [150, 4], "datatype": "FP64", "data": data}]});
    let resp = app
        .post(
            &format!("/v2/models/iris/versions/{version}/infer"),
            &body.to_string(),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let out: Value = resp.json().await.unwrap();
    out["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

async fn scrape(app: &App) -> String {
    app.get("/metrics").await.text().await.unwrap()
}

/// Sum of every series of `name` whose labels contain `part`.
fn total(metrics: &str, name: &str, part: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(part))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[tokio::test]
async fn a_shadow_that_disagrees_shows_the_agreement_and_its_own_live_accuracy() {
    let reg = tree_and_stump();
    let app = App::spawn(
        reg.path(),
        &["--shadow", "staging", "--feedback-window", "1000"],
    );
    let rows = iris_rows();
    let mut production = Vec::new();
    for (row, _) in &rows {
        let resp = app.post("/score", &row.to_string()).await;
        assert_eq!(
            resp.headers()["x-model-version"],
            "1",
            "the shadow never answers"
        );
        let out: Value = resp.json().await.unwrap();
        production.push(
            out["output"]["predicted_species"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // Ids for the labels: the same rows again, with ids (300 shadowed in all).
    for (i, (row, _)) in rows.iter().enumerate() {
        score(&app, Some(&format!("r{i}")), row).await;
    }
    let stump = classes_of(&app, 2).await;
    assert_eq!(classes_of(&app, 1).await, production);
    wait_for(Duration::from_secs(20), || async {
        total(&scrape(&app).await, "treeserve_shadow_rows_total", "") == 300.0
    })
    .await;
    let metrics = scrape(&app).await;
    let pair = r#"model="iris",version="1",shadow_version="2""#;
    let agreed = production
        .iter()
        .zip(&stump)
        .filter(|(p, s)| p == s)
        .count();
    assert!((1..150).contains(&agreed), "the stump agrees on {agreed}");
    let agreement = series(&metrics, "treeserve_shadow_agreement", pair).unwrap();
    assert!(
        (agreement - agreed as f64 / 150.0).abs() < 1e-12,
        "{agreement}"
    );
    for class in ["Iris-setosa", "Iris-versicolor", "Iris-virginica"] {
        let labels = format!(r#"class="{class}",{pair}"#);
        let of: Vec<_> = production
            .iter()
            .zip(&stump)
            .filter(|(p, _)| *p == class)
            .collect();
        let same = of.iter().filter(|(p, s)| p == s).count();
        assert_eq!(
            series(&metrics, "treeserve_shadow_rows_total", &labels),
            Some(2.0 * of.len() as f64),
            "{class}"
        );
        assert_eq!(
            series(&metrics, "treeserve_shadow_agreed_rows_total", &labels),
            Some(2.0 * same as f64),
            "{class}"
        );
    }
    assert!(metrics.contains("treeserve_shadow_dropped_requests_total 0"));

    // The labels join both versions' answers: the shadow's live accuracy is the stump's.
    label_all(&app, "r").await;
    let metrics = scrape(&app).await;
    let right = stump
        .iter()
        .zip(&rows)
        .filter(|(s, (_, t))| *s == t)
        .count();
    let v2 = r#"model="iris",version="2""#;
    assert_eq!(
        series(&metrics, "treeserve_live_labels_total", v2),
        Some(150.0)
    );
    let live = series(&metrics, "treeserve_live_accuracy", v2).unwrap();
    assert!(
        (live - right as f64 / 150.0).abs() < 1e-12,
        "{live} vs {right}/150"
    );
}

#[tokio::test]
async fn a_full_shadow_queue_drops_and_counts_and_the_answer_is_unchanged() {
    let reg = tree_and_stump();
    let app = App::spawn(
        reg.path(),
        &["--shadow", "staging", "--shadow-queue-rows", "100"],
    );
    let rows = iris_rows();
    let batch = Value::Array(rows.iter().map(|(r, _)| r.clone()).collect());
    let resp = app.post("/score", &batch.to_string()).await;
    assert_eq!(resp.status(), 200);
    let out: Value = resp.json().await.unwrap();
    let answered: Vec<&str> = out["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["predicted_species"].as_str().unwrap())
        .collect();
    assert_eq!(answered, classes_of(&app, 1).await);
    // 150 rows do not fit a queue of 100: not shadowed, counted. Fifty rows do.
    let fifty = Value::Array(rows[..50].iter().map(|(r, _)| r.clone()).collect());
    assert_eq!(app.post("/score", &fifty.to_string()).await.status(), 200);
    wait_for(Duration::from_secs(20), || async {
        total(&scrape(&app).await, "treeserve_shadow_rows_total", "") == 50.0
    })
    .await;
    let metrics = scrape(&app).await;
    assert!(
        metrics.contains("treeserve_shadow_dropped_requests_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_canary_answers_its_share_sticky_per_key_and_is_labelled_apart() {
    let reg = tree_and_stump();
    let app = App::spawn(
        reg.path(),
        &[
            "--canary",
            "staging=20",
            "--canary-key",
            "x-user",
            "--feedback-window",
            "20000",
        ],
    );
    let row = iris_rows()[60].0.to_string();
    let mut canary = 0;
    for _ in 0..10_000 {
        let resp = app.post("/score", &row).await;
        assert_eq!(resp.status(), 200);
        canary += usize::from(resp.headers()["x-model-version"] == "2");
    }
    // 20% of 10,000: 2,000, standard deviation 40.
    assert!((1_800..=2_200).contains(&canary), "{canary} of 10,000");

    // By key: one user always gets one version; 20% of 500 users get the canary.
    let mut users_on_canary = 0;
    for u in 0..500 {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let resp = app
                .client
                .post(app.url("/score"))
                .header("content-type", "application/json")
                .header("x-user", format!("user-{u}"))
                .body(row.clone())
                .send()
                .await
                .unwrap();
            seen.push(
                resp.headers()["x-model-version"]
                    .to_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        assert!(seen.iter().all(|v| *v == seen[0]), "user-{u}: {seen:?}");
        users_on_canary += usize::from(seen[0] == "2");
    }
    // 100 of 500, standard deviation 9.
    assert!(
        (60..=140).contains(&users_on_canary),
        "{users_on_canary} of 500"
    );

    // Labels of the answers count for the version that gave each.
    let mut by_version = [0usize; 3];
    for i in 0..200 {
        let id = format!("c{i}");
        let resp = app
            .client
            .post(app.url("/score"))
            .header("content-type", "application/json")
            .header("x-request-id", &id)
            .body(row.clone())
            .send()
            .await
            .unwrap();
        let v: usize = resp.headers()["x-model-version"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        by_version[v] += 1;
    }
    let labels: Vec<Value> = (0..200)
        .map(|i| json!({"request_id": format!("c{i}"), "label": "Iris-versicolor"}))
        .collect();
    assert_eq!(
        feedback(&app, "/feedback", &Value::Array(labels)).await["joined"],
        200
    );
    let metrics = scrape(&app).await;
    for v in [1, 2] {
        let got = series(
            &metrics,
            "treeserve_live_labels_total",
            &format!(r#"model="iris",version="{v}""#),
        )
        .unwrap_or(0.0);
        assert_eq!(got, by_version[v] as f64, "version {v}");
    }
}

#[test]
fn a_bad_canary_split_is_refused_with_how_to_write_it() {
    let reg = TestRegistry::with_iris();
    let out = treeserve(&["serve", "--registry", reg.arg(), "--canary", "staging"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ALIAS=PERCENT"), "{err}");
}

/// Scores every IRIS row with an id and labels it, once `shadowed` rows in all have been
/// shadow-scored.
async fn score_and_label(app: &App, shadowed: f64) {
    let rows = iris_rows();
    for (i, (row, _)) in rows.iter().enumerate() {
        score(app, Some(&format!("p{i}")), row).await;
    }
    wait_for(Duration::from_secs(20), || async {
        total(&scrape(app).await, "treeserve_shadow_rows_total", "") == shadowed
    })
    .await;
    label_all(app, "p").await;
}

fn production_alias(reg: &TestRegistry) -> u64 {
    let listing = reg.models_json("iris");
    listing[0]["aliases"]["production"]["version"]
        .as_u64()
        .unwrap_or_else(|| panic!("no production alias in {listing}"))
}

#[tokio::test]
async fn promote_from_live_moves_production_only_to_a_version_as_good_on_live_labels() {
    // Production: the full tree (v1); staging: the stump (v2), worse on live labels.
    let reg = tree_and_stump();
    let app = App::spawn(
        reg.path(),
        &[
            "--shadow",
            "staging",
            "--feedback-window",
            "1000",
            "--poll-interval",
            "100ms",
        ],
    );
    score_and_label(&app, 150.0).await;
    let live: Value = app.get("/models/iris/live").await.json().await.unwrap();
    assert_eq!(live["version"], 1);
    assert_eq!(
        live["shadow"],
        json!({"alias": "staging", "version": 2, "percent": null})
    );
    assert_eq!(live["canary"], Value::Null);
    let versions: Vec<u64> = live["live"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2], "{live}");
    assert_eq!(live["agreement"][0]["rows"], 150);
    let url = app.url("");
    // The live figures beside the test figures: models --compare, the reports.
    let compare = treeserve_ok(&[
        "models",
        "iris",
        "--compare",
        "--live",
        &url,
        "--registry",
        reg.arg(),
    ]);
    let line = |label: &str| {
        compare
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no {label} in {compare}"))
            .split_whitespace()
            .rev()
            .take(2)
            .collect::<Vec<_>>()
    };
    assert_eq!(line("live role"), ["shadow", "production"], "{compare}");
    assert_eq!(line("live labels"), ["150", "150"], "{compare}");
    let page = app.get("/models/iris/report").await.text().await.unwrap();
    assert!(
        page.contains("<h2>Live traffic</h2>") && page.contains("shadow"),
        "{page}"
    );
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("r.html");
    treeserve_ok(&[
        "report",
        "iris",
        "--live",
        &url,
        "--registry",
        reg.arg(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("<h2>Live traffic</h2>")
    );
    let promote = |extra: &[&str]| {
        let mut args = vec![
            "promote",
            "iris",
            "--from-live",
            &url,
            "--registry",
            reg.arg(),
        ];
        args.extend_from_slice(extra);
        treeserve(&args)
    };
    let out = promote(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("not promoted") && err.contains("live accuracy"),
        "{err}"
    );
    assert!(!err.contains("stack backtrace"), "{err}");
    assert_eq!(production_alias(&reg), 1);
    let out = promote(&["--min-labels", "1000"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 1000"));
    assert_error(
        app.post("/models/iris/live", "{}").await,
        405,
        "method_not_allowed",
        "GET",
    )
    .await;
    assert_error(
        app.get("/models/nope/live").await,
        404,
        "model_not_found",
        "nope",
    )
    .await;

    // The other way round: the stump in production, the tree tried in shadow and promoted.
    treeserve_ok(&["promote", "iris", "2", "--registry", reg.arg()]);
    treeserve_ok(&[
        "promote",
        "iris",
        "1",
        "--alias",
        "staging",
        "--registry",
        reg.arg(),
    ]);
    wait_for(Duration::from_secs(20), || async {
        let live: Value = app.get("/models/iris/live").await.json().await.unwrap();
        live["version"] == 2 && live["shadow"]["version"] == 1
    })
    .await;
    score_and_label(&app, 300.0).await;
    let out = promote(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("iris alias production -> version 1"),
        "{stdout}"
    );
    assert_eq!(production_alias(&reg), 1);
}
