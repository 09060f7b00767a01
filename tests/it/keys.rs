//! API keys (`--api-keys-file`) through the real binary: none, wrong, right, scoped,
//! a rotated file, probes open, `--metrics-open`, and a bad file at start.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;

const ADMIN: &str = "admin-0123456789abcdef0123456789";
const SCORE: &str = "score-0123456789abcdef0123456789";
const NEXT: &str = "next-score-0123456789abcdef01234";

/// POSTs one row to `/score` with `headers`; the status.
async fn score_with(app: &App, headers: &[(&str, &str)]) -> u16 {
    let mut req = app
        .client
        .post(app.url("/score"))
        .header("content-type", "application/json")
        .body(VERSICOLOR);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap().status().as_u16()
}

async fn get_with(app: &App, path: &str, key: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(app.url(path));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn keys_are_required_scoped_rotated_and_probes_stay_open() {
    let reg = TestRegistry::with_iris();
    let file = reg.path().join("keys.txt");
    std::fs::write(&file, format!("# ops\n{ADMIN}\n{SCORE} score\n")).unwrap();
    let app = App::spawn(reg.path(), &["--api-keys-file", file.to_str().unwrap()]);

    // None, wrong: 401 with WWW-Authenticate, a JSON error that does not echo the key.
    let resp = app.post("/score", VERSICOLOR).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error_type"], "unauthorized");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer")
    );
    let wrong = "wrong-0123456789abcdef0123456789";
    let resp = app
        .client
        .post(app.url("/score"))
        .bearer_auth(wrong)
        .body(VERSICOLOR)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(!resp.text().await.unwrap().contains(wrong));
    // Right, either header.
    let bearer = format!("Bearer {SCORE}");
    assert_eq!(score_with(&app, &[("authorization", &bearer)]).await, 200);
    assert_eq!(score_with(&app, &[("x-api-key", SCORE)]).await, 200);
    assert_eq!(score_with(&app, &[("x-api-key", ADMIN)]).await, 200);
    // Every scoring route, and an unknown path, needs a key.
    for path in [
        "/invocations",
        "/v1/models/iris:predict",
        "/v2/models/iris/infer",
    ] {
        assert_eq!(app.post(path, "{}").await.status(), 401, "{path}");
    }
    assert_eq!(get_with(&app, "/nope", None).await.status(), 401);
    assert_eq!(get_with(&app, "/nope", Some(SCORE)).await.status(), 404);
    // Scoped: a score key cannot read details, reports or metrics.
    for path in ["/metrics", "/models", "/models/iris", "/models/iris/report"] {
        let resp = get_with(&app, path, Some(SCORE)).await;
        assert_eq!(resp.status(), 403, "{path}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error_type"], "forbidden");
        assert_eq!(
            get_with(&app, path, Some(ADMIN)).await.status(),
            200,
            "{path}"
        );
    }
    // Probes stay open.
    for path in [
        "/health/live",
        "/health/ready",
        "/",
        "/ping",
        "/v2/health/live",
        "/v2/health/ready",
    ] {
        assert_eq!(get_with(&app, path, None).await.status(), 200, "{path}");
    }
    // Refusals are counted by route.
    let metrics = get_with(&app, "/metrics", Some(ADMIN))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with(
            r#"treeserve_http_requests_total{method="POST",route="/score",status="401"} 2"#
        )),
        "{metrics}"
    );
    assert!(metrics.contains(r#"treeserve_rejected_requests_total{reason="forbidden"} 4"#));

    // Rotation: the score key is replaced; the old one is refused, the new one accepted,
    // without a restart.
    std::fs::write(&file, format!("{ADMIN}\n{NEXT} score\n")).unwrap();
    let next = format!("Bearer {NEXT}");
    wait_for(Duration::from_secs(10), || async {
        score_with(&app, &[("authorization", &next)]).await == 200
    })
    .await;
    assert_eq!(score_with(&app, &[("authorization", &bearer)]).await, 401);
    // A broken file keeps the keys in use.
    std::fs::write(&file, "short\n").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(score_with(&app, &[("authorization", &next)]).await, 200);
}

#[tokio::test]
async fn metrics_open_leaves_only_metrics_open() {
    let reg = TestRegistry::with_iris();
    let file = reg.path().join("keys.txt");
    std::fs::write(&file, format!("{SCORE} score\n")).unwrap();
    let app = App::spawn(
        reg.path(),
        &["--api-keys-file", file.to_str().unwrap(), "--metrics-open"],
    );
    assert_eq!(get_with(&app, "/metrics", None).await.status(), 200);
    assert_eq!(get_with(&app, "/models", None).await.status(), 401);
    assert_eq!(app.post("/score", VERSICOLOR).await.status(), 401);
}

#[test]
fn a_bad_keys_file_stops_the_start_with_one_line_and_no_backtrace() {
    let reg = TestRegistry::with_iris();
    let short = reg.path().join("short.txt");
    std::fs::write(&short, "# a comment\ntoo-short\n").unwrap();
    let missing = reg.path().join("missing.txt");
    for (file, needle) in [
        (&short, "line 2: the key is shorter than 16 characters"),
        (&missing, "cannot be read"),
    ] {
        let out = std::process::Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--registry"])
            .arg(reg.path())
            .arg("--api-keys-file")
            .arg(file)
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{stderr}");
        assert!(
            !stderr.contains("too-short"),
            "the key is not printed: {stderr}"
        );
        assert!(!stderr.contains("backtrace"), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}
