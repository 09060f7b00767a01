//! The Open Inference Protocol (KServe V2), several models, pinned versions and the
//! OpenAPI document, through the real server.

use std::time::Duration;

use serde_json::{Value, json};
use treeserve::registry::{FsRegistry, Registry};

use crate::common::*;

const ROW: [f64; 4] = [6.6, 3.0, 4.4, 1.4];

fn infer_body(shape: Value, datatype: &str, data: Value) -> String {
    json!({"id": "req-1", "inputs": [{"name": "input", "shape": shape, "datatype": datatype, "data": data}]})
        .to_string()
}

async fn json_of(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    resp.json().await.unwrap()
}

/// Rows of the IRIS CSV as feature values, with their /score labels and probabilities.
fn iris_rows(n: usize) -> Vec<[f64; 4]> {
    let text = std::fs::read_to_string(iris_csv()).unwrap();
    text.lines()
        .skip(1)
        .step_by(3)
        .take(n)
        .map(|l| {
            let f: Vec<f64> = l
                .split(',')
                .skip(1)
                .take(4)
                .map(|x| x.parse().unwrap())
                .collect();
            [f[0], f[1], f[2], f[3]]
        })
        .collect()
}

fn score_row(r: &[f64; 4]) -> Value {
    json!({"SepalLengthCm": r[0], "SepalWidthCm": r[1], "PetalLengthCm": r[2], "PetalWidthCm": r[3]})
}

