//! Hostile input through the real server: every case asserts status and error body, and the
//! server still answers correctly afterwards. Limits shed load with 503 + Retry-After.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

const OK_ROW: &str = VERSICOLOR;

fn row_with(value: &str) -> String {
    format!(
        r#"{{"SepalLengthCm": {value}, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4}}"#
    )
}

/// (name, content type, body, status, error_type; `None` for a 200 whose answer is checked)
type Case = (
    String,
    Option<&'static str>,
    Vec<u8>,
    u16,
    Option<&'static str>,
);

fn body_cases() -> Vec<Case> {
    let json = Some("application/json");
    let mut cases: Vec<Case> = vec![
        ("truncated object".into(), json, b"{".to_vec(), 400, Some("malformed_json")),
        ("truncated after a value".into(), json, br#"{"SepalLengthCm": 6.6,"#.to_vec(), 400, Some("malformed_json")),
        ("truncated batch".into(), json, format!("[{OK_ROW},").into_bytes(), 400, Some("malformed_json")),
        ("null body".into(), json, b"null".to_vec(), 400, Some("invalid_body")),
        ("number body".into(), json, b"42".to_vec(), 400, Some("invalid_body")),
        ("string body".into(), json, br#""row""#.to_vec(), 400, Some("invalid_body")),
        ("boolean body".into(), json, b"true".to_vec(), 400, Some("invalid_body")),
        ("empty body".into(), json, Vec::new(), 400, Some("invalid_body")),
        ("whitespace body".into(), json, b" \n\t ".to_vec(), 400, Some("invalid_body")),
        ("empty batch".into(), json, b"[]".to_vec(), 400, Some("empty_batch")),
        ("batch of numbers".into(), json, b"[1, 2]".to_vec(), 400, Some("invalid_body")),
        ("text/plain".into(), Some("text/plain"), OK_ROW.into(), 415, Some("unsupported_media_type")),
        ("application/xml".into(), Some("application/xml"), OK_ROW.into(), 415, Some("unsupported_media_type")),
        ("form content type".into(), Some("application/x-www-form-urlencoded"), OK_ROW.into(), 415, Some("unsupported_media_type")),
        ("no content type".into(), None, OK_ROW.into(), 200, None),
        ("json with charset".into(), Some("application/json; charset=utf-8"), OK_ROW.into(), 200, None),
        ("duplicate key".into(), json, br#"{"SepalLengthCm": 1, "SepalLengthCm": 2, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4}"#.to_vec(), 400, Some("duplicate_feature")),
        ("unknown feature".into(), json, br#"{"SepalLengthCm": 6.6, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4, "Colour": 1}"#.to_vec(), 400, Some("unknown_feature")),
        ("missing feature".into(), json, br#"{"SepalLengthCm": 6.6, "SepalWidthCm": 3, "PetalLengthCm": 4.4}"#.to_vec(), 400, Some("missing_feature")),
        ("wrong-case feature".into(), json, br#"{"sepallengthcm": 6.6, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4}"#.to_vec(), 400, Some("unknown_feature")),
        ("string value".into(), json, row_with(r#""6.6""#).into_bytes(), 400, Some("invalid_value")),
        ("boolean value".into(), json, row_with("true").into_bytes(), 400, Some("invalid_value")),
        ("null value".into(), json, row_with("null").into_bytes(), 400, Some("invalid_value")),
        ("array value".into(), json, row_with("[6.6]").into_bytes(), 400, Some("invalid_value")),
        ("object value".into(), json, row_with(r#"{"v": 6.6}"#).into_bytes(), 400, Some("invalid_value")),
        ("huge but finite".into(), json, row_with("1.7e308").into_bytes(), 200, None),
        ("tiny".into(), json, row_with("4.9e-324").into_bytes(), 200, None),
        ("negative zero".into(), json, row_with("-0").into_bytes(), 200, None),
        ("1e400".into(), json, row_with("1e400").into_bytes(), 400, Some("non_finite_value")),
        ("-1e400".into(), json, row_with("-1e400").into_bytes(), 400, Some("non_finite_value")),
        ("leading zero".into(), json, row_with("06.6").into_bytes(), 400, Some("malformed_json")),
        ("hex number".into(), json, row_with("0x10").into_bytes(), 400, Some("malformed_json")),
        ("trailing garbage".into(), json, format!("{OK_ROW} x").into_bytes(), 400, Some("malformed_json")),
        ("two documents".into(), json, format!("{OK_ROW}{OK_ROW}").into_bytes(), 400, Some("malformed_json")),
        ("byte order mark".into(), json, [&b"\xef\xbb\xbf"[..], OK_ROW.as_bytes()].concat(), 400, Some("malformed_json")),
        ("invalid UTF-8 in a key".into(), json, b"{\"Sepal\xffLengthCm\": 6.6}".to_vec(), 400, Some("malformed_json")),
        ("invalid UTF-8 in a value".into(), json, [&b"{\"SepalLengthCm\": \""[..], b"\xc3\x28", b"\"}"].concat(), 400, Some("malformed_json")),
        ("NUL byte".into(), json, b"{\"SepalLengthCm\": 6.6\0}".to_vec(), 400, Some("malformed_json")),
        ("10,000 nested arrays".into(), json, format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(), 400, Some("invalid_body")),
        ("10,000 nested objects".into(), json, format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000)).into_bytes(), 400, Some("unknown_feature")),
    ];
    for spelling in [
        "NaN",
        "-NaN",
        "nan",
        "Infinity",
        "-Infinity",
        "+Infinity",
        "inf",
        "-inf",
        "INF",
        "1e999999",
    ] {
        let kind = if spelling == "1e999999" {
            "non_finite_value"
        } else {
            "malformed_json"
        };
        cases.push((
            format!("{spelling} value"),
            json,
            row_with(spelling).into_bytes(),
            400,
            Some(kind),
        ));
    }
    for spelling in [r#""NaN""#, r#""Infinity""#] {
        cases.push((
            format!("{spelling} as a string"),
            json,
            row_with(spelling).into_bytes(),
            400,
            Some("invalid_value"),
        ));
    }
    cases
}

async fn assert_still_serving(app: &App) {
    let resp = app.post("/score", VERSICOLOR).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["output"]["predicted_species"], "Iris-versicolor");
}

fn raw(app: &App, bytes: &[u8]) -> String {
    app.raw(bytes, Duration::from_secs(5))
}

#[tokio::test]
async fn a_battery_of_hostile_inputs_gets_clear_errors_and_the_server_carries_on() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &["--max-body-bytes", "16777216"]);
    let cases = body_cases();
    let mut n = 0;
    let mut wrong: Vec<String> = Vec::new();
    for (name, content_type, body, status, kind) in cases {
        let mut req = app.client.post(app.url("/score")).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = resp.status().as_u16();
        let v: Value = resp
            .json()
            .await
            .unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
        let ok = got == status
            && match kind {
                Some(kind) => {
                    v["error_type"] == kind && v["error"].as_str().is_some_and(|m| !m.is_empty())
                }
                None => v["output"]["predicted_species"].is_string(),
            };
        if !ok {
            wrong.push(format!("{name}: expected {status} {kind:?}, got {got} {v}"));
        }
        n += 1;
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Size and row limits: 100,000 rows (over --max-batch-rows 10,000), and bodies over
    // --max-body-bytes with and without Content-Length.
    let rows = format!("[{}]", vec![VERSICOLOR; 100_000].join(","));
    assert_error(
        app.post("/score", &rows).await,
        413,
        "too_many_rows",
        "10000",
    )
    .await;
    let small = App::spawn(reg.path(), &["--max-body-bytes", "1000"]);
    let big = format!("[{}]", vec![VERSICOLOR; 20].join(","));
    assert_error(
        small.post("/score", &big).await,
        413,
        "body_too_large",
        "1000",
    )
    .await;
    let mut chunked = String::from(
        "POST /score HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
    );
    for c in big.as_bytes().chunks(100) {
        chunked.push_str(&format!(
            "{:x}\r\n{}\r\n",
            c.len(),
            std::str::from_utf8(c).unwrap()
        ));
    }
    chunked.push_str("0\r\n\r\n");
    let out = raw(&small, chunked.as_bytes());
    assert!(
        out.starts_with("HTTP/1.1 413") && out.contains("body_too_large"),
        "chunked: {out}"
    );
    n += 3;

    // Protocol-level abuse.
    let flood: String = (0..200).map(|i| format!("x-h{i}: {i}\r\n")).collect();
    let out = raw(
        &app,
        format!("GET /health/live HTTP/1.1\r\nhost: x\r\n{flood}\r\n").as_bytes(),
    );
    assert!(out.starts_with("HTTP/1.1 431"), "header flood: {out}");
    // A URI that does not fit in --max-header-bytes (32 KiB) is refused with the head; a
    // long one under that gets a JSON 404 with the path cut in the message.
    let huge = "a".repeat(70 * 1024);
    let out = raw(
        &app,
        format!("GET /{huge} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
    );
    assert!(
        out.starts_with("HTTP/1.1 431"),
        "huge URL: {}",
        &out[..out.len().min(200)]
    );
    let long = "a".repeat(8 * 1024);
    let out = raw(
        &app,
        format!("GET /{long} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
    );
    assert!(
        out.starts_with("HTTP/1.1 404"),
        "long URL: {}",
        &out[..out.len().min(200)]
    );
    let body = &out[out.find("\r\n\r\n").unwrap() + 4..];
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["error_type"], "not_found");
    assert!(
        v["error"].as_str().unwrap().len() < 200,
        "the path is cut in the message"
    );
    let out = raw(
        &app,
        b"PUT /score HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    );
    assert!(
        out.starts_with("HTTP/1.1 405") && out.contains("allow: POST"),
        "{out}"
    );
    let out = raw(
        &app,
        b"DELETE /models HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 405"), "{out}");
    let out = raw(
        &app,
        b"BREW /score HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 405"), "unknown method: {out}");
    let req10 = format!(
        "POST /score HTTP/1.0\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{VERSICOLOR}",
        VERSICOLOR.len()
    );
    let out = raw(&app, req10.as_bytes());
    assert!(
        out.starts_with("HTTP/1.0 200") && out.contains("Iris-versicolor"),
        "{out}"
    );
    let one = format!(
        "POST /score HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{VERSICOLOR}",
        VERSICOLOR.len()
    );
    let last = "GET /health/live HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    let out = raw(&app, format!("{one}{one}{one}{last}").as_bytes());
    assert_eq!(out.matches("HTTP/1.1 200").count(), 4, "pipelined: {out}");
    assert_eq!(out.matches("Iris-versicolor").count(), 3);
    let out = raw(&app, b"GET / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n0\r\n\r\n");
    // Transfer-Encoding overrides Content-Length (RFC 9112, 6.3; hyper drops the length):
    // the chunked body is read as one, and nothing after it is taken for a request.
    assert_eq!(
        out.matches("HTTP/1.1 ").count(),
        1,
        "conflicting framing: {out}"
    );
    assert!(
        out.starts_with("HTTP/1.1 200"),
        "conflicting framing: {out}"
    );
    let out = raw(&app, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
    assert!(
        out.is_empty() || out.starts_with("HTTP/1.1 400"),
        "TLS hello: {out}"
    );
    let h2 = crate::common::http_client()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2
        .post(app.url("/score"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_error(resp, 400, "malformed_json", "").await;
    assert_error(
        app.post("/score?probabilities=maybe", VERSICOLOR).await,
        400,
        "invalid_query",
        "probabilities",
    )
    .await;
    let gz = app
        .client
        .post(app.url("/score"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(VERSICOLOR)
        .send()
        .await
        .unwrap();
    assert_error(gz, 415, "unsupported_content_encoding", "gzip").await;
    n += 13;
    assert!(n >= 60, "{n} cases");
    assert_still_serving(&app).await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains("treeserve_http_request_panics_total 0"),
        "{text}"
    );
    assert!(!text.contains("status=\"500\""), "no 500 answered");
}

#[tokio::test]
async fn connections_over_the_limit_get_503_and_are_closed() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &["--max-connections", "2"]);
    let post = format!(
        "POST /score HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{VERSICOLOR}",
        VERSICOLOR.len()
    );
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(app.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(post.as_bytes()).unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(s);
    }
    let out = raw(&app, post.as_bytes());
    assert!(out.starts_with("HTTP/1.1 503"), "{out}");
    assert!(
        out.contains("retry-after: 1") && out.contains("too_many_connections"),
        "{out}"
    );
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let out = raw(
        &app,
        post.replace("host: x", "host: x\r\nconnection: close")
            .as_bytes(),
    );
    assert!(
        out.starts_with("HTTP/1.1 200"),
        "a freed slot is usable: {out}"
    );
    drop(held);
    // Closed connections leave the count once their tasks end.
    let started = std::time::Instant::now();
    let text = loop {
        let client = crate::common::http_client().no_proxy().build().unwrap();
        if let Ok(r) = client.get(app.url("/metrics")).send().await
            && r.status() == 200
        {
            break r.text().await.unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(3), "no slot freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        text.contains(r#"treeserve_rejected_requests_total{reason="too_many_connections"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn large_work_over_the_blocking_limit_gets_503_retry_after() {
    let reg = TestRegistry::new();
    let forest = reg.train(
        "forest.tsm",
        &["--algorithm", "random-forest", "--n-trees", "100"],
    );
    assert_eq!(reg.publish(&forest, Some("production")), 1);
    // 60 rows × 100 trees: handed to a blocking thread.
    let batch = format!("[{}]", vec![VERSICOLOR; 60].join(","));
    let refusing = App::spawn(reg.path(), &["--max-blocking-requests", "0"]);
    let resp = refusing.post("/score", &batch).await;
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_error(resp, 503, "overloaded", "busy").await;
    // Small requests stay inline and are served.
    assert_eq!(refusing.post("/score", VERSICOLOR).await.status(), 200);
    let serving = App::spawn(reg.path(), &[]);
    assert_eq!(serving.post("/score", &batch).await.status(), 200);
}

#[tokio::test]
async fn tree_limits_are_flags_and_refuse_oversized_models() {
    let reg = TestRegistry::with_iris();
    let text = |app: &App| {
        let url = app.url("/metrics");
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    for (flag, value, needle) in [
        ("--max-tree-depth", "2", "deeper than 2"),
        ("--max-tree-nodes", "5", "nodes"),
    ] {
        let app = App::spawn(reg.path(), &[flag, value, "--wait-for-model"]);
        assert_eq!(app.get("/health/ready").await.status(), 503, "{flag}");
        let metrics = text(&app).await;
        assert!(
            metrics.contains(r#"treeserve_model_loads_total{outcome="invalid_tree"} 1"#),
            "{flag} {value} ({needle}): {metrics}"
        );
    }
    let roomy = App::spawn(reg.path(), &["--max-tree-depth", "64", "--max-trees", "1"]);
    assert_eq!(roomy.get("/health/ready").await.status(), 200);
    let forests = TestRegistry::new();
    let forest = forests.train(
        "f.tsm",
        &["--algorithm", "random-forest", "--n-trees", "20"],
    );
    assert_eq!(forests.publish(&forest, Some("production")), 1);
    let small = App::spawn(forests.path(), &["--max-trees", "10", "--wait-for-model"]);
    assert_eq!(small.get("/health/ready").await.status(), 503);
    assert!(
        text(&small)
            .await
            .contains(r#"treeserve_model_loads_total{outcome="invalid_tree"} 1"#)
    );
    let enough = App::spawn(forests.path(), &["--max-trees", "20"]);
    assert_eq!(enough.get("/health/ready").await.status(), 200);
}

#[test]
fn http2_advertises_the_stream_limit() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &["--max-h2-streams", "7"]);
    // h2c prior knowledge: the preface and an empty SETTINGS frame; the server's first
    // frame is its SETTINGS, which must carry MAX_CONCURRENT_STREAMS (0x3) = 7.
    let mut s = TcpStream::connect(app.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .unwrap();
    let mut head = [0u8; 9];
    s.read_exact(&mut head).unwrap();
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    assert_eq!(head[3], 0x4, "a SETTINGS frame");
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).unwrap();
    let settings: Vec<(u16, u32)> = payload
        .chunks_exact(6)
        .map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
            )
        })
        .collect();
    assert!(settings.contains(&(0x3, 7)), "{settings:?}");
}

#[test]
fn split_first_bytes_still_pick_the_right_protocol() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &["--max-h2-streams", "7"]);
    // The HTTP/2 preface in three packets: the server still answers with its SETTINGS.
    let mut s = TcpStream::connect(app.addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for part in [
        &b"PR"[..],
        b"I * HTTP/2.0\r\n",
        b"\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0",
    ] {
        s.write_all(part).unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    let mut head = [0u8; 9];
    s.read_exact(&mut head).unwrap();
    assert_eq!(head[3], 0x4, "a SETTINGS frame");
    // An HTTP/1.1 request whose first packet is one byte that could begin the preface.
    let mut s = TcpStream::connect(app.addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let body = VERSICOLOR.as_bytes();
    let rest = format!(
        "OST /score HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(b"P").unwrap();
    std::thread::sleep(Duration::from_millis(30));
    s.write_all(rest.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("Iris-versicolor"), "{answer}");
    // A connection that sends nothing is closed after the head timeout like any other.
    let app = App::spawn(reg.path(), &["--header-read-timeout", "300ms"]);
    let mut s = TcpStream::connect(app.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 1];
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "closed without a byte");
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// A client that hangs up while its body is still coming: the request ends (its body
/// cannot be read) and leaves the in-flight gauge, which would otherwise climb for ever.
/// (A request dropped unanswered is covered by a unit test in `http`.)
#[tokio::test]
async fn a_client_hanging_up_mid_body_leaves_the_in_flight_gauge() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    let in_flight = || async {
        let text = app.get("/metrics").await.text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("treeserve_http_requests_in_flight "))
            .map(|v| v.parse::<u64>().unwrap())
            .expect("in-flight gauge")
    };
    // The scrape counts itself.
    assert_eq!(in_flight().await, 1);
    let mut s = TcpStream::connect(app.addr).unwrap();
    s.write_all(b"POST /score HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 90\r\n\r\n{\"SepalLengthCm\": 6.6")
        .unwrap();
    wait_for(Duration::from_secs(10), || async { in_flight().await == 2 }).await;
    drop(s);
    wait_for(Duration::from_secs(10), || async { in_flight().await == 1 }).await;
    assert_still_serving(&app).await;
}
