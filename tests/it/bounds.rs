//! What an unauthenticated client can make the server hold or do (issue 23, items 9–12
//! and the HTTP items of 17): request heads, reports, pinned versions, and the head's
//! framing (Host, Transfer-Encoding), ids in logs and query decoding.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use crate::common::*;

fn get_head(extra_header: &str) -> Vec<u8> {
    format!("GET /health/live HTTP/1.1\r\nHost: x\r\n{extra_header}\r\n").into_bytes()
}

#[test]
fn a_request_head_over_max_header_bytes_is_431() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    let big = format!("x-pad: {}\r\n", "a".repeat(40 * 1024));
    let resp = app.raw(&get_head(&big), Duration::from_secs(10));
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp:.200}");
    // Under the limit: served.
    let small = format!("x-pad: {}\r\n", "a".repeat(20 * 1024));
    let mut req = get_head(&small);
    req.splice(req.len() - 2.., *b"Connection: close\r\n\r\n");
    let resp = app.raw(&req, Duration::from_secs(10));
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp:.200}");
    // The flag raises it.
    let app = App::spawn(reg.path(), &["--max-header-bytes", "65536"]);
    let mut req = get_head(&big);
    req.splice(req.len() - 2.., *b"Connection: close\r\n\r\n");
    let resp = app.raw(&req, Duration::from_secs(10));
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp:.200}");
}

#[test]
fn a_partial_head_is_refused_once_it_passes_the_limit_not_buffered() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    let mut s = TcpStream::connect(app.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nx-pad: ")
        .unwrap();
    // A head that never ends: the server answers 431 and closes once it holds the
    // limit (32 KiB), instead of buffering on (hyper's default was about 400 KiB).
    let chunk = vec![b'a'; 16 * 1024];
    for _ in 0..12 {
        if s.write_all(&chunk).is_err() {
            break;
        }
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 431"), "{out:.200}");
}

#[tokio::test]
async fn an_http2_header_list_over_the_limit_is_refused() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &["--max-header-bytes", "65536"]);
    let h2 = crate::common::http_client()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let ok = h2
        .get(app.url("/health/live"))
        .header("x-pad", "a".repeat(40 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let refused = h2
        .get(app.url("/health/live"))
        .header("x-pad", "a".repeat(80 * 1024))
        .send()
        .await;
    match refused {
        Ok(r) => assert_eq!(r.status(), 431),
        Err(e) => assert!(!e.is_connect(), "refused as a stream error, got {e}"),
    }
}

fn loads(metrics: &str, outcome: &str) -> u64 {
    let needle = format!("treeserve_model_loads_total{{outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&needle))
        .map_or(0, |n| n.trim().parse().unwrap())
}

async fn metrics(app: &App) -> String {
    app.get("/metrics").await.text().await.unwrap()
}

/// A registry with the IRIS tree published `n` times; `production` at the last.
fn iris_versions(n: u64) -> TestRegistry {
    let reg = TestRegistry::new();
    let artifact = reg.train("iris.tsm", &[]);
    for v in 1..=n {
        let alias = (v == n).then_some("production");
        assert_eq!(reg.publish(&artifact, alias), v);
    }
    reg
}

async fn infer(app: &App, version: &str) -> reqwest::Response {
    let body =
        r#"{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP64","data":[6.6,3,4.4,1.4]}]}"#;
    app.post(&format!("/v2/models/iris/versions/{version}/infer"), body)
        .await
}

#[tokio::test]
async fn cycling_pinned_versions_loads_each_once() {
    let reg = iris_versions(7);
    let app = App::spawn(reg.path(), &[]);
    let before = loads(&metrics(&app).await, "success");
    for _ in 0..3 {
        for v in 1..=6 {
            assert_eq!(infer(&app, &v.to_string()).await.status(), 200);
        }
    }
    let after = loads(&metrics(&app).await, "success");
    assert_eq!(after - before, 6, "each pinned version loaded once");
}

#[tokio::test]
async fn the_pinned_cache_is_bounded_by_bytes() {
    let reg = iris_versions(2);
    // Smaller than one artifact: a pinned version is served but not kept.
    let app = App::spawn(reg.path(), &["--pinned-bytes", "1"]);
    let before = loads(&metrics(&app).await, "success");
    for _ in 0..3 {
        assert_eq!(infer(&app, "1").await.status(), 200);
    }
    let after = loads(&metrics(&app).await, "success");
    assert_eq!(after - before, 3, "loaded for each request, never kept");
}

#[tokio::test]
async fn a_missing_pinned_version_is_remembered_not_looked_up_per_request() {
    let reg = iris_versions(1);
    let app = App::spawn(reg.path(), &[]);
    for _ in 0..5 {
        assert_error(infer(&app, "9").await, 404, "version_not_found", "9").await;
    }
    assert_eq!(loads(&metrics(&app).await, "registry"), 1, "looked up once");
}

#[tokio::test]
async fn versions_are_canonical_decimal() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    assert_eq!(infer(&app, "1").await.status(), 200);
    for v in ["01", "+1", "1.0", "%31", "0", "18446744073709551616"] {
        assert_error(infer(&app, v).await, 404, "version_not_found", "").await;
        let ready = app
            .get(&format!("/v2/models/iris/versions/{v}/ready"))
            .await;
        assert_eq!(ready.status(), 404, "{v}");
    }
}

#[tokio::test]
async fn the_report_is_cached_until_the_registry_changes() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    let first = app.get("/models/iris/report").await;
    assert_eq!(first.status(), 200);
    let first = first.text().await.unwrap();
    assert!(first.contains("1 version(s)"), "{first:.300}");
    // Version 1's artifact becomes unreadable, the registry's state (versions, aliases)
    // does not change: the cached page is answered, not rebuilt from the files.
    let v1 = reg.path().join("iris/versions/1");
    let artifact = std::fs::read_dir(&v1)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let good = std::fs::read(&artifact).unwrap();
    std::fs::write(&artifact, b"garbage").unwrap();
    for _ in 0..3 {
        let again = app.get("/models/iris/report").await.text().await.unwrap();
        assert_eq!(again, first);
    }
    std::fs::write(&artifact, good).unwrap();
    // A new version changes the state: the page follows within the freshness window.
    let artifact = reg.train("iris2.tsm", &[]);
    assert_eq!(reg.publish(&artifact, None), 2);
    wait_for(Duration::from_secs(10), || async {
        let html = app.get("/models/iris/report").await.text().await.unwrap();
        html.contains("2 version(s)")
    })
    .await;
}

