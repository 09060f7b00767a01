//! `/score` and the other routes, through the real server.

use std::time::Duration;

use serde_json::{Value, json};
use treeserve::Model;
use treeserve::model::tree::TreeLimits;

use crate::common::*;

fn load_model(reg: &TestRegistry) -> Model {
    let bytes = std::fs::read(reg.path().join("iris/versions/1/model.tsm")).unwrap();
    Model::from_bytes(&bytes, 1, &TreeLimits::default()).unwrap()
}

/// One IRIS row as the `/score` contract's JSON object.
fn row_json(r: &[f64]) -> Value {
    json!({
        "SepalLengthCm": r[0], "SepalWidthCm": r[1], "PetalLengthCm": r[2], "PetalWidthCm": r[3]
    })
}

#[tokio::test]
async fn scores_one_row_with_azure_contract_and_headers() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    let resp = app
        .client
        .post(app.url("/score"))
        .header("content-type", "application/json")
        .header("x-request-id", "req-123")
        .header("x-ms-request-id", "ms-456")
        .body(VERSICOLOR)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["x-model-name"], "iris");
    assert_eq!(h["x-model-version"], "1");
    assert_eq!(h["x-request-id"], "req-123");
    assert_eq!(h["x-ms-request-id"], "ms-456");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"output": {"predicted_species": "Iris-versicolor"}})
    );

    let body: Value = app.post("/score", SETOSA).await.json().await.unwrap();
    assert_eq!(
        body,
        json!({"output": {"predicted_species": "Iris-setosa"}})
    );
}

#[tokio::test]
async fn every_iris_row_matches_the_model_single_and_batch() {
    let reg = TestRegistry::with_iris();
    let model = load_model(&reg);
    let app = App::spawn(reg.path(), &[]);
    let data = treeserve::train::load_csv(&iris_csv(), "Species", Some("Id")).unwrap();
    let mut rows = Vec::new();
    let mut expected = Vec::new();
    for i in 0..data.rows() {
        let r = data.row(i);
        let obj = row_json(r);
        let want = &model.classes()[model.predict(r)];
        if i % 10 == 0 {
            let body: Value = app
                .post("/score", &obj.to_string())
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(body["output"]["predicted_species"], *want, "row {i}");
        }
        rows.push(obj);
        expected.push(want.clone());
    }
    let resp = app.post("/score", &Value::Array(rows).to_string()).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let out = body["output"].as_array().unwrap();
    assert_eq!(out.len(), 150);
    let got: Vec<&str> = out
        .iter()
        .map(|o| o["predicted_species"].as_str().unwrap())
        .collect();
    assert_eq!(got, expected);
    // The model is right on most of IRIS.
    let right = got
        .iter()
        .zip(&data.y)
        .filter(|(g, y)| **g == data.classes[**y as usize])
        .count();
    assert!(right >= 140, "{right}/150");
}

#[tokio::test]
async fn probabilities_on_request() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    let body: Value = app
        .post("/score?probabilities=true", VERSICOLOR)
        .await
        .json()
        .await
        .unwrap();
    let out = &body["output"];
    assert_eq!(out["predicted_species"], "Iris-versicolor");
    let p = out["probabilities"].as_object().unwrap();
    assert_eq!(p.len(), 3);
    let sum: f64 = p.values().map(|v| v.as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-9, "{sum}");
    let best = p
        .iter()
        .max_by(|a, b| a.1.as_f64().unwrap().total_cmp(&b.1.as_f64().unwrap()))
        .unwrap()
        .0;
    assert_eq!(best, "Iris-versicolor");

    let batch = format!("[{VERSICOLOR},{SETOSA}]");
    let body: Value = app
        .post("/score?probabilities=1", &batch)
        .await
        .json()
        .await
        .unwrap();
    let out = body["output"].as_array().unwrap();
    assert_eq!(out[1]["predicted_species"], "Iris-setosa");
    assert_eq!(out[1]["probabilities"]["Iris-setosa"], 1.0);

    let body: Value = app
        .post("/score?probabilities=false", VERSICOLOR)
        .await
        .json()
        .await
        .unwrap();
    assert!(body["output"].get("probabilities").is_none());
    // An empty value is refused (schemathesis found it accepted); a bare flag means true.
    for bad in ["maybe", ""] {
        assert_error(
            app.post(&format!("/score?probabilities={bad}"), VERSICOLOR)
                .await,
            400,
            "invalid_query",
            "probabilities",
        )
        .await;
    }
    let flag: serde_json::Value = app
        .post("/score?probabilities", VERSICOLOR)
        .await
        .json()
        .await
        .unwrap();
    assert!(flag["output"].get("probabilities").is_some(), "{flag}");
}

