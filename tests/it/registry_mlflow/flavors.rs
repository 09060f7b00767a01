//! Models logged with MLflow's own flavors, served through the MLflow registry.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::{FOLLOW_WITHIN, log_models, move_alias_in_mlflow, registry, serve, served_version};
use crate::common::*;

/// Rows as JSON objects, and the framework's probabilities for version `v`.
fn oracle(logged: &Value, v: u64) -> (Value, Vec<Vec<f64>>) {
    let expected = logged["expected"][v.to_string()]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_f64().unwrap())
                .collect()
        })
        .collect();
    (logged["rows"].clone(), expected)
}

/// Scores every row through `/models/NAME/score?probabilities=true`; asserts the version
/// and that each probability is the framework's.
async fn assert_answers_like_the_framework(app: &App, name: &str, logged: &Value, v: u64) {
    let (rows, expected) = oracle(logged, v);
    let resp = app
        .post(
            &format!("/models/{name}/score?probabilities=true"),
            &rows.to_string(),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header_number(&resp, "x-model-version") as u64, v);
    let out: Value = resp.json().await.unwrap();
    let out = out["output"].as_array().unwrap();
    assert_eq!(out.len(), expected.len());
    let classes = logged["classes"].as_array().unwrap();
    let mut worst = 0f64;
    let mut distinct = std::collections::BTreeSet::new();
    for (o, want) in out.iter().zip(&expected) {
        for (c, w) in classes.iter().zip(want) {
            let got = o["probabilities"][c.as_str().unwrap()].as_f64().unwrap();
            worst = worst.max((got - w).abs());
        }
        distinct.insert(o["predicted_class"].as_str().unwrap().to_owned());
    }
    eprintln!(
        "{name} v{v}: {} rows, max abs difference from the framework {worst:e}",
        out.len()
    );
    assert!(
        worst <= 1e-5,
        "{name} v{v}: differs from the framework by {worst}"
    );
    assert_eq!(
        distinct.len(),
        3,
        "the rows reach every class: {distinct:?}"
    );
}

/// A model logged with `flavor` is served with the framework's answers, and an alias moved
/// in MLflow is followed to the next version, answered like the framework too.
async fn flavor_is_served_and_followed(flavor: &str) {
    let name = format!("it-flavor-{flavor}");
    let logged = log_models(flavor, &name, 2, Some("champion"));
    let versions: Vec<u64> = logged["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2]);
    let app = serve(&name, "champion");
    assert_answers_like_the_framework(&app, &name, &logged, 1).await;
    let row = logged["rows"][0].to_string();
    move_alias_in_mlflow(&name, "champion", 2).await;
    let took = wait_for(FOLLOW_WITHIN, || async {
        served_version(&app, &row).await == Some(2)
    })
    .await;
    eprintln!("{flavor}: alias moved in MLflow → served in {took:?}");
    assert_answers_like_the_framework(&app, &name, &logged, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xgboost_model_logged_with_mlflow_is_served_with_xgboosts_answers_and_followed() {
    flavor_is_served_and_followed("xgboost").await;
}

/// The path the pickle refusal points users to: scikit-learn converted by skl2onnx and
/// logged with `mlflow.onnx`, served with ONNX Runtime's answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sklearn_forest_logged_with_mlflow_onnx_is_served_with_onnx_runtimes_answers_and_followed()
 {
    flavor_is_served_and_followed("onnx").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lightgbm_model_logged_with_mlflow_is_served_with_lightgbms_answers_and_followed() {
    flavor_is_served_and_followed("lightgbm").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sklearn_flavor_version_is_refused_and_the_served_version_keeps_serving() {
    let reg = registry();
    let name = "it-sklearn";
    let work = TestRegistry::new();
    let v1 = work.train("v1.tsm", &["--name", name]);
    treeserve_ok(&[
        "publish",
        v1.to_str().unwrap(),
        "--registry",
        &reg,
        "--alias",
        "champion",
    ]);
    log_models("sklearn", name, 1, None);

    // The CLI refuses to point an alias at it, saying how to log it instead.
    let out = treeserve(&[
        "promote",
        name,
        "2",
        "--alias",
        "champion",
        "--registry",
        &reg,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("sklearn-flavor") && err.contains("mlflow.onnx.log_model"),
        "{err}"
    );

    // Moved in MLflow itself: the server says why it does not follow, and keeps serving.
    let (child, addr) = start(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--registry",
            &reg,
            "--model",
            name,
            "--alias",
            "champion",
            "--poll-interval",
            "1s",
        ],
        Stdio::piped(),
    );
    let mut child = Guard(child);
    let said = Arc::new(Mutex::new(String::new()));
    let stderr = child.0.stderr.take().unwrap();
    let s = said.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            s.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let app_url = format!("http://{addr}/score");
    let client = crate::common::http_client().build().unwrap();
    let score = || async {
        let r = client
            .post(&app_url)
            .header("content-type", "application/json")
            .body(VERSICOLOR)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        header_number(&r, "x-model-version") as u64
    };
    assert_eq!(score().await, 1);
    move_alias_in_mlflow(name, "champion", 2).await;
    let answered = AtomicU64::new(0);
    wait_for(FOLLOW_WITHIN, || async {
        assert_eq!(score().await, 1, "still the previous version");
        answered.fetch_add(1, Ordering::Relaxed);
        said.lock().unwrap().contains("sklearn-flavor")
    })
    .await;
    let log = said.lock().unwrap().clone();
    let line = log.lines().find(|l| l.contains("sklearn-flavor")).unwrap();
    assert!(line.contains("mlflow.onnx.log_model"), "{line}");
    for _ in 0..20 {
        assert_eq!(score().await, 1);
    }
}

/// Kills the server when dropped.
struct Guard(std::process::Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