#[tokio::test]
async fn the_report_of_a_model_with_many_classes_is_summarised() {
    let reg = TestRegistry::new();
    let mut csv = String::from("a,b,y\n");
    for i in 0..1200u32 {
        let c = i % 120;
        csv.push_str(&format!("{}.{},{},c{c}\n", c, i % 7, i % 5));
    }
    let data = reg.path().join("many.csv");
    std::fs::write(&data, csv).unwrap();
    let out = reg.path().join("many.tsm");
    treeserve_ok(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--target",
        "y",
        "--id-column",
        "",
        "--name",
        "many",
        "--output",
        out.to_str().unwrap(),
    ]);
    reg.publish(&out, Some("production"));
    let app = App::spawn(reg.path(), &[]);
    let resp = app.get("/models/many/report").await;
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("120 classes: the matrix is not shown"),
        "{html:.300}"
    );
    assert!(html.contains("show the first 50"));
    assert!(html.len() < 200_000, "{} bytes", html.len());
}

#[tokio::test]
async fn the_report_allows_only_its_own_script_and_nothing_is_sniffed() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    let resp = app.get("/models/iris/report").await;
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    let script_src = csp
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src"))
        .unwrap();
    assert!(!script_src.contains("unsafe-inline"), "{csp}");
    assert!(script_src.contains("'sha256-"), "{csp}");
    let html = resp.text().await.unwrap();
    // The hash is the page's one script's.
    let script = html
        .split("<script>")
        .nth(1)
        .and_then(|s| s.split("</script>").next())
        .unwrap();
    assert_eq!(html.matches("<script").count(), 1);
    let hash = script_src
        .split("'sha256-")
        .nth(1)
        .unwrap()
        .trim_end_matches('\'');
    let out = std::process::Command::new("sh")
        .args(["-c", "openssl dgst -sha256 -binary | base64"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(script.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), hash);
    for path in ["/score", "/models", "/nope"] {
        let r = app.get(path).await;
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
    }
    let r = app.post("/score", VERSICOLOR).await;
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
}

#[test]
fn transfer_codings_other_than_chunked_are_refused() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    let body = VERSICOLOR;
    let req = format!(
        "POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let resp = app.raw(req.as_bytes(), Duration::from_secs(10));
    assert!(resp.starts_with("HTTP/1.1 501"), "{resp:.300}");
    assert!(resp.contains("unsupported_transfer_encoding"), "{resp}");
    // Plain chunked is fine.
    let req = req
        .replace("gzip, chunked", "chunked")
        .replace("Host: x\r\n", "Host: x\r\nConnection: close\r\n");
    let resp = app.raw(req.as_bytes(), Duration::from_secs(10));
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp:.300}");
}

#[test]
fn http11_without_host_is_400() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    let resp = app.raw(
        b"GET /health/live HTTP/1.1\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp:.300}");
    assert!(resp.contains("missing_host"), "{resp}");
    // HTTP/1.0 needs none.
    let resp = app.raw(
        b"GET /health/live HTTP/1.0\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(resp.starts_with("HTTP/1.0 200"), "{resp:.300}");
}

#[tokio::test]
async fn query_values_are_percent_decoded() {
    let reg = TestRegistry::with_iris();
    let app = App::spawn(reg.path(), &[]);
    for q in [
        "probabilities=%74rue",
        "%70robabilities=1",
        "probabilities=tru%65",
    ] {
        let resp = app.post(&format!("/score?{q}"), VERSICOLOR).await;
        assert_eq!(resp.status(), 200, "{q}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(body.to_string().contains("probabilities"), "{q}: {body}");
    }
    assert_error(
        app.post("/score?probabilities=%7", VERSICOLOR).await,
        400,
        "invalid_query",
        "percent-encoding",
    )
    .await;
}

#[test]
fn client_request_ids_cannot_forge_log_fields() {
    let reg = TestRegistry::with_iris();
    let (mut child, addr) = start_logging(
        &["serve", "--listen", "127.0.0.1:0", "--registry", reg.arg()],
        Stdio::piped(),
        "warn,treeserve::request=debug",
    );
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"POST /score HTTP/1.1\r\nHost: x\r\nConnection: close\r\nx-request-id: abc status=200\troute=\"/x\"\r\nContent-Length: 1\r\n\r\n{").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    // Echoed as sent.
    assert!(
        out.contains("x-request-id: abc status=200\troute=\"/x\""),
        "{out}"
    );
    let _ = child.kill();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let _ = child.wait();
    assert!(err.contains("id=abc_status_200_route__/x_"), "{err}");
    assert!(!err.contains("abc status=200"), "{err}");
}