#[tokio::test]
async fn batch_keeps_order_and_a_one_row_batch_is_an_array() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    let body: Value = app
        .post("/score", &format!("[{SETOSA},{VERSICOLOR},{SETOSA}]"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body,
        json!({"output": [
            {"predicted_species": "Iris-setosa"},
            {"predicted_species": "Iris-versicolor"},
            {"predicted_species": "Iris-setosa"}
        ]})
    );
    let body: Value = app
        .post("/score", &format!("[{SETOSA}]"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body,
        json!({"output": [{"predicted_species": "Iris-setosa"}]})
    );
}

/// The largest batch the server takes (`--max-batch-rows`, 10,000 by default), with
/// probabilities: a response of about 1 MB, more than hyper's write buffer, which the
/// server writes in one flattened piece (no vectored writes). Every row comes back, in order.
#[tokio::test]
async fn the_largest_batch_comes_back_whole() {
    let reg = TestRegistry::with_iris();
    let model = load_model(&reg);
    let app = App::spawn(reg.path(), &[]);
    let data = treeserve::train::load_csv(&iris_csv(), "Species", Some("Id")).unwrap();
    let (mut rows, mut expected) = (Vec::new(), Vec::new());
    for i in 0..10_000 {
        let r = data.row(i % data.rows());
        rows.push(row_json(r));
        expected.push(model.classes()[model.predict(r)].clone());
    }
    let resp = app
        .post("/score?probabilities=true", &Value::Array(rows).to_string())
        .await;
    assert_eq!(resp.status(), 200);
    let length = header_number(&resp, "content-length");
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(bytes.len(), length);
    assert!(length > 1_000_000, "{length} bytes");
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    let got: Vec<&str> = body["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["predicted_species"].as_str().unwrap())
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn input_errors_name_the_field() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &["--max-batch-rows", "3"]);
    let cases: &[(&str, u16, &str, &str)] = &[
        ("{", 400, "malformed_json", "JSON"),
        (r#"{"SepalLengthCm": 6.6,}"#, 400, "malformed_json", "JSON"),
        ("", 400, "invalid_body", "empty"),
        ("null", 400, "invalid_body", "null"),
        ("42", 400, "invalid_body", "number"),
        ("\"hi\"", 400, "invalid_body", "string"),
        ("[]", 400, "empty_batch", "empty"),
        ("[1]", 400, "invalid_body", "row 0"),
        (
            r#"{"SepalLengthCm": 6.6, "SepalWidthCm": 3, "PetalLengthCm": 4.4}"#,
            400,
            "missing_feature",
            "PetalWidthCm",
        ),
        (
            r#"{"SepalLengthCm": 6.6, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4, "Color": 1}"#,
            400,
            "unknown_feature",
            "Color",
        ),
        (
            r#"{"SepalLengthCm": 6.6, "SepalLengthCm": 6.6, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4}"#,
            400,
            "duplicate_feature",
            "SepalLengthCm",
        ),
        (
            r#"{"SepalLengthCm": "6.6", "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4}"#,
            400,
            "invalid_value",
            "SepalLengthCm",
        ),
        (
            r#"{"SepalLengthCm": null, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4}"#,
            400,
            "invalid_value",
            "null",
        ),
        (
            r#"{"SepalLengthCm": true, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4}"#,
            400,
            "invalid_value",
            "boolean",
        ),
        (
            r#"{"SepalLengthCm": [1], "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4}"#,
            400,
            "invalid_value",
            "array",
        ),
        (
            r#"{"SepalLengthCm": 1e400, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4}"#,
            400,
            "non_finite_value",
            "out of range",
        ),
        (
            r#"{"SepalLengthCm": NaN, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4}"#,
            400,
            "malformed_json",
            "JSON",
        ),
        (
            r#"[{"SepalLengthCm": 6.6, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4}, {"SepalWidthCm": 3}]"#,
            400,
            "missing_feature",
            "row 1",
        ),
        (
            r#"{"SepalLengthCm": 6.6, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4} x"#,
            400,
            "malformed_json",
            "trailing",
        ),
    ];
    for (body, status, kind, needle) in cases {
        let resp = app.post("/score", body).await;
        assert_eq!(resp.status().as_u16(), *status, "body {body:?}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error_type"], *kind, "body {body:?}: {v}");
        let msg = v["error"].as_str().unwrap();
        assert!(
            msg.contains(needle),
            "body {body:?}: {msg:?} lacks {needle:?}"
        );
    }
    let four = format!("[{SETOSA},{SETOSA},{SETOSA},{SETOSA}]");
    assert_error(
        app.post("/score", &four).await,
        413,
        "too_many_rows",
        "3 rows",
    )
    .await;
    let three = format!("[{SETOSA},{SETOSA},{SETOSA}]");
    assert_eq!(app.post("/score", &three).await.status(), 200);
    // Invalid UTF-8 inside a string.
    let resp = app
        .client
        .post(app.url("/score"))
        .header("content-type", "application/json")
        .body(b"{\"Sepal\xff\": 1}".to_vec())
        .send()
        .await
        .unwrap();
    assert_error(resp, 400, "malformed_json", "JSON").await;
}

#[tokio::test]
async fn content_type_size_path_and_method_errors() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &["--max-body-bytes", "1000"]);
    let resp = app
        .client
        .post(app.url("/score"))
        .header("content-type", "text/plain")
        .body(VERSICOLOR)
        .send()
        .await
        .unwrap();
    assert_error(resp, 415, "unsupported_media_type", "text/plain").await;
    // JSON with parameters, and no content type at all, are accepted.
    for ct in [
        Some("application/json; charset=utf-8"),
        Some("Application/JSON"),
        None,
    ] {
        let mut req = app.client.post(app.url("/score")).body(VERSICOLOR);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        assert_eq!(req.send().await.unwrap().status(), 200, "{ct:?}");
    }
    let big = format!("[{}]", vec![SETOSA; 20].join(","));
    assert!(big.len() > 1000);
    assert_error(
        app.post("/score", &big).await,
        413,
        "body_too_large",
        "1000",
    )
    .await;
    // Chunked, with no Content-Length: cut at the limit too.
    let chunk = format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len());
    let raw = app.raw(
        format!("POST /score HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{chunk}").as_bytes(),
        Duration::from_secs(5),
    );
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    assert!(raw.contains("body_too_large"), "{raw}");

    assert_error(app.get("/nope").await, 404, "not_found", "/nope").await;
    assert_error(app.get("/score").await, 405, "method_not_allowed", "POST").await;
    let resp = app.client.delete(app.url("/score")).send().await.unwrap();
    assert_eq!(resp.headers()["allow"], "POST");
    assert_error(resp, 405, "method_not_allowed", "DELETE").await;
    let resp = app.post("/health/ready", "{}").await;
    assert_eq!(resp.headers()["allow"], "GET, HEAD");
    assert_error(resp, 405, "method_not_allowed", "POST").await;
}

