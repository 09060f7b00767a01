//! The clients users already run, through the real binary: MLflow's scoring protocol
//! (`/invocations`, `/ping`; MLflow's own client and its documented payloads), KServe V1 /
//! TF Serving predict, and Azure ML's `GET /` and `/swagger.json`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::common::*;

/// The MLflow venv's python (`TREESERVE_MLFLOW_ENV`, default `target/mlflow-env`).
fn mlflow_python() -> PathBuf {
    let root = std::env::var_os("TREESERVE_MLFLOW_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/mlflow-env"));
    let python = root.join("bin/python");
    assert!(
        python.exists(),
        "no MLflow venv at {} (TREESERVE_MLFLOW_ENV): run `bash .ci/run`, which creates it",
        root.display()
    );
    python
}

/// The `/score` classes of `rows` (objects keyed by feature).
async fn score_classes(app: &App, rows: &Value) -> Vec<Value> {
    let out: Value = app
        .post("/score", &rows.to_string())
        .await
        .json()
        .await
        .unwrap();
    out["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["predicted_species"].clone())
        .collect()
}

/// IRIS rows as objects, and as lists in feature order.
fn iris_rows(n: usize) -> (Value, Value) {
    let (header, rows) = read_csv(&iris_csv());
    let features = &header[1..5];
    let picked: Vec<&Vec<String>> = rows.iter().step_by(rows.len() / n).take(n).collect();
    let objects = picked
        .iter()
        .map(|r| {
            features
                .iter()
                .zip(&r[1..5])
                .map(|(f, v)| (f.clone(), json!(v.parse::<f64>().unwrap())))
                .collect::<serde_json::Map<_, _>>()
        })
        .collect::<Vec<_>>();
    let lists = picked
        .iter()
        .map(|r| {
            r[1..5]
                .iter()
                .map(|v| v.parse::<f64>().unwrap())
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>();
    (json!(objects), json!(lists))
}

#[tokio::test]
async fn mlflows_own_client_and_documented_payloads_score_through_invocations() {
    let python = mlflow_python();
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    let base = app.url("");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(repo().join("tests/clients/mlflow_scoring.py"))
            .arg(base)
            .arg(iris_csv())
            .output()
            .expect("run mlflow_scoring.py")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{stdout}");
    assert_eq!(stdout.lines().count(), 11, "every form ran: {stdout}");
}

#[tokio::test]
async fn kserve_v1_predict_and_model_status_answer_like_score() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    let (objects, lists) = iris_rows(30);
    let want = score_classes(&app, &objects).await;
    for body in [
        json!({ "instances": lists }),
        json!({ "instances": objects }),
        json!({ "inputs": lists }),
    ] {
        let resp = app.post("/v1/models/iris:predict", &body.to_string()).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(header_number(&resp, "x-model-version"), 1);
        let got: Value = resp.json().await.unwrap();
        assert_eq!(got["predictions"].as_array().unwrap(), &want, "{body}");
    }
    let status: Value = app.get("/v1/models/iris").await.json().await.unwrap();
    assert_eq!(status["name"], "iris");
    assert_eq!(status["ready"], true);
    assert_eq!(status["model_version_status"][0]["version"], "1");
    assert_eq!(status["model_version_status"][0]["state"], "AVAILABLE");
    assert_error(
        app.get("/v1/models/nope").await,
        404,
        "model_not_found",
        "nope",
    )
    .await;
    assert_error(
        app.post(
            "/v1/models/nope:predict",
            r#"{"instances": [[1, 2, 3, 4]]}"#,
        )
        .await,
        404,
        "model_not_found",
        "nope",
    )
    .await;
    // The named MLflow route scores with that model.
    let resp = app
        .post(
            "/models/iris/invocations",
            &json!({ "dataframe_records": objects }).to_string(),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let got: Value = resp.json().await.unwrap();
    assert_eq!(got["predictions"].as_array().unwrap(), &want);
}

#[tokio::test]
async fn azure_ml_and_mlflow_probes_answer_and_swagger_is_the_openapi_document() {
    let reg = TestRegistry::new();
    // No model yet: alive, not ready.
    let app = App::spawn(reg.path(), &["--wait-for-model"]);
    let root = app.get("/").await;
    assert_eq!(root.status(), 200);
    assert_eq!(root.text().await.unwrap(), "Healthy");
    assert_eq!(app.get("/ping").await.status(), 503);
    let artifact = reg.train("iris.tsm", &[]);
    reg.publish(&artifact, Some("production"));
    wait_for(std::time::Duration::from_secs(20), || async {
        app.get("/ping").await.status() == 200
    })
    .await;
    let swagger: Value = app.get("/swagger.json").await.json().await.unwrap();
    let openapi: Value = app.get("/openapi.json").await.json().await.unwrap();
    assert_eq!(swagger, openapi);
    for path in [
        "/invocations",
        "/models/{model}/invocations",
        "/v1/models/{model}:predict",
        "/v1/models/{model}",
        "/ping",
        "/",
    ] {
        assert!(openapi["paths"][path].is_object(), "{path} is documented");
    }
    assert_error(
        app.get("/invocations").await,
        405,
        "method_not_allowed",
        "POST",
    )
    .await;
}

#[tokio::test]
async fn integer_labels_are_numbers_and_a_regressor_answers_values() {
    let reg = TestRegistry::new();
    let dir = reg.path().to_owned();
    // IRIS with its classes as 0, 1, 2 (as a model trained on integer labels answers).
    let text = std::fs::read_to_string(iris_csv()).unwrap();
    let ints = text
        .replace("Iris-setosa", "0")
        .replace("Iris-versicolor", "1")
        .replace("Iris-virginica", "2");
    let csv = dir.join("iris-int.csv");
    std::fs::write(&csv, ints).unwrap();
    treeserve_ok(&[
        "train",
        "--data",
        csv.to_str().unwrap(),
        "--name",
        "ints",
        "--publish",
        reg.arg(),
    ]);
    // A regressor: y = a + 2b.
    let mut rows = String::from("a,b,y\n");
    for i in 0..400 {
        let (a, b) = ((i % 20) as f64, (i / 20) as f64);
        rows.push_str(&format!("{a},{b},{}\n", a + 2.0 * b));
    }
    let reg_csv = dir.join("reg.csv");
    std::fs::write(&reg_csv, rows).unwrap();
    treeserve_ok(&[
        "train",
        "--task",
        "regression",
        "--data",
        reg_csv.to_str().unwrap(),
        "--target",
        "y",
        "--id-column",
        "",
        "--name",
        "lin",
        "--publish",
        reg.arg(),
    ]);
    let app = App::spawn(reg.path(), &[]);
    let got: Value = app
        .post(
            "/models/ints/invocations",
            r#"{"instances": [[5.1, 3.5, 1.4, 0.2], [6.6, 3, 4.4, 1.4]]}"#,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got, json!({"predictions": [0, 1]}));
    let resp = app
        .client
        .post(app.url("/models/lin/invocations"))
        .header("content-type", "text/csv")
        .body("b,a\n3,4\n0,0\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got: Value = resp.json().await.unwrap();
    let values = got["predictions"].as_array().unwrap();
    let score: Value = app
        .post(
            "/models/lin/score",
            r#"[{"a": 4, "b": 3}, {"a": 0, "b": 0}]"#,
        )
        .await
        .json()
        .await
        .unwrap();
    for (v, s) in values.iter().zip(score["output"].as_array().unwrap()) {
        assert_eq!(v.as_f64(), s["predicted_y"].as_f64(), "{got} vs {score}");
    }
}

/// Malformed payloads on every new route: a clear 400 JSON error, never a 500, and the
/// server carries on.
#[tokio::test]
async fn hostile_payloads_on_the_new_routes_get_clear_400s() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    let bodies = [
        "",
        "not json",
        "[]",
        "{}",
        "null",
        r#"{"instances": {}}"#,
        r#"{"instances": [[]]}"#,
        r#"{"instances": [[1, 2, 3, "x"]]}"#,
        r#"{"instances": [[1, 2, 3, 1e999]]}"#,
        r#"{"instances": [[[1, 2, 3, 4]]]}"#,
        r#"{"dataframe_split": {"columns": [1, 2], "data": [[1, 2]]}}"#,
        r#"{"dataframe_split": {"columns": "x", "data": []}}"#,
        r#"{"dataframe_split": []}"#,
        r#"{"dataframe_records": [1]}"#,
        r#"{"inputs": {"SepalLengthCm": 1}}"#,
        r#"{"inputs": [[1, 2, 3, 4]], "instances": [[1, 2, 3, 4]]}"#,
        r#"{"unknown": 1}"#,
        "{\"instances\": [[1, 2, 3, 4]]",
        &"[".repeat(10_000),
    ];
    for path in [
        "/invocations",
        "/models/iris/invocations",
        "/v1/models/iris:predict",
    ] {
        for body in bodies {
            let resp = app.post(path, body).await;
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            assert_eq!(status, 400, "{path} {body:.60}: {text}");
            let err: Value = serde_json::from_str(&text).unwrap();
            assert!(
                err["error"].as_str().is_some_and(|e| !e.is_empty())
                    && err["error_type"].is_string(),
                "{text}"
            );
        }
    }
    for csv in [
        "",
        "a,b\n1,2\n",
        "SepalLengthCm,SepalWidthCm,PetalLengthCm,PetalWidthCm\n1,2,3\n",
        "SepalLengthCm,SepalWidthCm,PetalLengthCm,PetalWidthCm\n1,2,3,x\n",
        "SepalLengthCm,SepalWidthCm,PetalLengthCm,PetalWidthCm\n",
        "\u{0}\u{1}\u{2}",
    ] {
        let resp = app
            .client
            .post(app.url("/invocations"))
            .header("content-type", "text/csv")
            .body(csv.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{csv:?}");
    }
    let resp = app
        .client
        .post(app.url("/v1/models/iris:predict"))
        .header("content-type", "text/csv")
        .body("a\n1\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415, "V1 takes JSON only");
    assert_eq!(app.post("/score", VERSICOLOR).await.status(), 200);
}