#[tokio::test]
async fn server_and_model_metadata_health_and_readiness() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    let server = json_of(app.get("/v2").await).await;
    assert_eq!(server["name"], "treeserve");
    assert_eq!(server["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(server["extensions"], json!(["binary_tensor_data"]));
    assert_eq!(app.get("/v2/health/live").await.status(), 200);
    assert_eq!(app.get("/v2/health/ready").await.status(), 200);
    let meta = json_of(app.get("/v2/models/iris").await).await;
    assert_eq!(meta["name"], "iris");
    assert_eq!(meta["versions"], json!(["1"]));
    assert_eq!(meta["inputs"][0]["shape"], json!([-1, 4]));
    assert_eq!(
        meta["outputs"][0],
        json!({"name": "label", "datatype": "BYTES", "shape": [-1]})
    );
    assert_eq!(
        meta["outputs"][1],
        json!({"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]})
    );
    assert_eq!(meta["parameters"]["features"][2], "PetalLengthCm");
    let ready = json_of(app.get("/v2/models/iris/ready").await).await;
    assert_eq!(ready["ready"], true);
    assert_eq!(
        json_of(app.get("/v2/models/iris/versions/1").await).await["name"],
        "iris"
    );
    assert_eq!(
        app.get("/v2/models/iris/versions/1/ready").await.status(),
        200
    );
}

#[tokio::test]
async fn infer_matches_score_for_one_row_and_batches() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    let one = app
        .post(
            "/v2/models/iris/infer",
            &infer_body(json!([1, 4]), "FP32", json!(ROW)),
        )
        .await;
    assert_eq!(one.headers()["x-model-version"], "1");
    let one = json_of(one).await;
    assert_eq!(one["id"], "req-1");
    assert_eq!(one["model_name"], "iris");
    assert_eq!(one["model_version"], "1");
    assert_eq!(one["outputs"][0]["data"], json!(["Iris-versicolor"]));
    assert_eq!(one["outputs"][1]["shape"], json!([1, 3]));
    // [F] is one row too.
    let flat = json_of(
        app.post(
            "/v2/models/iris/infer",
            &infer_body(json!([4]), "FP64", json!(ROW)),
        )
        .await,
    )
    .await;
    assert_eq!(flat["outputs"][0]["data"], json!(["Iris-versicolor"]));

    let rows = iris_rows(50);
    let nested: Vec<Value> = rows.iter().map(|r| json!(r)).collect();
    let body = json!({
        "inputs": [{"name": "x", "shape": [rows.len(), 4], "datatype": "FP64", "data": nested}],
        "outputs": [{"name": "probabilities"}, {"name": "label"}],
    });
    let batch = json_of(app.post("/v2/models/iris/infer", &body.to_string()).await).await;
    assert!(batch.get("id").is_none());
    assert_eq!(batch["outputs"][0]["name"], "probabilities");
    let proba = batch["outputs"][0]["data"].as_array().unwrap();
    let labels = batch["outputs"][1]["data"].as_array().unwrap();
    let scored = json_of(
        app.post(
            "/score?probabilities=true",
            &Value::Array(rows.iter().map(score_row).collect()).to_string(),
        )
        .await,
    )
    .await;
    let classes = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"];
    for (i, s) in scored["output"].as_array().unwrap().iter().enumerate() {
        assert_eq!(labels[i], s["predicted_species"], "row {i}");
        for (k, c) in classes.iter().enumerate() {
            let p = proba[i * 3 + k].as_f64().unwrap();
            let q = s["probabilities"][c].as_f64().unwrap();
            assert!((p - q).abs() < 1e-6, "row {i} {c}: {p} vs {q}");
        }
    }
    // Integers are converted.
    let ints = json_of(
        app.post(
            "/v2/models/iris/infer",
            &infer_body(json!([1, 4]), "INT32", json!([5, 3, 1, 0])),
        )
        .await,
    )
    .await;
    assert_eq!(ints["outputs"][0]["data"], json!(["Iris-setosa"]));
}

#[tokio::test]
async fn binary_tensor_data_in_and_out() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    let header = json!({
        "inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": 32}}],
        "parameters": {"binary_data_output": true},
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    for v in ROW.iter().chain(&[5.1, 3.5, 1.4, 0.2]) {
        body.extend_from_slice(&(*v as f32).to_le_bytes());
    }
    let resp = app
        .client
        .post(app.url("/v2/models/iris/infer"))
        .header("inference-header-content-length", header.len())
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let json_len = header_number(&resp, "inference-header-content-length");
    let bytes = resp.bytes().await.unwrap();
    let head: Value = serde_json::from_slice(&bytes[..json_len]).unwrap();
    let label_size = head["outputs"][0]["parameters"]["binary_data_size"]
        .as_u64()
        .unwrap() as usize;
    let bin = &bytes[json_len..];
    let mut labels = Vec::new();
    let mut at = 0;
    while at < label_size {
        let n = u32::from_le_bytes(bin[at..at + 4].try_into().unwrap()) as usize;
        labels.push(
            std::str::from_utf8(&bin[at + 4..at + 4 + n])
                .unwrap()
                .to_owned(),
        );
        at += 4 + n;
    }
    assert_eq!(labels, ["Iris-versicolor", "Iris-setosa"]);
    let proba: Vec<f32> = bin[label_size..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(proba.len(), 6);
    assert_eq!(proba[3], 1.0, "setosa row: {proba:?}");
}

#[tokio::test]
async fn every_v2_error_is_a_4xx_with_a_json_error() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &["--max-batch-rows", "10"]);
    let infer = |body: String| {
        let app = &app;
        async move { app.post("/v2/models/iris/infer", &body).await }
    };
    let cases: Vec<(String, u16, &str, &str)> = vec![
        (infer_body(json!([1, 3]), "FP32", json!([1, 2, 3])), 400, "invalid_shape", "shape [1, 3]"),
        (infer_body(json!([1, 4, 1]), "FP32", json!(ROW)), 400, "invalid_shape", "[N, 4]"),
        (infer_body(json!([2, 4]), "FP32", json!(ROW)), 400, "invalid_shape", "data has 4"),
        (infer_body(json!([1, 4]), "BYTES", json!(["a", "b", "c", "d"])), 400, "invalid_datatype", "BYTES"),
        (infer_body(json!([1, 4]), "FP16", json!(ROW)), 400, "invalid_datatype", "FP16"),
        (infer_body(json!([1, 4]), "FP32", json!([1, 2, "3", 4])), 400, "invalid_body", "data must be numbers"),
        (infer_body(json!([1, 4]), "FP32", json!([1, 2, null, 4])), 400, "invalid_value", "does not route missing values"),
        (infer_body(json!([1, 4]), "FP32", json!([1, 2, 3, 1e300])), 400, "invalid_value", "not a valid FP32"),
        (infer_body(json!([1, 4]), "INT32", json!([1, 2, 3, 4.5])), 400, "invalid_value", "INT32"),
        (infer_body(json!([0, 4]), "FP32", json!([])), 400, "empty_batch", "no rows"),
        (infer_body(json!([11, 4]), "FP32", json!([])), 413, "too_many_rows", "limit is 10"),
        (r#"{"inputs":[{"name":"a","shape":[1,4],"datatype":"FP32","data":[1,2,3,1e400]}]}"#.into(), 400, "non_finite_value", "number out of range"),
        (r#"{"inputs":[]}"#.into(), 400, "invalid_body", "exactly one input"),
        (r#"{"inputs":[{"name":"a","shape":[1,4],"datatype":"FP32"}]}"#.into(), 400, "invalid_body", "no data"),
        (r#"{"outputs":[]}"#.into(), 400, "invalid_body", "inputs"),
        (r#"[1,2]"#.into(), 400, "invalid_body", "invalid inference request"),
        ("{".into(), 400, "malformed_json", "invalid inference request"),
        (json!({"inputs": [{"name": "a", "shape": [1, 4], "datatype": "FP32", "data": ROW}], "outputs": [{"name": "score"}]}).to_string(), 400, "unknown_output", "\"score\""),
    ];
    for (body, status, kind, needle) in cases {
        assert_error(infer(body).await, status, kind, needle).await;
    }
    let good = infer_body(json!([1, 4]), "FP32", json!(ROW));
    for (path, status, kind) in [
        ("/v2/models/nope/infer", 404, "model_not_found"),
        ("/v2/models/iris/versions/7/infer", 404, "version_not_found"),
        ("/v2/models/iris/versions/x/infer", 404, "version_not_found"),
        ("/v2/models/iris/versions/0/infer", 404, "version_not_found"),
        ("/v2/models/iris/explain", 404, "not_found"),
    ] {
        assert_error(app.post(path, &good).await, status, kind, "").await;
    }
    for path in [
        "/v2/models/nope",
        "/v2/models/nope/ready",
        "/v2/models/iris/versions/3/ready",
    ] {
        assert_eq!(app.get(path).await.status(), 404, "{path}");
    }
    assert_error(
        app.get("/v2/models/iris/infer").await,
        405,
        "method_not_allowed",
        "POST",
    )
    .await;
    let gz = app
        .client
        .post(app.url("/v2/models/iris/infer"))
        .header("content-encoding", "gzip")
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_error(gz, 415, "unsupported_content_encoding", "gzip").await;
    let short = app
        .client
        .post(app.url("/v2/models/iris/infer"))
        .header("inference-header-content-length", "9999")
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_error(
        short,
        400,
        "invalid_body",
        "Inference-Header-Content-Length",
    )
    .await;
    // Still serving.
    assert_eq!(app.post("/v2/models/iris/infer", &good).await.status(), 200);
}

#[tokio::test]
async fn pinned_versions_serve_exactly_that_version_from_a_bounded_cache() {
    let reg = TestRegistry::with_iris();
    let stump = std::fs::read(reg.train("stump.tsm", &["--max-depth", "1"])).unwrap();
    let fs = FsRegistry::new(reg.path());
    let v2 = fs.publish("iris", &stump).unwrap();
    let v3 = fs.publish("iris", &stump).unwrap();
    let app = App::spawn(
        reg.path(),
        &["--pinned-versions", "1", "--poll-interval", "50ms"],
    );
    let version_of = |path: &'static str| {
        let app = &app;
        async move {
            let body = infer_body(json!([1, 4]), "FP32", json!(ROW));
            let v = json_of(app.post(path, &body).await).await;
            v["model_version"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(version_of("/v2/models/iris/infer").await, "1");
    assert_eq!(
        version_of("/v2/models/iris/versions/2/infer").await,
        v2.to_string()
    );
    assert_eq!(
        version_of("/v2/models/iris/versions/3/infer").await,
        v3.to_string()
    );
    // The cache holds one pinned version: 2 was dropped and is loaded again.
    assert_eq!(version_of("/v2/models/iris/versions/2/infer").await, "2");
    assert_eq!(version_of("/v2/models/iris/versions/1/infer").await, "1");
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains("treeserve_model_loads_total{outcome=\"success\"} 4"),
        "1 + pinned 2, 3, 2 again: {text}"
    );
    let meta = json_of(app.get("/v2/models/iris/versions/3").await).await;
    assert_eq!(meta["parameters"]["model_version"], "3");
    assert_eq!(meta["versions"], json!(["1", "2", "3"]));

    // Unpinned requests follow the alias.
    fs.set_alias("iris", "production", v3).unwrap();
    wait_for(Duration::from_secs(3), || async {
        version_of("/v2/models/iris/infer").await == "3"
    })
    .await;
    assert_eq!(version_of("/v2/models/iris/versions/1/infer").await, "1");
}

#[tokio::test]
async fn two_models_side_by_side_swap_independently() {
    let reg = TestRegistry::with_iris();
    let other = reg.train("other.tsm", &["--name", "iris-stump", "--max-depth", "1"]);
    assert_eq!(reg.publish(&other, Some("production")), 1);
    let app = App::spawn(reg.path(), &["--poll-interval", "50ms"]);
    // Two models, no --model: /score has no default.
    assert_error(
        app.post("/score", VERSICOLOR).await,
        404,
        "no_default_model",
        "/models/{model}/score",
    )
    .await;
    assert_eq!(app.get("/health/ready").await.status(), 200);
    let listing = json_of(app.get("/models").await).await;
    let names: Vec<&str> = listing["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["iris", "iris-stump"]);
    let label = |path: &'static str| {
        let app = &app;
        async move {
            let r = app.post(path, VERSICOLOR).await;
            let v = r.headers()["x-model-version"].to_str().unwrap().to_owned();
            let body = json_of(r).await;
            (
                body["output"]["predicted_species"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                v,
            )
        }
    };
    assert_eq!(
        label("/models/iris/score").await,
        ("Iris-versicolor".into(), "1".into())
    );
    // A one-split stump cannot tell versicolor from virginica the way the tree does.
    let (stump_label, _) = label("/models/iris-stump/score").await;
    assert_ne!(stump_label, "Iris-setosa");
    assert_error(
        app.post("/models/nope/score", VERSICOLOR).await,
        404,
        "model_not_found",
        "nope",
    )
    .await;
    assert_eq!(
        json_of(app.get("/models/iris-stump").await).await["version"],
        1
    );

    // A new version of one model swaps that model alone.
    let deeper = reg.train("deeper.tsm", &["--name", "iris-stump", "--max-depth", "2"]);
    assert_eq!(reg.publish(&deeper, Some("production")), 2);
    wait_for(Duration::from_secs(3), || async {
        label("/models/iris-stump/score").await.1 == "2"
    })
    .await;
    assert_eq!(label("/models/iris/score").await.1, "1");
    let v2 = json_of(
        app.post(
            "/v2/models/iris-stump/infer",
            &infer_body(json!([1, 4]), "FP32", json!(ROW)),
        )
        .await,
    )
    .await;
    assert_eq!(v2["model_version"], "2");
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains(r#"treeserve_model_info{model="iris",sha256="#),
        "{text}"
    );
    assert!(text.contains(r#"model="iris-stump",sha256="#), "{text}");
    assert!(text.contains(r#",version="2"} 1"#), "{text}");

    // --model picks the models and the default.
    let named = App::spawn(reg.path(), &["--model", "iris-stump,iris"]);
    assert_eq!(
        named.post("/score", VERSICOLOR).await.headers()["x-model-name"],
        "iris-stump"
    );
    let only = App::spawn(reg.path(), &["--model", "iris"]);
    assert_eq!(
        only.post("/score", VERSICOLOR).await.headers()["x-model-name"],
        "iris"
    );
    assert_eq!(
        only.post("/models/iris-stump/score", VERSICOLOR)
            .await
            .status(),
        404
    );
    // A named model that does not exist keeps the server unready.
    let missing = App::spawn(reg.path(), &["--model", "iris,ghost"]);
    assert_eq!(missing.get("/health/ready").await.status(), 503);
    assert_eq!(missing.post("/score", VERSICOLOR).await.status(), 200);
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    let doc = json_of(app.get("/openapi.json").await).await;
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/score",
        "/models/{model}/score",
        "/health/live",
        "/health/ready",
        "/models",
        "/models/{model}",
        "/models/{model}/report",
        "/models/{model}/live",
        "/metrics",
        "/openapi.json",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{model}",
        "/v2/models/{model}/ready",
        "/v2/models/{model}/infer",
        "/v2/models/{model}/versions/{version}",
        "/v2/models/{model}/versions/{version}/ready",
        "/v2/models/{model}/versions/{version}/infer",
        "/",
        "/ping",
        "/swagger.json",
        "/invocations",
        "/models/{model}/invocations",
        "/v1/models/{model}",
        "/v1/models/{model}:predict",
        "/feedback",
        "/models/{model}/feedback",
    ] {
        assert!(paths.contains_key(route), "{route} is not documented");
    }
    assert_eq!(paths.len(), 28, "an undocumented or stale path");
}