#[tokio::test]
async fn health_models_and_metrics() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    let resp = app.get("/health/live").await;
    assert_eq!(resp.status(), 200);
    let resp = app.get("/health/ready").await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["model"], "iris");
    assert_eq!(v["version"], 1);

    let v: Value = app.get("/models").await.json().await.unwrap();
    let m = &v["models"][0];
    assert_eq!(m["name"], "iris");
    assert_eq!(m["version"], 1);
    assert_eq!(m["alias"], "production");
    assert_eq!(m["algorithm"], "decision_tree");
    assert_eq!(m["output_key"], "predicted_species");
    assert_eq!(
        m["features"],
        json!([
            "SepalLengthCm",
            "SepalWidthCm",
            "PetalLengthCm",
            "PetalWidthCm"
        ])
    );
    assert_eq!(
        m["classes"],
        json!(["Iris-setosa", "Iris-versicolor", "Iris-virginica"])
    );
    assert!(m["metrics"]["accuracy"].as_f64().unwrap() >= 0.9);
    assert_eq!(m["metrics"]["confusion"].as_array().unwrap().len(), 3);
    assert_eq!(m["training"]["rows"], 150);
    assert_eq!(m["sha256"].as_str().unwrap().len(), 64);

    app.post("/score", VERSICOLOR).await;
    app.post("/score", "{").await;
    app.get("/nope/1").await;
    app.get("/nope/2").await;
    let resp = app.get("/metrics").await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = resp.text().await.unwrap();
    for needle in [
        r#"treeserve_http_requests_total{method="POST",route="/score",status="200"} 1"#,
        r#"treeserve_http_requests_total{method="POST",route="/score",status="400"} 1"#,
        r#"treeserve_http_requests_total{method="GET",route="unmatched",status="404"} 2"#,
        r#"treeserve_http_request_duration_seconds_bucket{route="/score",le="0.00001"}"#,
        r#"treeserve_model_info{model="iris",sha256=""#,
        r#"treeserve_model_loads_total{outcome="success"} 1"#,
        "treeserve_build_info{",
        "treeserve_http_requests_in_flight 1\n",
        "treeserve_batch_rows_count 1\n",
        "treeserve_batch_rows_sum 1\n",
        r#"treeserve_batch_rows_bucket{le="1"} 1"#,
        r#"treeserve_rejected_requests_total{reason="malformed_json"} 1"#,
        r#"treeserve_rejected_requests_total{reason="not_found"} 2"#,
        "treeserve_model_last_swap_timestamp_seconds 1",
        "treeserve_model_ready 1\n",
        "treeserve_process_resident_memory_bytes ",
        "treeserve_process_open_fds ",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
}

#[tokio::test]
async fn no_model_means_live_but_not_ready() {
    let reg = TestRegistry::new();
    let app = App::spawn(reg.path(), &["--wait-for-model"]);
    assert_eq!(app.get("/health/live").await.status(), 200);
    let resp = app.get("/health/ready").await;
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_error(resp, 503, "no_model", "no model").await;
    assert_error(
        app.post("/score", VERSICOLOR).await,
        503,
        "no_model",
        "no model",
    )
    .await;
    let listing: serde_json::Value = app.get("/models").await.json().await.unwrap();
    assert_eq!(listing["models"], serde_json::json!([]));
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(text.contains("treeserve_model_ready 0\n"), "{text}");
    assert!(
        text.contains(r#"treeserve_rejected_requests_total{reason="no_model"} 2"#),
        "{text}"
    );
}

#[tokio::test]
async fn serves_over_h2c_and_http10() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    let h2 = crate::common::http_client()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2
        .post(app.url("/score"))
        .header("content-type", "application/json")
        .body(VERSICOLOR)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.headers()["x-model-version"], "1");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["output"]["predicted_species"], "Iris-versicolor");

    let raw = app.raw(
        format!("POST /score HTTP/1.0\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{VERSICOLOR}", VERSICOLOR.len()).as_bytes(),
        Duration::from_secs(5),
    );
    assert!(raw.starts_with("HTTP/1.0 200"), "{raw}");
    assert!(
        raw.ends_with(r#"{"output":{"predicted_species":"Iris-versicolor"}}"#),
        "{raw}"
    );
}

#[tokio::test]
async fn slow_headers_are_cut_by_the_header_timeout() {
    let reg = TestRegistry::with_iris();
    let mut app = App::spawn(reg.path(), &["--header-read-timeout", "300ms"]);
    let started = std::time::Instant::now();
    // Half a request head, then silence: the server must close the connection.
    let raw = app.raw(
        b"POST /score HTTP/1.1\r\nhost: x\r\n",
        Duration::from_secs(10),
    );
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "connection held for {waited:?}"
    );
    assert!(!raw.contains("200 OK"), "{raw}");
    assert!(app.is_running());
    assert_eq!(app.post("/score", VERSICOLOR).await.status(), 200);
}

#[tokio::test]
async fn the_shipped_registry_serves() {
    let app = App::spawn(&repo().join("models"), &[]);
    let resp = app.post("/score", VERSICOLOR).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-model-name"], "iris");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["output"]["predicted_species"], "Iris-versicolor");
}
